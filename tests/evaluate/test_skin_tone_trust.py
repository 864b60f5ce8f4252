"""Trust per skin tone in ``dermx evaluate``: each group's diagnosis and maps with its gap to the rest, the
calibration errors before and after the model's own calibration, its diagnosis sets and abstention, all
from the benchmark's probabilities and logits (summary keys ``groups``, ``calibration``, ``conformal``,
``selective``); the same per value of a groups file's attribute (``--groups FILE``)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from dermx import vocab
from dermx.data import DermXDB
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.run import run_benchmark
from dermx.evaluate.candidates import Candidate, Explanation, carried_calibration
from dermx.jsonio import strict_json
from dermx.models import CheckpointError
from dermx.train.datasets import dermxdb_items
from dermx.trust.calibration import ece
from dermx.trust.fitted import ModelCalibration, fit_model_calibration
from report.oracle import GRID, SPEC, N, oracle, tiny_synth

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

#: The stand-in answers wrongly on every image of this skin tone, rightly elsewhere.
WRONG_ON = "medium"


def validation_calibration() -> ModelCalibration:
    """A calibration fitted on made-up validation logits (never the test images): the true class gets a
    logit of 2 plus noise of SD 1.5 (calibrated at T = 1.5² / 2 = 1.125), all times 3, so the model is
    overconfident at T = 1 and the fit asks for T ≈ 3.4, which the cross-fitted check keeps."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 6, 200)
    z = rng.normal(0, 1.5, (200, 6))
    z[np.arange(200), y] += 2.0
    z *= 3.0
    groups = ["light"] * 100 + ["medium"] * 100
    return fit_model_calibration(z, y, groups, alpha=0.2, score="lac")


def skewed(db: DermXDB, stems: list[str]) -> Any:
    """A stand-in with logits: the true class's logit is 4 plus noise, except on :data:`WRONG_ON` skin,
    where the next class gets it; the experts' maps as its own."""
    keys = [item.key for item in dermxdb_items(db, stems, vocab.CHARACTERISTICS, find_images=False)]

    def explain(batch: dict[str, torch.Tensor]) -> Explanation:
        rows = batch["index"].tolist()
        noise = torch.stack([torch.randn(6, generator=torch.Generator().manual_seed(i)) for i in rows])
        wrong = torch.tensor([db.images[keys[i]].skin_tone == WRONG_ON for i in rows])
        answer = torch.where(wrong, (batch["diagnosis"] + 1) % 6, batch["diagnosis"])
        logits = noise + 4.0 * torch.nn.functional.one_hot(answer, 6)
        maps = batch["maps"]
        return Explanation(logits.softmax(dim=1), batch["characteristics"].float(), maps[:, :N], maps[:, N:N + 1],
                           logits)

    return explain


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DermXDB, BenchmarkResult, ModelCalibration]:
    db = tiny_synth(tmp_path_factory.mktemp("synth") / "data")
    stems = db.stems()
    calibration = validation_calibration()
    candidates = [Candidate.stand_in("oracle", oracle, stems, SPEC, GRID),
                  Candidate.stand_in("skewed", skewed(db, stems), stems, SPEC, GRID, calibration=calibration)]
    config = BenchmarkConfig(n_boot=200, batch_size=12, agreement=False, shortcut_test=False, examples=False)
    return db, run_benchmark(db, candidates, config), calibration


def _finite(value: Any) -> bool:
    return isinstance(value, dict) and all(math.isfinite(value[k]) for k in ("mean", "low", "high"))


def test_summary_has_the_trust_keys_with_finite_values_in_strict_json(run: Any) -> None:
    _, result, _ = run
    summary = result.summary
    strict_json(summary)  # no NaN or infinity escapes as a non-JSON token
    groups = summary["groups"]["models"]["skewed"]["groups"]
    assert summary["groups"]["by"] == "skin_tone" and set(groups) == {"light", "medium"}
    for name, group in groups.items():
        assert group["images"] > 0 and 0 < group["patients"] <= group["images"]
        for score in ("accuracy", "macro_f1", "dice", "pointing"):
            assert _finite(group[score]), (name, score)
            assert _finite(group["gap"][score]), (name, score)
    for model in ("oracle", "skewed"):
        for name, errors in summary["calibration"][model]["uncalibrated"]["groups"].items():
            assert all(_finite(errors[k]) for k in ("ece", "ece_mass", "classwise_ece", "brier", "nll")), name
        assert all(_finite(g["aurc"]) for g in summary["selective"][model]["uncalibrated"].values())
    calibrated = summary["calibration"]["skewed"]["calibrated"]["groups"]
    assert set(calibrated) == {"all", "light", "medium"} and all(_finite(g["ece"]) for g in calibrated.values())
    for form in ("marginal", "mondrian"):
        sets = summary["conformal"]["skewed"][form]
        assert all(_finite(g["coverage"]) and _finite(g["mean_size"]) for g in sets["groups"].values())
        assert sets["worst_group"] in ("light", "medium")
    assert _finite(summary["selective"]["skewed"]["calibrated"]["all"]["answered"])


