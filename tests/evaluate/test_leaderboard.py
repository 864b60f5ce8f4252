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
from dermx.evaluate.candidates import load_candidates
from dermx.evaluate.leaderboard.config import DIRECTIONS, LeaderboardConfig, parse_methods
from dermx.evaluate.leaderboard.run import run_leaderboard, write_leaderboard
from dermx.report.leaderboard_section import leaderboard_section
from report.oracle import tiny_synth

CONTRACT = ("model", "method", "dice", "pointing", "deletion_auc", "insertion_auc", "road_morf", "mprt_spearman",
            "max_sensitivity")


def test_parse_methods() -> None:
    assert parse_methods("all") == ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "cam",
                                    "scorecam", "eigencam")
    assert parse_methods("Grad-CAM++, gradcam,gradcam") == ("gradcam++", "gradcam")
    with pytest.raises(ValueError, match=r"unknown CAM method\(s\) 'nosuch', \"grad'cam\"; methods: all, gradcam"):
        parse_methods("gradcam,nosuch,grad'cam")


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
    candidates = load_candidates("tiny", checkpoint, db, allow_overlap=True)  # an untrained model
    board = run_leaderboard(db, candidates, "gradcam,eigencam,cam", _small())
    out = root / "run"
    write_leaderboard(board, out)
    return out


@pytest.mark.slow
def test_contract_and_bad_cells(run_dir: Path) -> None:
    frame = pd.read_csv(run_dir / "leaderboard.csv")
    assert set(CONTRACT) <= set(frame.columns)
    assert sorted(frame["method"]) == ["eigencam", "gradcam"] and set(frame["model"]) == {"tiny"}
    assert frame["same_maps"].isna().all()  # Grad-CAM and EigenCAM give different maps: no merged row
    numbers = frame.drop(columns=["model", "method", "same_maps"]).to_numpy(dtype=float)
    assert all(math.isfinite(v) for v in numbers.ravel())
    for column in DIRECTIONS:
        assert (frame[f"{column}_low"] <= frame[column] + 1e-9).all(), column
    data = json.loads((run_dir / "leaderboard.json").read_text())
    reasons = {(e["model"], e["method"]): e["reason"] for e in data["excluded"]}
    assert "cannot explain" in reasons[("tiny", "cam")] and "global average pooling" in reasons[("tiny", "cam")]
    eigen = frame.set_index("method").loc["eigencam"]
    assert eigen["random_logit"] == pytest.approx(1.0)  # class-agnostic: fails the random-logit test
    assert len(data["mprt_curves"]["tiny"]["gradcam"]) == 1


@pytest.mark.slow
def test_each_rows_deletion_auc_per_skin_tone_adds_up_to_the_row(run_dir: Path) -> None:
    """Every image is in one group: the groups' means weighted by their images give the row's mean."""
    data = json.loads((run_dir / "leaderboard.json").read_text())
    block = data["groups"]
    assert block["by"] == "skin_tone" and block["score"] == "deletion_auc"
    assert set(block["models"]["tiny"]) == {"gradcam", "eigencam"}
    for row in data["rows"]:
        entry = block["models"]["tiny"][row["method"]]
        groups = entry["groups"].values()
        assert sum(g["images"] for g in groups) == row["n_images"] == 3
        weighted = sum(g["images"] * g["deletion_auc"]["mean"] for g in groups) / row["n_images"]
        assert weighted == pytest.approx(row["deletion_auc"]), row["method"]
        assert entry["level"] == pytest.approx(1 - 0.05 / len(entry["groups"]))
        assert all(g["gap"]["deletion_auc"]["level"] == entry["level"] for g in groups)


