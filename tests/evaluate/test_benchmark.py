from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision import tv_tensors

from dermx.data import DermXDB
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.run import write_benchmark
from dermx.evaluate.benchmark.scoring import score_maps
from dermx.evaluate.benchmark.summary import select
from dermx.evaluate.candidates import Explanation, find_checkpoints
from dermx.evaluate.stats import bootstrap_macro_f1, estimate
from dermx.geometry import joint_transform, scaled_size, to_native
from report.oracle import SHORTCUT, oracle_run

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DermXDB, BenchmarkResult]:
    return oracle_run(tmp_path_factory.mktemp("synth") / "data")


def _mean(summary: dict, model: str, kind: str, score: str, selection: str = "present") -> float:
    return summary["localization"][selection][model][kind]["overall"][score]["mean"]


def test_score_maps_known_answers() -> None:
    ref = torch.zeros(1, 2, 8, 8)
    ref[0, :, 2:6, 2:6] = 1
    maps = torch.stack([ref[0, 0], 1 - ref[0, 1]])[None]
    scores = score_maps(maps, ref)
    assert scores["dice"].tolist() == [[1.0, 0.0]]
    assert scores["sensitivity"].tolist() == [[1.0, 0.0]] and scores["specificity"].tolist() == [[1.0, 0.0]]
    assert scores["pointing"][0, 0] == 1 and scores["energy"][0, 1] == 0


def test_ground_truth_maps_beat_baselines_and_watermark_maps_score_low(run: tuple[DermXDB, BenchmarkResult]) -> None:
    summary = run[1].summary
    oracle_dice = _mean(summary, "oracle", "characteristic", "dice")
    assert oracle_dice == pytest.approx(1.0)
    for name, kinds in summary["baselines"]["present"]["oracle"].items():
        assert kinds["characteristic"]["dice"]["mean"] < 0.5, name
        assert kinds["diagnosis-union"]["dice"]["mean"] < oracle_dice - 0.4, name
    assert _mean(summary, "watermark", "characteristic", "dice") < 0.1
    assert _mean(summary, "watermark", "diagnosis-union", "sensitivity") < 0.1
    shortcut = summary["shortcut"]
    assert shortcut["class"] == SHORTCUT
    marked = shortcut["models"]["watermark"][SHORTCUT]
    assert marked["watermark"]["mean"] == pytest.approx(1.0) and marked["lesions"]["mean"] < 0.1
    assert shortcut["models"]["oracle"][SHORTCUT]["watermark"]["mean"] < 0.2


def test_cis_contain_the_mean_and_paired_sign(run: tuple[DermXDB, BenchmarkResult]) -> None:
    summary = run[1].summary
    for model in ("oracle", "watermark"):
        for kind in ("characteristic", "diagnosis", "diagnosis-union"):
            for score, e in summary["localization"]["present"][model][kind]["overall"].items():
                if not math.isnan(e["mean"]):
                    assert e["low"] - 1e-9 <= e["mean"] <= e["high"] + 1e-9, (model, kind, score)
    paired = {p["kind"]: p["difference"] for p in summary["paired"] if (p["a"], p["b"]) == ("oracle", "watermark")}
    assert paired["characteristic"]["low"] > 0.5 and paired["diagnosis-union"]["mean"] > 0.5
    assert summary["diagnosis"]["oracle"]["macro_f1"]["mean"] == 1.0
    assert summary["raters"]["leave_one_out"]["overall"]["dice"] > 0.3


def test_selections_and_undefined_counts(run: tuple[DermXDB, BenchmarkResult]) -> None:
    items = run[1].items
    watermark = items[(items["model"] == "watermark") & (items["kind"] == "characteristic")]
    predicted = select(watermark, "predicted")
    assert len(predicted) == 16 * watermark["stem"].nunique()  # predicts every characteristic
    assert predicted["sensitivity"].isna().sum() > 0  # absent references: undefined, kept and counted
    e = estimate(predicted, "sensitivity", n_boot=50)
    assert e["undefined"] == predicted["sensitivity"].isna().sum()
    correct = select(items[items["model"] == "watermark"], "correct")
    assert set(correct["stem"]) <= set(run[1].images.query("reference == @SHORTCUT")["stem"])
    assert {"present", "predicted", "correct", "fold", "target", "reference"} <= set(items.columns)


def test_strata_and_files(run: tuple[DermXDB, BenchmarkResult], tmp_path: Path) -> None:
    _, result = run
    for by in ("reference", "skin_tone", "age", "correct"):
        assert result.summary["strata"][by]["oracle"], by
    written = write_benchmark(result, tmp_path)
    assert all(p.is_file() for p in written)
    items = pd.read_csv(tmp_path / "items.csv")
    assert len(items) == len(result.items)
    with np.load(tmp_path / "examples.npz") as examples:
        assert examples["image"].dtype == np.uint8 and examples["map:oracle"].shape == examples["union"].shape


