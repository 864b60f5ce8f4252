"""The counterfactual shortcut test on known answers: a stand-in model that reads only the logo flips
every stamped image and maps the logo; one that ignores the image flips none."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dermx import vocab
from dermx.data import DermXDB
from dermx.data.synth.writer import read_synth_manifest
from dermx.evaluate.benchmark.shortcut import stamp_test
from dermx.evaluate.candidates import CamExplainer, ModelNames
from dermx.models import build_model
from report.oracle import SHORTCUT, candidates, tiny_synth

K = vocab.DIAGNOSES.index(SHORTCUT)


def _logo_reader(mean: tuple[float, ...], std: tuple[float, ...], *, reads_image: bool):
    """An engine stand-in: p(shortcut) rises with the share of logo-blue pixels; its map is those pixels."""

    def engine(images: torch.Tensor, _targets: object) -> SimpleNamespace:
        rgb = images * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
        blue = (rgb[:, 2] - rgb[:, 0] > 0.2).float()  # the logo is the only blue in synthetic skin
        if not reads_image:
            blue = torch.zeros_like(blue)
        logits = torch.zeros(len(images), len(vocab.DIAGNOSES))
        logits[:, K] = 200 * blue.mean(dim=(1, 2)) - 1
        return SimpleNamespace(logits={"characteristic": torch.zeros(len(images), 16), "diagnosis": logits},
                               maps=blue[:, None])

    return engine


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> DermXDB:
    return tiny_synth(tmp_path_factory.mktemp("shortcut") / "data")


def _candidate(db: DermXDB, name: str, *, reads_image: bool):  # type: ignore[no-untyped-def]
    template = candidates(db)[0]
    model = build_model("small", kind="dermx", input_size=template.spec.size)
    explainer = CamExplainer(model, ModelNames.of(model.config))
    explainer.engine = _logo_reader(template.spec.mean, template.spec.std, reads_image=reads_image)  # type: ignore[assignment]
    return dataclasses.replace(template, name=name, explain=explainer, model=model)


@pytest.mark.slow
def test_a_logo_reader_flips_every_stamped_image_and_maps_the_logo(db: DermXDB) -> None:
    result = stamp_test(db, [_candidate(db, "reader", reads_image=True), _candidate(db, "blind", reads_image=False),
                             candidates(db)[0]], n_boot=200)
    assert result is not None and result["class"] == SHORTCUT
    assert set(result["models"]) == {"reader", "blind"}  # the oracle stand-in has no model to stamp for
    marked = {e["stem"] for e in read_synth_manifest(Path(db.root))["images"] if e["watermark"]}
    expected = [s for s in db.stems() if s not in marked and db.images[s].diagnosis != SHORTCUT]
    reader, blind = result["models"]["reader"], result["models"]["blind"]
    assert reader["n"] == blind["n"] == len(expected) > 0
    assert reader["flip_rate"]["mean"] == 1.0 and reader["n_flipped"] == len(expected)
    assert reader["delta_p"]["low"] > 0.5
    assert reader["energy_logo"]["mean"] > 0.95  # its map is the logo's own pixels
    assert 0.02 < reader["area_logo"] < 0.1  # about 28 % x 20 % of the image, less the padding
    assert reader["energy_ratio"]["mean"] == pytest.approx(reader["energy_logo"]["mean"] / reader["area_logo"])
    assert blind["flip_rate"]["mean"] == 0.0 and blind["delta_p"]["mean"] == 0.0
    assert blind["energy_ratio"] is None and blind["energy_logo"] is None


def test_data_without_a_shortcut_class_has_no_test(tmp_path: Path) -> None:
    from dermx.data import load_dermxdb
    from dermx.data.synth import generate

    generate(tmp_path / "plain", n_images=6, size=(40, 48), seed=1, progress=False, repeat_fraction=0.0)
    plain = load_dermxdb(tmp_path / "plain", image_dir=tmp_path / "plain" / "images", check_mask_sizes=False)
    assert stamp_test(plain, candidates(plain)) is None


def test_stand_ins_without_a_network_have_no_test(db: DermXDB) -> None:
    assert stamp_test(db, candidates(db)) is None