@pytest.mark.slow
def test_cli_and_report_section(run_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text("{}")
    result = CliRunner().invoke(app, ["leaderboard", str(run_dir), str(old), "--out", str(tmp_path / "all")],
                                terminal_width=200)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "gradcam" in output and "no leaderboard.json" in output and "evaluated without --methods" in output
    combined = pd.read_csv(tmp_path / "all" / "leaderboard.csv")
    assert set(combined["model"]) == {"run/tiny"}
    section = leaderboard_section(run_dir)
    # the scatter and the randomisation curves, then the example grid: the image and its 2 methods' maps
    assert "method × model leaderboard" in section and section.count("<img") == 2 + 3
    assert "aria-label='one image under every method'" in section
    assert "global average pooling" in section and "dice ↑" in section and "deletion_<wbr>auc ↓" in section
    assert leaderboard_section(old) == ""


def test_followup_protocol_settings_and_spread_over_models() -> None:
    from dermx.evaluate.leaderboard.config import PROTOCOLS
    from dermx.evaluate.leaderboard.run import _across_models

    assert PROTOCOLS["followup"] == ("relative", "correct", "diagnosis-union")
    rows = [{"model": "a", "method": "gradcam", "dice": 0.2}, {"model": "b", "method": "gradcam", "dice": 0.4},
            {"model": "a", "method": "eigencam", "dice": 0.3}]
    assert _across_models(rows) == ["gradcam: Dice over 2 models 0.300 ± 0.141 (mean ± SD)"]


@pytest.mark.slow
def test_agreement_equals_the_benchmark_of_each_method(tmp_path: Path) -> None:
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.benchmark.run import run_benchmark
    from dermx.evaluate.leaderboard.agreement import agreement_rows
    from dermx.evaluate.leaderboard.run import _agreement_columns
    from dermx.models import build_model, save_checkpoint

    db = tiny_synth(tmp_path / "data")
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False, input_size=(32, 32))
    with torch.no_grad():
        model.diagnosis_out.weight.mul_(50)
    checkpoint = str(save_checkpoint(model, tmp_path / "ckpt"))
    config = LeaderboardConfig(n_boot=30, batch_size=5, score_images=None)
    methods = ["gradcam++", "eigencam", "scorecam"]
    candidates = load_candidates("m", checkpoint, db, allow_overlap=True)

    patients = pd.Series({s: db.images[s].patient for s in db.stems()})

    def columns(config: LeaderboardConfig) -> dict[str, dict[str, float]]:
        rows = agreement_rows(db, candidates, methods, config, lambda it, _d, _n: it)
        return {method: _agreement_columns(part, config, patients) for method, part in rows.items()}

    ours = columns(config)
    for method in methods:
        bench = BenchmarkConfig(method=method, n_boot=30, agreement=False, examples=False, shortcut_test=False)
        tested = load_candidates("m", checkpoint, db, method=method, allow_overlap=True)
        summary = run_benchmark(db, tested, bench).summary
        overall = summary["localization"]["present"]["m"]["characteristic"]["overall"]
        for score in ("dice", "sensitivity", "specificity", "pointing"):
            assert ours[method][score] == pytest.approx(overall[score]["mean"], abs=1e-6), (method, score)
            assert ours[method][f"{score}_low"] == pytest.approx(overall[score]["low"], abs=1e-6), (method, score)
        assert ours[method]["agreement_images"] == len(candidates[0].stems)
    few = columns(LeaderboardConfig(n_boot=30, batch_size=5, score_images=2))
    assert few["scorecam"]["agreement_images"] == 2 and few["eigencam"] == ours["eigencam"]


def test_faithfulness_correlation_reads_logits_so_a_saturated_softmax_stays_defined() -> None:
    """Seen on the demo's DermX: every random subset of baseline pixels pushed it to the same class with
    p = 1, so every probability drop was equal and the correlation undefined; logit drops still differ."""
    from dermx.evaluate.leaderboard.faithfulness import faithfulness_correlation
    from dermx.evaluate.leaderboard.model_metrics import scores as _scores
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

    import dermx.report.panels as panels
    from dermx.report.leaderboard_section import _examples

    calls: list[tuple[int, int]] = []
    blend = panels.blend
    monkeypatch.setattr(panels, "blend", lambda image, values, *a: calls.append(values.shape) or blend(image, values))
    rng = np.random.default_rng(0)
    examples = {"image:A": rng.random((8, 8, 3), dtype=np.float32),
                **{f"map:A:{m}": rng.random((8, 8)).astype(np.float16) for m in ("gradcam", "eigencam")},
                "image:B": rng.random((8, 8, 3), dtype=np.float32), "map:B:gradcam": np.zeros((8, 8), np.float16)}
    grid = _examples(examples)
    assert calls == [(8, 8)] * 3 and grid.count("<img") == 2 + 3 and grid.count("class='cbar'") == 2
    assert "eigencam: not computed" in grid  # B has no Eigen-CAM map: said, not a blank panel
    assert _examples({}) == ""


