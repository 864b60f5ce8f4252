"""Predictor.intervene: a kept pass recomputed with characteristics set, without the image or the backbone.

Its answer must be the answer of a full pass with the same setting (Predictor.run(batch, setting)): the
diagnoses, the change, the trust fields and, from the kept CAM-layer activations, the maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dermx.models import build_model, load_checkpoint, save_checkpoint
from dermx.models.intervention import InterventionError
from dermx.predict import Prediction, Predictor
from predict.samples import calibrated_checkpoint, photo, tiny_checkpoint, with_intervention_rule
from predict.test_intervention import SETTING, linear_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_checkpoint(tmp_path_factory.mktemp("linear"))


def assert_same(got: Prediction, want: Prediction) -> None:
    """Same diagnoses, characteristics, intervention and trust; the top diagnosis's map and logit (an
    intervention has no characteristic maps: they are the kept prediction's) to float precision."""
    assert [n for n, _ in got.diagnoses] == [n for n, _ in want.diagnoses]
    assert [p for _, p in got.diagnoses] == pytest.approx([p for _, p in want.diagnoses], abs=1e-6)
    assert [(c.name, c.present) for c in got.characteristics] == [(c.name, c.present) for c in want.characteristics]
    assert [c.probability for c in got.characteristics] == pytest.approx(
        [c.probability for c in want.characteristics], abs=1e-6)
    assert got.intervention is not None and want.intervention is not None
    assert got.intervention.settings == want.intervention.settings
    assert got.intervention.change == pytest.approx(want.intervention.change, abs=1e-6)
    assert got.trust == want.trust
    top = f"diagnosis:{want.diagnosis}"
    assert list(got.maps) == [top] and got.logits == pytest.approx({top: want.logits[top]}, abs=1e-5)
    np.testing.assert_allclose(got.maps[top], want.maps[top], atol=1e-5)


def test_an_intervention_on_kept_activations_is_the_full_pass_with_the_setting(checkpoint: Path) -> None:
    predictor = Predictor(checkpoint)
    prepared = [predictor.prepare(photo(96, 72, seed=s)) for s in (0, 1)]
    kept = predictor.run(prepared, keep="activations")
    full = predictor.run(prepared, SETTING)
    calls: list[int] = []
    hook = predictor.model.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        answers = [predictor.intervene(p.features, SETTING) for p in kept if p.features is not None]
    finally:
        hook.remove()
    assert calls == [] and len(answers) == 2  # the heads alone: no backbone pass
    for got, want in zip(answers, full, strict=True):
        assert_same(got, want)
        assert len(want.maps) > 1 and got.maps[f"diagnosis:{got.diagnosis}"].max() > 0
    features = kept[1].features
    assert features is not None and features.note == "" and features.activations is not None
    # its own copy, not a view of the batch: one kept image does not hold the whole batch
    for tensor in (features.pooled, features.activations):
        assert tensor.untyped_storage().nbytes() == tensor.nelement() * tensor.element_size()
    assert features.nbytes == 4 * (features.pooled.shape[1] + features.activations[0].nelement())
    # no setting: the model's own answer, and no change
    same = predictor.intervene(features, {})
    assert [n for n, _ in same.diagnoses] == [n for n, _ in kept[1].diagnoses] and same.intervention is not None
    assert [p for _, p in same.diagnoses] == pytest.approx([p for _, p in kept[1].diagnoses], abs=1e-6)
    assert set(same.intervention.change.values()) == {0.0}


def test_without_kept_activations_an_intervention_has_no_maps_and_says_why(checkpoint: Path) -> None:
    predictor = Predictor(checkpoint)
    prepared = predictor.prepare(photo(96, 72))
    (kept,) = predictor.run([prepared], keep="pooled")
    (full,) = predictor.run([prepared], SETTING)
    assert kept.features is not None and kept.features.activations is None
    assert kept.features.note == "CAM-layer activations were not kept"
    answer = predictor.intervene(kept.features, SETTING)
    assert answer.maps == {} and answer.logits == {}
    assert [p for _, p in answer.diagnoses] == pytest.approx([p for _, p in full.diagnoses], abs=1e-6)
    # a CAM layer inside the last block does not feed the pooling: its maps need the backbone
    model = load_checkpoint(checkpoint)
    model.config.cam_layer = "backbone.layer4.1.conv1"
    (inner,) = Predictor(model).run([prepared], keep="activations")
    assert inner.features is not None and inner.features.activations is None
    assert inner.features.note == ("the CAM layer backbone.layer4.1.conv1 is not what the heads pool: its maps "
                                   "need a backbone pass")


def test_score_cam_keeps_no_activations(checkpoint: Path) -> None:
    predictor = Predictor(checkpoint, method="scorecam")
    (kept,) = predictor.run([predictor.prepare(photo(96, 72))], keep="activations")
    assert kept.features is not None and kept.features.activations is None
    assert kept.features.note.startswith("Score-CAM scores masked images through the backbone")


def test_an_intervention_keeps_the_image_s_skin_tone_and_risk(tmp_path: Path) -> None:
    """A calibrated model: the intervention's probabilities, set and abstention are those of the full pass
    with the same setting, skin tone and target risk."""
    predictor = Predictor(with_intervention_rule(calibrated_checkpoint(tmp_path / "calibrated")))
    for tone, risk in (("dark", 0.0), ("light", None), (None, 1.0)):
        prepared = predictor.prepare(photo(96, 72), skin_tone=tone, abstain_risk=risk)
        (kept,) = predictor.run([prepared], keep="activations")
        (full,) = predictor.run([prepared], SETTING)
        assert kept.features is not None and kept.features.skin_tone == tone
        answer = predictor.intervene(kept.features, SETTING)
        assert answer.trust.calibrated and answer.trust.group == tone
        assert_same(answer, full)
    assert answer.trust.abstain is False and full.trust.abstain_risk == 1.0


def test_a_model_that_takes_no_intervention_says_why(tmp_path: Path, checkpoint: Path) -> None:
    predictor = Predictor(checkpoint)
    (kept,) = predictor.run([predictor.prepare(photo(96, 72))], keep="pooled")
    assert kept.features is not None
    with pytest.raises(InterventionError, match=r"unknown characteristic\(s\) \['Colour'\]"):
        predictor.intervene(kept.features, {"Colour": True})
    old = Predictor(tiny_checkpoint(tmp_path / "old"))  # no rule recorded
    with pytest.raises(InterventionError, match="records no intervention rule"):
        old.intervene(kept.features, SETTING)


def test_a_concept_bottleneck_model_intervenes_the_same_way(tmp_path: Path) -> None:
    """cbm: the diagnosis reads the characteristics only; the kept pass gives the full pass's answer."""
    torch.manual_seed(0)
    model = build_model("small", kind="cbm", pretrained=False, input_size=(64, 64))
    checkpoint = with_intervention_rule(save_checkpoint(model, tmp_path / "cbm"))
    predictor = Predictor(checkpoint)
    prepared = predictor.prepare(photo(96, 72))
    (kept,) = predictor.run([prepared], keep="activations")
    (full,) = predictor.run([prepared], SETTING)
    assert kept.features is not None and kept.features.activations is not None
    assert_same(predictor.intervene(kept.features, SETTING), full)
