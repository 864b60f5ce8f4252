"""Concept-bottleneck (cbm) models: the diagnosis reads the characteristics only, trained jointly,
sequentially or independently (Koh et al. 2020; dermx.train.bottleneck)."""

from __future__ import annotations

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


def test_a_cbm_diagnosis_is_a_linear_function_of_its_characteristic_logits() -> None:
    model = build_model("small", kind="cbm", input_size=(64, 64)).eval()
    assert model.diagnosis_mlp is None and model.diagnosis_out.in_features == len(model.config.characteristics)
    out = model(torch.randn(2, 3, 64, 64))
    assert torch.allclose(out["diagnosis"], model.diagnosis_out(out["characteristic"]))
    assert model.config.bottleneck == "joint"
    with pytest.raises(ValueError, match="bottleneck 'sequential' is for cbm models"):
        build_model("small", kind="dermx", bottleneck="sequential")
    with pytest.raises(ValueError, match="needs characteristics"):
        build_model("small", kind="cbm", characteristics=[])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["joint", "sequential", "independent"])
def test_each_training_mode(tiny_db: tuple[Path, Path], tmp_path: Path, mode: str) -> None:
    """joint trains the head with the network; sequential and independent fit it afterwards, on the frozen
    characteristic logits of the training images or on their labels in the rule's logit scale: the saved
    head is that fit (recomputed here)."""
    config = tiny_config(tiny_db, tmp_path / "run", kind="cbm", bottleneck=mode, epochs=2,
                         ga_weight=1.0 if mode == "sequential" else None)
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
    x = logits["characteristic"].double() if mode == "sequential" else absent + labels * (present - absent)
    w, b = fit_head(x, diagnosis, len(model.config.diagnoses), l2=L2)
    assert torch.allclose(model.diagnosis_out.weight.double(), w, atol=1e-4)
    assert torch.allclose(model.diagnosis_out.bias.double(), b, atol=1e-4)
