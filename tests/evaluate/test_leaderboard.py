"""The method x model leaderboard: contract columns, per-cell errors, the CLI and the report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from dermx.cli import app
from dermx.evaluate.leaderboard import DIRECTIONS, LeaderboardConfig, parse_methods, run_leaderboard, write_leaderboard
from dermx.report.leaderboard_section import leaderboard_section
from report.oracle import tiny_synth

CONTRACT = ("model", "method", "dice", "pointing", "deletion_auc", "insertion_auc", "road_morf", "mprt_spearman",
            "max_sensitivity")


def test_parse_methods() -> None:
    assert parse_methods("all")[0] == ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "cam",
                                       "scorecam", "eigencam"]
    methods, errors = parse_methods("Grad-CAM, gradcam,nosuch")
    assert methods == ["gradcam"] and len(errors) == 1 and "nosuch" in errors[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dermx.models import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("leaderboard")
    db = tiny_synth(root / "data")
    # CAMs at layer3, which does not feed global average pooling: the method "cam" cannot apply there
    model = build_model("tiny", pretrained=False, input_size=(32, 32), cam_layer="backbone.layer3")
    with torch.no_grad():  # an untrained head barely reacts to its input: make the scores move
        model.diagnosis_out.weight.mul_(50)
    checkpoint = save_checkpoint(model, root / "ckpt")
    config = LeaderboardConfig(n_images=3, steps=2, road_percentages=(50.0,), mprt_steps=1, sensitivity_samples=1,
                               fc_runs=4, fc_subset=16, n_boot=20)
    board = run_leaderboard(db, [("tiny", str(checkpoint)), ("broken", str(root / "missing"))],
                            "gradcam,eigencam,cam,nosuch", config, allow_overlap=True)  # an untrained model
    out = root / "run"
    write_leaderboard(board, out)
    return out


@pytest.mark.slow
def test_contract_and_bad_cells(run_dir: Path) -> None:
    frame = pd.read_csv(run_dir / "leaderboard.csv")
    assert set(CONTRACT) <= set(frame.columns)
    assert sorted(frame["method"]) == ["eigencam", "gradcam"] and set(frame["model"]) == {"tiny"}
    numbers = frame.drop(columns=["model", "method"]).to_numpy(dtype=float)
    assert all(math.isfinite(v) for v in numbers.ravel())
    for column in DIRECTIONS:
        assert (frame[f"{column}_low"] <= frame[column] + 1e-9).all(), column
    data = json.loads((run_dir / "leaderboard.json").read_text())
    reasons = {(e["model"], e["method"]): e["reason"] for e in data["excluded"]}
    assert "unknown CAM method 'nosuch'" in reasons[("*", "nosuch")]
    assert "cannot load" in reasons[("broken", "gradcam")]
    assert "cannot explain" in reasons[("tiny", "cam")] and "global average pooling" in reasons[("tiny", "cam")]
    eigen = frame.set_index("method").loc["eigencam"]
    assert eigen["random_logit"] == pytest.approx(1.0)  # class-agnostic: fails the random-logit test
    assert len(data["mprt_curves"]["tiny"]["gradcam"]) == 1


@pytest.mark.slow
def test_cli_and_report_section(run_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text("{}")
    result = CliRunner().invoke(app, ["leaderboard", str(run_dir), str(old), "--out", str(tmp_path / "all")])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "gradcam" in output and "no leaderboard.json" in output and "before leaderboards" in output
    combined = pd.read_csv(tmp_path / "all" / "leaderboard.csv")
    assert set(combined["model"]) == {"run/tiny"}
    section = leaderboard_section(run_dir)
    assert "method × model leaderboard" in section and section.count("<img") == 3
    assert "nosuch" in section and "dice ↑" in section and "deletion_auc ↓" in section
    assert leaderboard_section(old) == ""


def test_followup_protocol_settings_and_spread_over_models() -> None:
    from dermx.evaluate.leaderboard import PROTOCOLS, _across_models

    assert PROTOCOLS["followup"] == ("relative", "correct", "diagnosis-union")
    rows = [{"model": "a", "method": "gradcam", "dice": 0.2}, {"model": "b", "method": "gradcam", "dice": 0.4},
            {"model": "a", "method": "eigencam", "dice": 0.3}]
    assert _across_models(rows) == ["gradcam: Dice over 2 models 0.300 ± 0.141 (mean ± SD)"]


@pytest.mark.slow
def test_agreement_equals_the_benchmark_of_each_method(tmp_path: Path) -> None:
    from dermx.evaluate.bench_types import BenchmarkConfig
    from dermx.evaluate.benchmark import run_benchmark
    from dermx.evaluate.candidates import load_candidates
    from dermx.evaluate.leaderboard import _agreement
    from dermx.models import build_model, save_checkpoint

    db = tiny_synth(tmp_path / "data")
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False, input_size=(32, 32))
    with torch.no_grad():
        model.diagnosis_out.weight.mul_(50)
    checkpoint = str(save_checkpoint(model, tmp_path / "ckpt"))
    config = LeaderboardConfig(n_boot=30, batch_size=5, score_images=None)
    methods = ["gradcam++", "eigencam", "scorecam"]
    candidates = load_candidates("m", checkpoint, db, BenchmarkConfig(), allow_overlap=True)
    ours = _agreement(db, candidates, methods, config, lambda it, _d, _n: it)
    for method in methods:
        bench = BenchmarkConfig(method=method, n_boot=30, agreement=False, examples=False, shortcut_test=False)
        summary = run_benchmark(db, load_candidates("m", checkpoint, db, bench, allow_overlap=True), bench).summary
        overall = summary["localization"]["present"]["m"]["characteristic"]["overall"]
        for score in ("dice", "sensitivity", "specificity", "pointing"):
            assert ours[method][score] == pytest.approx(overall[score]["mean"], abs=1e-6), (method, score)
            assert ours[method][f"{score}_low"] == pytest.approx(overall[score]["low"], abs=1e-6), (method, score)
        assert ours[method]["agreement_images"] == len(candidates[0].stems)
    few = _agreement(db, candidates, methods, LeaderboardConfig(n_boot=30, batch_size=5, score_images=2),
                     lambda it, _d, _n: it)
    assert few["scorecam"]["agreement_images"] == 2 and few["eigencam"] == ours["eigencam"]


def test_faithfulness_correlation_reads_logits_so_a_saturated_softmax_stays_defined() -> None:
    """Seen on the demo's DermX: every random subset of baseline pixels pushed it to the same class with
    p = 1, so every probability drop was equal and the correlation undefined; logit drops still differ."""
    from dermx.evaluate.faithfulness import faithfulness_correlation
    from dermx.evaluate.leaderboard import _scores
    from dermx.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False, input_size=(32, 32)).eval()
    with torch.no_grad():
        model.diagnosis_out.weight.mul_(1e4)  # softmax saturates at exactly 0 / 1 in float32
    images, maps = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = model(images)
        assert torch.equal(_scores(model, logits=True)(images), torch.cat([out["characteristic"], out["diagnosis"]], 1))
        probabilities = _scores(model)(images)
    n_char = out["characteristic"].shape[1]
    assert set(probabilities[:, n_char:].flatten().tolist()) <= {0.0, 1.0}
    target = (n_char + probabilities[:, n_char:].argmax(1))[:, None]
    kw = {"n_runs": 8, "subset_size": 64, "seed": 0}
    assert torch.isnan(faithfulness_correlation(_scores(model), images, maps, target, **kw)).all()
    assert torch.isfinite(faithfulness_correlation(_scores(model, logits=True), images, maps, target, **kw)).all()


def test_example_grid_draws_maps_with_the_shared_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import dermx.explain.overlay as overlay
    from dermx.report.leaderboard_section import _examples

    calls: list[tuple[int, int]] = []
    blend = overlay.blend
    monkeypatch.setattr(overlay, "blend", lambda image, values, *a: calls.append(values.shape) or blend(image, values))
    rng = np.random.default_rng(0)
    examples = {"image:A": rng.random((8, 8, 3), dtype=np.float32),
                **{f"map:A:{m}": rng.random((8, 8)).astype(np.float16) for m in ("gradcam", "eigencam")}}
    assert _examples(examples) is not None and calls == [(8, 8), (8, 8)]
