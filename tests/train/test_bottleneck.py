"""Concept-bottleneck (cbm) models: the diagnosis reads the characteristics only, trained jointly,
sequentially or independently (Koh et al. 2020; dermx.train.bottleneck)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from dermx.models import build_model, load_checkpoint
from dermx.models.checkpoint import intervention_rule
from dermx.train import fit
from dermx.train.bottleneck import L2, fit_head
from dermx.train.calibrate import head_logits
from dermx.train.datamodule import DermXDataModule
from train.conftest import tiny_config


def test_the_head_fit_is_sklearns_multinomial_logistic_regression() -> None:
    """(1/n) Σ CE + (λ/2)‖W‖² is scikit-learn's C Σ CE + ½‖W‖² with C = 1 / (n λ) (intercept unpenalised)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, (300, 5))
    truth = rng.normal(0, 1, (4, 5))
    y = np.array([rng.choice(4, p=np.exp(r) / np.exp(r).sum()) for r in x @ truth.T])
    w, b = fit_head(torch.from_numpy(x), torch.from_numpy(y), 4, l2=1e-2)
    reference = LogisticRegression(C=1 / (300 * 1e-2), tol=1e-12, max_iter=10_000).fit(x, y)
    assert np.abs(w.numpy() - reference.coef_).max() < 1e-4
    assert np.abs(b.numpy() - reference.intercept_).max() < 1e-4


def test_a_cbm_diagnosis_is_a_linear_function_of_its_characteristic_probabilities(tmp_path: Path) -> None:
    """z_dx = W σ(z_char) + b; a checkpoint written before ``bottleneck_reads`` keeps reading the logits."""

    from dermx.models import save_checkpoint
    from dermx.models.checkpoint import CONFIG_FILE

    model = build_model("small", kind="cbm", input_size=(64, 64)).eval()
    assert model.diagnosis_mlp is None and model.diagnosis_out.in_features == len(model.config.characteristics)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    w, b = model.diagnosis_out.weight, model.diagnosis_out.bias
    assert torch.allclose(out["diagnosis"], torch.sigmoid(out["characteristic"]) @ w.T + b, atol=1e-6)
    assert model.config.bottleneck == "joint" and model.config.bottleneck_reads == "probabilities"
    # an older checkpoint: the field absent, its head read the logits, and still does
    folder = save_checkpoint(model, tmp_path / "old")
    document = json.loads((folder / CONFIG_FILE).read_text())
    assert document["bottleneck_reads"] == "probabilities"
    del document["bottleneck_reads"]
    (folder / CONFIG_FILE).write_text(json.dumps(document))
    old = load_checkpoint(folder).eval()
    assert old.config.bottleneck_reads == "logits"
    with torch.no_grad():
        again = old(x)
    assert torch.allclose(again["diagnosis"], again["characteristic"] @ w.T + b, atol=1e-5)
    assert "bottleneck_reads" not in json.loads((save_checkpoint(build_model("small"), tmp_path / "dx")
                                                 / CONFIG_FILE).read_text())
    with pytest.raises(ValueError, match="bottleneck 'sequential' is for cbm models"):
        build_model("small", kind="dermx", bottleneck="sequential")
    with pytest.raises(ValueError, match="needs characteristics"):
        build_model("small", kind="cbm", characteristics=[])