def test_a_model_without_calibration_says_so_and_gets_no_calibrated_figures(run: Any) -> None:
    summary = run[1].summary
    assert summary["calibration"]["oracle"]["calibrated"] is None
    for key in ("calibration", "conformal", "selective"):
        assert summary[key]["oracle"]["note"] == "model carries no calibration", key
    assert "marginal" not in summary["conformal"]["oracle"] and summary["selective"]["oracle"]["calibrated"] is None


def test_a_groups_accuracy_and_gap_by_hand(run: Any) -> None:
    """The stand-in is wrong on every medium-skin image and (almost always) right on the others: accuracy 0,
    a gap of −(light accuracy) whose CI excludes 0; the figures are recomputed from the images table."""
    _, result, _ = run
    images = result.images[result.images["model"] == "skewed"]
    groups = result.summary["groups"]["models"]["skewed"]["groups"]
    light = images["skin_tone"] == "light"
    assert groups["light"]["images"] == int(light.sum())
    assert groups["light"]["patients"] == images.loc[light, "patient"].nunique()
    accuracy = images.loc[light, "correct"].astype(float).mean()
    rest = images.loc[~light, "correct"].astype(float).mean()
    assert groups["light"]["accuracy"]["mean"] == pytest.approx(accuracy)
    assert groups["light"]["gap"]["accuracy"]["mean"] == pytest.approx(accuracy - rest)
    medium = groups[WRONG_ON]["gap"]["accuracy"]
    assert accuracy > 0.9 and groups[WRONG_ON]["accuracy"]["mean"] == 0.0
    assert medium["mean"] == pytest.approx(0.0 - accuracy) and medium["high"] < 0
    assert medium["level"] == pytest.approx(1 - 0.05 / 2)  # Bonferroni over the two skin tones


def test_the_models_calibration_gives_the_calibrated_errors_sets_and_abstention(run: Any) -> None:
    """Recomputed from the images table's logits with the calibration the candidate carries."""
    _, result, calibration = run
    images = result.images[result.images["model"] == "skewed"].sort_values("stem")
    z = torch.tensor(images[[f"logit:{d}" for d in vocab.DIAGNOSES]].to_numpy())
    y = torch.tensor([vocab.DIAGNOSES.index(d) for d in images["reference"]])
    tones = images["skin_tone"].tolist()
    p = calibration.probabilities(z, tones)
    assert calibration.temperature > 1 and calibration.group_temperatures  # fitted per group on validation
    block = result.summary["calibration"]["skewed"]
    assert block["calibrated"]["groups"]["all"]["ece"]["mean"] == pytest.approx(ece(p, y, n_bins=block["bins"]))
    before = torch.tensor(images[[f"dx:{d}" for d in vocab.DIAGNOSES]].to_numpy())
    assert block["uncalibrated"]["groups"]["all"]["ece"]["mean"] == pytest.approx(ece(before, y, n_bins=15))
    assert block["fitted"][0]["temperature"] == calibration.temperature
    sets = calibration.sets(p, tones)
    medium = torch.tensor([t == WRONG_ON for t in tones])
    covered = sets[torch.arange(len(y)), y]
    mondrian = result.summary["conformal"]["skewed"]["mondrian"]["groups"]
    assert mondrian[WRONG_ON]["coverage"]["mean"] == pytest.approx(covered[medium].double().mean().item())
    assert mondrian["all"]["mean_size"]["mean"] == pytest.approx(sets.sum(1).double().mean().item())
    answered = p.max(1).values >= calibration.abstention_threshold(0.1)
    assert result.summary["selective"]["skewed"]["calibrated"]["all"]["answered"]["mean"] == pytest.approx(
        answered.double().mean().item())


def test_a_checkpoints_calibration_is_read_and_a_broken_one_named(tmp_path: Path) -> None:
    record = validation_calibration().to_dict()
    assert carried_calibration(SimpleNamespace(config=SimpleNamespace()), tmp_path) is None  # type: ignore[arg-type]
    model = SimpleNamespace(config=SimpleNamespace(calibration=record))
    assert carried_calibration(model, tmp_path) == ModelCalibration.from_dict(record)  # type: ignore[arg-type]
    broken = SimpleNamespace(config=SimpleNamespace(calibration={**record, "colour": 1}))
    with pytest.raises(CheckpointError, match=rf"{tmp_path}.*calibration record.*colour"):
        carried_calibration(broken, tmp_path)  # type: ignore[arg-type]