def test_scorecam_image_count_flag() -> None:
    import typer

    from dermx.evaluate.benchmark_cli import parse_image_count

    assert parse_image_count("all") is None and parse_image_count("12") == 12 and parse_image_count(64) == 64
    for bad in ("0", "-3", "many"):
        with pytest.raises(typer.BadParameter, match="positive number of images or 'all'"):
            parse_image_count(bad)
    help_text = " ".join(CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200).output.split())
    assert "--n-scorecam-images" in help_text


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(DermXDB folder, image folder, `dermx cv` run of 2 folds trained for 8 epochs)."""
    from dermx.train import run_cv
    from train.conftest import write_tiny_dermxdb
    from train.test_cv_maps import tiny_config

    root = tmp_path_factory.mktemp("followup")
    data = write_tiny_dermxdb(root)
    config = tiny_config(data, root / "cv" / "run", epochs=8)
    run_cv(config, [0, 1])
    return data[0], data[1], Path(config.run.out)


def _small(**changes: object) -> LeaderboardConfig:
    """Few images, steps and draws: the mechanics, not the figures."""
    return LeaderboardConfig(**{**{"n_images": 3, "steps": 2, "road_percentages": (50.0,), "mprt_steps": 1,
                                   "sensitivity_samples": 1, "fc_runs": 4, "fc_subset": 16, "n_boot": 20}, **changes})


@pytest.mark.slow
def test_followup_protocol_end_to_end_on_a_cv_run(tiny_cv: tuple[Path, Path, Path]) -> None:
    """The follow-up paper's protocol on a trained 2-fold `dermx cv` run: the predicted class's map on the
    correctly diagnosed test images only, against the per-image union map with the relative fusion; mean
    over images per fold, then mean and SD over folds; then mean ± SD over models. Checked against the
    training run's own predictions and the benchmark's per-image scores, aggregated here by hand."""
    import numpy as np

    from dermx.data import load_dermxdb
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.benchmark.run import run_benchmark

    data, images, cv = tiny_cv
    db = load_dermxdb(data, image_dir=images, check_mask_sizes=False)
    predictions = pd.read_csv(cv / "predictions.csv")
    correct = predictions[predictions["reference"] == predictions["predicted"]]
    assert set(correct["fold"]) == {0, 1}, "the protocol needs correct diagnoses in both folds"
    both = [*load_candidates("a", cv, db), *load_candidates("b", cv, db)]
    board = run_leaderboard(db, both, "gradcam,eigencam", _small(protocol="followup"))
    assert not board.excluded and not board.undefined
    bench = BenchmarkConfig(method="gradcam", fusion="relative", selection="correct", n_boot=20, agreement=False,
                            examples=False, shortcut_test=False)
    items = run_benchmark(db, load_candidates("a", cv, db), bench).items
    union = items[(items["kind"] == "diagnosis-union") & items["correct"].astype(bool)]
    assert sorted(zip(union["fold"], union["stem"], strict=True)) == sorted(
        zip(correct["fold"], correct["stem"], strict=True))  # the training run's correct images, no others
    per_fold = union.groupby("fold")["dice"].mean()
    row = next(r for r in board.rows if (r["model"], r["method"]) == ("a", "gradcam"))
    assert row["agreement_images"] == len(correct)
    assert row["dice"] == pytest.approx(per_fold.mean(), abs=1e-6)
    assert row["dice_fold_sd"] == pytest.approx(float(np.std(per_fold, ddof=1)), abs=1e-6)
    assert row["n_images"] == 2 * 3  # faithfulness and sanity: the first 3 test images of each fold
    dice = {r["method"]: r["dice"] for r in board.rows if r["model"] == "a"}
    assert f"gradcam: Dice over 2 models {dice['gradcam']:.3f} ± 0.000 (mean ± SD)" in board.notes


@pytest.mark.slow
def test_a_metric_undefined_on_every_image_keeps_its_row(tiny_cv: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A model that always says Acne, tested on the other classes only: under the follow-up protocol no
    image is diagnosed correctly, so its agreement is undefined; the row stays, with the reason."""
    from dermx.data import load_dermxdb
    from dermx.models import build_model, save_checkpoint

    data, images, _ = tiny_cv
    db = load_dermxdb(data, image_dir=images, check_mask_sizes=False)
    torch.manual_seed(0)  # (with seeds 2-5 this random network's Acne Grad-CAM is all zero, and faithfulness
    # correlation is undefined too, rightly: a constant map's pixel sums do not vary over the subsets)
    model = build_model("tiny", pretrained=False, input_size=(32, 32))
    with torch.no_grad():
        model.diagnosis_out.weight.mul_(50)  # scores that move with the input (faithfulness stays defined)
        model.diagnosis_out.bias.zero_()
        model.diagnosis_out.bias[0] = 10.0  # Acne, whatever the image (the logits stay within ±1.3 without it)
    checkpoint = str(save_checkpoint(model, tmp_path / "ckpt"))
    others = [s for s in db.stems() if db.images[s].diagnosis != "Acne"]
    candidates = load_candidates("always-acne", checkpoint, db, available=others, allow_overlap=True)
    board = run_leaderboard(db, candidates, "gradcam", _small(protocol="followup"))
    (row,) = board.rows
    assert math.isnan(row["dice"]) and math.isfinite(row["deletion_auc"]) and row["agreement_images"] == 0
    undefined = {e["metric"]: e["reason"] for e in board.undefined}
    assert set(undefined) == {"dice", "sensitivity", "specificity", "pointing"}
    assert "no test image diagnosed correctly" in undefined["dice"]
    out = tmp_path / "run"
    write_leaderboard(board, out)
    csv = pd.read_csv(out / "leaderboard.csv")
    assert csv.empty and set(CONTRACT) <= set(csv.columns)  # every CSV cell is a number; the header stays
    data_json = json.loads((out / "leaderboard.json").read_text())
    assert data_json["rows"][0]["dice"] is None and len(data_json["undefined"]) == 4
    section = leaderboard_section(out)
    assert section.count("n/a: undefined on every image: no (image, map) pair to score") == 4
    printed = " ".join(CliRunner().invoke(app, ["leaderboard", str(out)], terminal_width=200).output.split())
    assert "always-acne / gradcam / dice undefined on every image: no (image, map) pair" in printed


