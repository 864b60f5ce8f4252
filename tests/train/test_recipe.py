"""The short-run training options: balanced characteristic pos_weight, cosine schedule with warm-up,
colour jitter switch, and their validation."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from dermx.geometry import joint_transform
from dermx.models import build_model
from dermx.train import DermXLoss, DermXModule, TrainConfig, fit, load_config
from dermx.train.losses import char_pos_weight_tensor


def test_balanced_pos_weight_is_negative_over_positive_clipped() -> None:
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.float32)
    # positives 3, 1, 0 of 4 → 1/3 (clipped to 1), 3, none (clipped to max)
    assert char_pos_weight_tensor(labels, "balanced", 10.0).tolist() == [1.0, 3.0, 10.0]
    assert char_pos_weight_tensor(labels, 2.0).tolist() == [2.0, 2.0, 2.0]
    assert char_pos_weight_tensor(labels, None) is None
    assert char_pos_weight_tensor(labels[:, :0], "balanced") is None


def test_pos_weight_reaches_the_bce() -> None:
    outputs = {"diagnosis": torch.zeros(2, 6), "characteristic": torch.zeros(2, 2)}
    dx, chars = torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    plain = DermXLoss()(outputs, dx, chars).characteristic
    weighted = DermXLoss(char_pos_weight=torch.tensor([3.0, 3.0]))(outputs, dx, chars).characteristic
    # at logit 0 each term is ln 2; positives (half the entries) count 3×
    assert weighted.item() == pytest.approx(plain.item() * (3 + 1) / 2, rel=1e-6)


def test_colour_jitter_can_be_switched_off() -> None:
    names = lambda t: [type(s).__name__ for s in t.transforms]  # noqa: E731
    assert "ColorJitter" in names(joint_transform((8, 8), (0, 0, 0), (1, 1, 1), augment=True))
    geometric = joint_transform((8, 8), (0, 0, 0), (1, 1, 1), augment=True, color_jitter=False)
    assert "ColorJitter" not in names(geometric) and any(isinstance(s, v2.RandomAffine) for s in geometric.transforms)


def test_config_validates_new_options() -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig.of(lr_schedule="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="char_pos_weight"):
        TrainConfig.of(char_pos_weight="inverse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig.of(warmup_epochs=-1)
    assert TrainConfig().optim.lr_schedule == "restarts" and TrainConfig().optim.char_pos_weight is None  # the papers'


def test_cosine_schedule_warms_up_then_decays_to_the_floor() -> None:
    model = build_model("cpu", kind="dermx", input_size=(32, 32), pretrained=False)
    config = TrainConfig.of(lr=1e-2, eta_min=1e-4, epochs=10, lr_schedule="cosine", warmup_epochs=2)
    module = DermXModule(model, config)

    class _Trainer:
        estimated_stepping_batches = 100

    module._trainer = _Trainer()  # type: ignore[assignment]
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert setup["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-3) and max(lrs) == pytest.approx(1e-2) and lrs.index(max(lrs)) == 20
    assert all(a >= b for a, b in itertools.pairwise(lrs[20:])) and lrs[-1] == pytest.approx(1e-4, rel=0.05)


@pytest.mark.slow
def test_fit_with_the_short_run_recipe(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    config = TrainConfig.of(data=str(tiny_db[0]), images=str(tiny_db[1]), kind="dermx", preset="cpu",
                         input_size=(32, 32), epochs=1, batch_size=8, pretrained=False, fold=0, val_fraction=0.25,
                         progress=False, cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"),
                         in_memory=True, lr_schedule="cosine", warmup_epochs=0.5, char_pos_weight="balanced",
                         augment=True, color_jitter=False, dropout=0.0)
    result = fit(config)
    assert "test/dx_f1" in result.metrics


def test_cli_options_reach_the_config() -> None:
    from dermx.train.cli import _config

    config = _config({"lr_schedule": "cosine", "warmup_epochs": 1.0, "char_pos_weight": "balanced",
                      "color_jitter": False, "dropout": 0.0, "epochs": None})
    optim = config.optim
    assert (optim.lr_schedule, optim.warmup_epochs, optim.char_pos_weight) == ("cosine", 1.0, "balanced")
    assert (config.dataset.color_jitter, config.model.dropout) == (False, 0.0)
    assert _config({"char_pos_weight": "2.5"}).optim.char_pos_weight == 2.5


def test_config_sections_and_flat_names_round_trip(tmp_path: Path) -> None:
    config = TrainConfig.of(kind="dermx+", lr=1e-3, images="img", out="o", channels_last=True)
    assert (config.model.kind, config.optim.lr, config.dataset.images, config.run.out) == ("dermx+", 1e-3, "img", "o")
    assert config.run.channels_last and set(config.to_dict()) == {"dataset", "model", "optim", "run"}
    config.save(tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == config  # sectioned, as written
    (tmp_path / "flat.json").write_text('{"kind": "dermx+", "lr": 0.001, "images": "img", "out": "o", '
                                        '"channels_last": true}')
    assert load_config(tmp_path / "flat.json") == config  # flat names, as older run folders hold
    (tmp_path / "bad.json").write_text('{"model": {"lr": 1}}')
    with pytest.raises(ValueError, match="lr belongs to optim, not model"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.of(epoch=3)
    assert TrainConfig.from_dict({"kind": "dx-only", "gone": 1}, strict=False).model.kind == "dx-only"