def test_to_native_inverts_the_model_geometry() -> None:
    native, size = (30, 50), (24, 24)
    scaled = scaled_size(*native, size, "pad")
    ramp = torch.linspace(0, 1, scaled[1]).expand(*scaled)[None]
    model_grid = joint_transform(size, (0, 0, 0), (1, 1, 1), augment=False)(
        {"m": tv_tensors.Mask(ramp)})["m"].as_subclass(torch.Tensor)
    back = to_native(model_grid, scaled, size, "squash")
    assert back.shape[-2:] == scaled
    assert torch.allclose(to_native(model_grid, native, size, "pad"),
                          torch.nn.functional.interpolate(ramp[None], size=native, mode="bilinear")[0], atol=0.05)


def test_bootstrap_macro_f1_and_checkpoint_discovery(tmp_path: Path) -> None:
    truth = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    assert bootstrap_macro_f1(truth, truth, n_boot=50)["mean"] == 1.0
    for k in (0, 2):
        (tmp_path / f"fold_{k}" / "model").mkdir(parents=True)
        (tmp_path / f"fold_{k}" / "model" / "config.json").write_text("{}")
    assert sorted(find_checkpoints(tmp_path)) == [0, 2]


def test_known_answer_columns_score_against_the_drawn_lesions(run: tuple[DermXDB, BenchmarkResult]) -> None:
    """On synthetic data every row is also scored against the lesions the generator drew: a stand-in
    answering with the drawn masks scores Dice 1 there, and the experts' fused maps (the oracle) score
    below 1 against them (raters outline more or less than was drawn)."""
    from dermx.data import DRAWN_CHANNELS
    from dermx.evaluate.benchmark.run import run_benchmark
    from report.oracle import N, candidates

    db, result = run
    n_refs = N + 3

    def drawn(batch: dict[str, torch.Tensor]) -> Explanation:
        maps = batch["maps"]
        assert maps.shape[1] == n_refs + len(DRAWN_CHANNELS)
        probs = torch.nn.functional.one_hot(batch["diagnosis"], 6).float()
        truth = maps[:, n_refs:]
        return Explanation(probs, batch["characteristics"].float(), truth, truth.amax(dim=1, keepdim=True))

    stand_in = dataclasses.replace(candidates(db)[0], name="drawn", explain=drawn)
    summary = run_benchmark(db, [stand_in], BenchmarkConfig(n_boot=50, batch_size=12, agreement=False)).summary
    overall = summary["localization"]["present"]["drawn"]["characteristic"]["overall"]
    assert overall["drawn_dice"]["mean"] == pytest.approx(1.0) and overall["drawn_pointing"]["mean"] == 1.0
    assert overall["drawn_dice"]["undefined"] > 0  # outlined by a rater, nothing of it drawn: NaN, counted
    oracle = result.summary["localization"]["present"]["oracle"]["characteristic"]["overall"]
    assert 0.2 < oracle["drawn_dice"]["mean"] < 0.99
    row = {r["source"]: r for r in result.summary["headline"]}["oracle"]
    assert row["char_dice_drawn"]["mean"] == pytest.approx(oracle["drawn_dice"]["mean"])
    assert "drawn_dice" in result.summary["baselines"]["present"]["oracle"]["gaussian"]["characteristic"]
    # the raters' own fused maps against the drawn lesions: the oracle answers with exactly those maps
    experts = {r["source"]: r for r in result.summary["headline"]}["raters, fused map"]
    assert experts["char_dice_drawn"]["mean"] == pytest.approx(row["char_dice_drawn"]["mean"], abs=1e-9)



def test_benchmark_on_the_auto_device_equals_the_default_and_bf16_scores_are_within_the_tolerance(
        tmp_path: Path) -> None:
    """``compute``: the device ``auto`` resolves to (here, without a GPU, the CPU), in float32 and without
    worker processes, gives the default run's tables exactly; ``bf16-mixed`` on the CPU gives every
    per-pair score within :data:`~dermx.compute.BF16_MAP_TOLERANCE` on average (measured: sensitivity 0.0021,
    specificity 0.0013, Dice 0.0002, pointing 0) and the probabilities within 0.001 (measured 0.0001)."""
    from dermx.compute import BF16_MAP_TOLERANCE, Compute
    from test_compute_device import assert_benchmarks_agree, benchmark_on, tiny_synth_checkpoint

    db, checkpoint = tiny_synth_checkpoint(tmp_path)
    default = benchmark_on(db, checkpoint, None)
    auto = benchmark_on(db, checkpoint, Compute(Compute().accelerator, n_workers=0))
    pd.testing.assert_frame_equal(auto.items, default.items)
    pd.testing.assert_frame_equal(auto.images, default.images)
    assert_benchmarks_agree(benchmark_on(db, checkpoint, Compute("cpu", "bf16-mixed", n_workers=2)), default,
                            BF16_MAP_TOLERANCE)