def test_the_report_shows_the_calibrated_figures_and_names_the_gap(run: Any, tmp_path: Path) -> None:
    from dermx.evaluate.benchmark.run import write_benchmark
    from dermx.report import render_report
    from dermx.report.trust_section import trust_frame

    _, result, _ = run
    write_benchmark(result, tmp_path)
    text = render_report(tmp_path).read_text(encoding="utf-8")
    assert "Trust per skin tone" in text and 'alt="reliability per skin tone skewed"' in text
    assert "oracle: no calibrated figures: model carries no calibration." in text
    skewed = trust_frame(result.summary, "skewed").set_index("skin tone")
    after = result.summary["calibration"]["skewed"]["calibrated"]["groups"]["medium"]["ece"]["mean"]
    assert skewed.loc["medium", "ECE after"].startswith(f"{after:.3f} [")
    assert skewed.loc["medium", "accuracy gap vs rest"].startswith("⚠ -")
    assert set(trust_frame(result.summary, "oracle")["ECE after"]) == {"–"}
    assert "skewed: diagnoses are less accurate on skin tone medium: accuracy -" in text


@pytest.fixture(scope="module")
def by_site(run: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchmarkResult, list[str], Path]:
    """The skewed model's benchmark grouped by a groups file's attribute ``site``: the first three test
    images left out, two rows naming images that are not test images."""
    from dermx.evaluate.image_groups import read_groups

    db, _, calibration = run
    stems = sorted(db.stems())
    folder = tmp_path_factory.mktemp("groups")
    lines = ["image,site", *(f"{s}.png,{'arm' if k % 2 else 'leg'}" for k, s in enumerate(stems) if k >= 3),
             "not_tested_1.jpg,arm", "not_tested_2,leg"]
    (folder / "groups.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    candidate = Candidate.stand_in("skewed", skewed(db, stems), stems, SPEC, GRID, calibration=calibration)
    config = BenchmarkConfig(n_boot=200, batch_size=12, agreement=False, shortcut_test=False, examples=False)
    return run_benchmark(db, [candidate], config, groups=read_groups(folder / "groups.csv")), stems, folder


def test_a_groups_files_attribute_groups_every_trust_figure(by_site: Any) -> None:
    result, stems, _ = by_site
    summary = result.summary
    strict_json(summary)
    block = summary["groups"]
    assert block["by"] == "site" and block["coverage"] == {
        "by": "site", "file": "groups.csv", "unknown_images": 3, "unknown_examples": stems[:3],
        "rows": len(stems) - 3 + 2, "not_in_benchmark": 2,
        "not_in_benchmark_examples": ["not_tested_1", "not_tested_2"]}
    images = result.images.set_index("stem")
    assert [images.loc[s, "site"] for s in stems[:5]] == ["unknown", "unknown", "unknown", "arm", "leg"]
    assert set(images["skin_tone"]) == {"light", "medium"}  # DermXDB's strata stay
    groups = block["models"]["skewed"]["groups"]
    assert set(groups) == {"arm", "leg", "unknown"} and block["models"]["skewed"]["level"] == pytest.approx(
        1 - 0.05 / 3)
    arm = (images["site"] == "arm").to_numpy()
    correct = images["correct"].astype(float).to_numpy()
    assert groups["arm"]["images"] == arm.sum() and groups["unknown"]["images"] == 3
    assert groups["arm"]["accuracy"]["mean"] == pytest.approx(correct[arm].mean())
    assert groups["arm"]["gap"]["accuracy"]["mean"] == pytest.approx(correct[arm].mean() - correct[~arm].mean())
    assert set(summary["calibration"]["skewed"]["calibrated"]["groups"]) == {"all", "arm", "leg", "unknown"}
    assert set(summary["selective"]["skewed"]["calibrated"]) == {"all", "arm", "leg", "unknown"}
    conformal = summary["conformal"]["skewed"]
    assert conformal["mondrian"]["fallback"] == ["arm", "leg", "unknown"]  # fitted per skin tone, not per site
    assert conformal["mondrian"]["groups"] == conformal["marginal"]["groups"]


def test_the_report_of_a_groups_file_speaks_of_its_attribute(by_site: Any, tmp_path: Path) -> None:
    import pandas as pd

    from dermx.evaluate.benchmark.run import write_benchmark
    from dermx.report import render_report

    result, _, _ = by_site
    write_benchmark(result, tmp_path)
    assert "site" in pd.read_csv(tmp_path / "images.csv").columns
    text = render_report(tmp_path).read_text(encoding="utf-8")
    assert "Trust per site" in text and "Trust per skin tone" not in text
    assert "Each site group against the rest" in text and 'alt="reliability per site skewed"' in text
    assert "the calibration has no threshold per site group (its groups are values of skin tone)" in text
    assert "Groups: a site group is named when" in text and "<th title='click to sort'>site</th>" in text