def test_random_interventions_copy_the_predictions_with_labels_set_at_the_rate() -> None:
    """head_inputs with a rate r: the predictions, then INTERVENED_COPIES copies in which each characteristic is
    its label's rule logit with probability r (about r of them, seeded), all read through σ; the diagnoses
    repeat. Only sequential cbm training takes a rate."""
    from dermx.models.intervention import InterventionRule
    from dermx.train.bottleneck import INTERVENED_COPIES, head_inputs
    from dermx.train.config import TrainConfig
    from dermx.train.interventions import TrainingLogits

    model = build_model("small", kind="cbm", bottleneck="sequential", input_size=(64, 64))
    names = model.config.characteristics
    k = len(names)
    rule = InterventionRule(names, tuple([-4.0] * k), tuple([5.0] * k), n=400)
    predicted = torch.linspace(-1.0, 1.0, 400 * k).reshape(400, k)
    labels = (torch.arange(400 * k).reshape(400, k) % 3 == 0).float()
    training = TrainingLogits(rule, predicted, torch.arange(400) % 6, labels)
    x, y = head_inputs(model, training, "sequential", interventions=0.25, seed=3)
    assert x.shape == ((1 + INTERVENED_COPIES) * 400, k) and torch.equal(y, (torch.arange(400) % 6).repeat(5))
    assert torch.allclose(x[:400], torch.sigmoid(predicted.double()))
    copies = torch.logit(x[400:], eps=0).reshape(INTERVENED_COPIES, 400, k)
    set_label = torch.isclose(copies, torch.where(labels.bool(), 5.0, -4.0).double(), atol=1e-6)
    assert abs(float(set_label.double().mean()) - 0.25) < 0.01
    kept = torch.isclose(copies, predicted.double().expand_as(copies), atol=1e-6)
    assert bool((set_label | kept).all())
    again, _ = head_inputs(model, training, "sequential", interventions=0.25, seed=3)
    assert torch.equal(x, again)
    assert head_inputs(model, training, "sequential")[0].shape == (400, k)
    with pytest.raises(ValueError, match="head_interventions is for cbm models trained sequential"):
        TrainConfig.of(kind="cbm", bottleneck="independent", head_interventions=0.25)
    with pytest.raises(ValueError, match="rate in \\[0, 1\\]"):
        TrainConfig.of(kind="cbm", bottleneck="sequential", head_interventions=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["joint", "sequential", "independent"])
def test_each_training_mode(tiny_db: tuple[Path, Path], tmp_path: Path, mode: str) -> None:
    """joint trains the head with the network; sequential and independent fit it afterwards, on the frozen
    characteristic logits of the training images or on their labels in the rule's logit scale: the saved
    head is that fit (recomputed here)."""
    config = tiny_config(tiny_db, tmp_path / "run", kind="cbm", bottleneck=mode, epochs=2,
                         ga_weight=1.0 if mode == "sequential" else None,
                         head_interventions=0.5 if mode == "sequential" else None)
    result = fit(config)
    model = load_checkpoint(result.checkpoint_dir)
    assert model.config.kind == "cbm" and model.config.bottleneck == mode
    data = DermXDataModule(config, model.config)
    data.setup()
    train = data.dataset("train", augment=False)
    logits, diagnosis = head_logits(model, train, 8)
    rule = intervention_rule(model.config)  # the 5th / 95th percentiles of the training logits
    assert rule.n == len(train.items) == len(logits["characteristic"])
    q = torch.quantile(logits["characteristic"].double(), torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
    assert torch.allclose(torch.tensor(rule.absent, dtype=torch.float64), q[0], atol=1e-5)
    assert torch.allclose(torch.tensor(rule.present, dtype=torch.float64), q[1], atol=1e-5)
    card = (result.checkpoint_dir / "README.md").read_text()
    assert f"A concept-bottleneck model trained `{mode}`" in card and "95th percentile" in card
    if mode == "joint":
        return
    labels = torch.tensor([item.characteristics for item in train.items], dtype=torch.float64)
    absent, present = torch.tensor(rule.absent).double(), torch.tensor(rule.present).double()
    set_labels = absent + labels * (present - absent)
    x, y = logits["characteristic"].double(), diagnosis
    if mode == "sequential":  # the predictions and 4 randomly corrected copies (rate 0.5, the run's seed)
        generator = torch.Generator().manual_seed(config.run.seed)
        copies = [torch.where(torch.rand(x.shape, generator=generator, dtype=torch.float64) < 0.5, set_labels, x)
                  for _ in range(4)]
        x, y = torch.cat([x, *copies]), diagnosis.repeat(5)
    else:
        x = set_labels
    w, b = fit_head(torch.sigmoid(x), y, len(model.config.diagnoses), l2=L2)
    assert torch.allclose(model.diagnosis_out.weight.double(), w, atol=1e-4)
    # the biases of classes absent from the 8 training images run off to -inf, so the fit stops anywhere along
    # that flat direction: the objective, not the bias, is what two fits must agree on
    def objective(weight: torch.Tensor, bias: torch.Tensor) -> float:
        inputs = torch.sigmoid(x)
        return float(torch.nn.functional.cross_entropy(inputs @ weight.T + bias, y) + 0.5 * L2 * (weight ** 2).sum())

    saved = objective(model.diagnosis_out.weight.detach().double(), model.diagnosis_out.bias.detach().double())
    assert abs(saved - objective(w, b)) < 1e-5


def test_a_trained_model_becomes_a_bottlenecks_first_stage_unchanged() -> None:
    """bottleneck_from keeps the backbone and characteristic head to the bit and drops the side channel h;
    only a model with characteristics, and only a head fitted apart, qualify."""
    from dermx.train.bottleneck import bottleneck_from, same_training_data

    torch.manual_seed(0)
    first = build_model("small", kind="dermx+", input_size=(64, 64)).eval()
    model = bottleneck_from(first, "independent").eval()
    assert model.config.kind == "cbm" and model.config.bottleneck == "independent"
    assert model.config.bottleneck_reads == "probabilities" and model.diagnosis_mlp is None
    assert model.diagnosis_out.in_features == len(first.config.characteristics)
    kept = {k: v for k, v in first.state_dict().items() if not k.startswith(("diagnosis_mlp.", "diagnosis_out."))}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["characteristic"], first(x)["characteristic"])
    assert model.config.input_spec == first.config.input_spec and model.config.cam_layer == first.config.cam_layer
    with pytest.raises(ValueError, match="dx-only model has no characteristics"):
        bottleneck_from(build_model("small", kind="dx-only"), "sequential")
    with pytest.raises(ValueError, match="sequential or independent head, not 'joint'"):
        bottleneck_from(first, "joint")
    assert same_training_data({"fold": 0, "n_train": 8, "initial_weights": {"source": "random"}},
                              {"fold": 0, "n_train": 8, "initial_weights": {"source": "first stage"}}) == []
    assert same_training_data({"fold": 0, "n_train": 8}, {"fold": 1, "n_train": 8, "raters": ["labeller1"]}) == [
        "fold", "raters"]