def test_every_non_finite_cell_is_explained() -> None:
    from dermx.evaluate.leaderboard.config import UNDEFINED_WHY
    from dermx.evaluate.leaderboard.run import _undefined

    nan = float("nan")
    row = {"model": "m", "method": "gradcam", "dice": nan, "dice_low": nan, "dice_high": nan, "pointing": 0.3,
           "pointing_low": nan, "pointing_high": 0.4, "mprt_spearman": nan}
    assert _undefined(row) == [
        ("dice", "undefined on every image: " + UNDEFINED_WHY["dice"]),  # its interval goes with it
        ("pointing_low", "pointing is defined but its interval or spread is not (too few images or folds)"),
        ("mprt_spearman", "undefined on every image: " + UNDEFINED_WHY["mprt_spearman"])]
    assert _undefined({"model": "m", "dice": 0.2}) == []



@pytest.mark.slow
def test_leaderboard_on_the_auto_device_equals_the_default_and_bf16_is_within_the_tolerance(tmp_path: Path) -> None:
    """The device ``auto`` resolves to, without worker processes, gives the default rows exactly; ``bf16-mixed``
    on the CPU every column within :data:`~dermx.compute.BF16_MAP_TOLERANCE` (measured at most 0.0012)
    except those of :data:`test_compute_device.NOISY` (measured 0.050 and 0.020)."""
    from dermx.compute import BF16_MAP_TOLERANCE, Compute
    from test_compute_device import assert_leaderboards_agree, leaderboard_on, tiny_synth_checkpoint

    db, checkpoint = tiny_synth_checkpoint(tmp_path)
    default = leaderboard_on(db, checkpoint, None)
    assert leaderboard_on(db, checkpoint, Compute(Compute().accelerator, n_workers=0)) == default
    assert_leaderboards_agree(leaderboard_on(db, checkpoint, Compute("cpu", "bf16-mixed")), default,
                              BF16_MAP_TOLERANCE)