@pytest.mark.slow
def test_a_bottleneck_on_a_trained_first_stage(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    """dermx train --kind cbm --first-stage MODEL: no epoch is run; the characteristics are the first stage's;
    the head is the sequential fit with random interventions on them; the card says where they came from; a
    run on other data (another fold) is refused, naming the first stage."""
    from dermx.train.bottleneck import INTERVENED_COPIES
    from dermx.train.config import TrainConfig

    first = fit(tiny_config(tiny_db, tmp_path / "first", kind="dermx", epochs=2)).checkpoint_dir
    config = tiny_config(tiny_db, tmp_path / "cbm", kind="cbm", bottleneck="sequential", head_interventions=0.5,
                         first_stage=str(first))
    result = fit(config)
    assert not (result.run_dir / "lightning").exists() and (result.run_dir / "predictions.csv").is_file()
    recorded = json.loads((result.run_dir / "config.json").read_text())["model"]  # as it happened: no weights loaded
    assert recorded["first_stage"] == str(first) and recorded["pretrained"] is False
    model, stage = load_checkpoint(result.checkpoint_dir), load_checkpoint(first)
    data = DermXDataModule(config, model.config)
    data.setup()
    train = data.dataset("train", augment=False)
    logits, diagnosis = head_logits(model, train, 8)
    assert torch.equal(logits["characteristic"], head_logits(stage, train, 8)[0]["characteristic"])
    rule = intervention_rule(model.config)
    labels = torch.tensor([item.characteristics for item in train.items], dtype=torch.float64)
    absent, present = torch.tensor(rule.absent).double(), torch.tensor(rule.present).double()
    x = logits["characteristic"].double()
    generator = torch.Generator().manual_seed(config.run.seed)
    copies = [torch.where(torch.rand(x.shape, generator=generator, dtype=torch.float64) < 0.5,
                          absent + labels * (present - absent), x) for _ in range(INTERVENED_COPIES)]
    w, _ = fit_head(torch.sigmoid(torch.cat([x, *copies])), diagnosis.repeat(1 + INTERVENED_COPIES),
                    len(model.config.diagnoses), l2=L2)
    assert torch.allclose(model.diagnosis_out.weight.double(), w, atol=1e-4)
    weights = model.config.training_data["initial_weights"]
    assert weights["source"] == "first stage" and weights["kind"] == "dermx"
    assert "the backbone and characteristic head of a trained dermx model" in (result.checkpoint_dir
                                                                                / "README.md").read_text()
    with pytest.raises(ValueError, match=r"the first stage was trained on other data than this run's \(its .*fold"):
        fit(config.replace(fold=1, out=str(tmp_path / "other")))
    for kind, bottleneck in (("dermx", None), ("cbm", None), ("cbm", "joint")):
        with pytest.raises(ValueError, match="first_stage is for cbm models trained sequential or independent"):
            TrainConfig.of(kind=kind, bottleneck=bottleneck, first_stage=str(first))
