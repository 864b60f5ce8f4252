"""Groups of images by any attribute (``dermx evaluate --groups FILE``) and the deletion AUC per group: the
groups file's errors name the file and the line, images it lacks or names in excess are counted, the
figures per group equal a hand computation, and a calibration's per-group thresholds apply only to the
attribute it was fitted on."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from dermx import vocab
from dermx.evaluate.benchmark.groups import Partition, add_score, score_groups
from dermx.evaluate.benchmark.trust import model_trust
from dermx.evaluate.image_groups import ImageGroups, coverage_message, image_stem, read_groups
from dermx.evaluate.leaderboard.config import Leaderboard, LeaderboardConfig
from dermx.evaluate.leaderboard.model_metrics import ModelMetrics
from dermx.evaluate.leaderboard.run import _deletion_groups
from dermx.evaluate.pipeline import add_deletion
from dermx.evaluate.stats import bonferroni, estimate, one_thread
from dermx.trust.calibration import ece
from dermx.trust.fitted import fit_model_calibration


def _write(tmp_path: Path, text: str, name: str = "groups.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_groups_file_gives_each_stem_its_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufefffitzpatrick , image\nII,ISIC_01.JPG\n\nV, sub/ISIC_02.png\nI,img.v2\n")
    groups = read_groups(path)
    assert groups.by == "fitzpatrick" and groups.file == str(path)
    assert dict(groups.values) == {"ISIC_01": "II", "ISIC_02": "V", "img.v2": "I"}  # only image suffixes dropped
    assert groups.labels(["ISIC_02", "other"]) == ["V", "unknown"]
    assert image_stem("a/b/c.tiff") == "c" and image_stem(" c ") == "c"


@pytest.mark.parametrize(("text", "message"), [
    ("", r"line 1: a groups file has exactly two columns.*got 0"),
    ("image,fitzpatrick,site\na,I,arm\n", r"line 1: a groups file has exactly two columns.*got 3"),
    ("stem,fitzpatrick\na,I\n", r"line 1: no column 'image'"),
    ("image,\na,I\n", r"line 1: the second column needs the attribute's name"),
    ("image,image\na,I\n", r"line 1: the second column needs the attribute's name"),
    ("image,reference\na,I\n", r"line 1: the attribute 'reference' is a column of the benchmark's images table"),
    ("image,dx:Acne\na,I\n", r"line 1: the attribute 'dx:Acne' is a column"),
    ("image,fitzpatrick\na,I\nb,II,x\n", r"line 3: expected 2 fields \(image,fitzpatrick\); got 3"),
    ("image,fitzpatrick\na,I\n\nb,\n", r"line 4: empty fitzpatrick"),
    ("image,fitzpatrick\n,I\n", r"line 2: empty image"),
    ("image,fitzpatrick\na.jpg,I\nb,II\na.png,III\n", r"line 4: image 'a' is already on line 2"),
])
def test_a_broken_groups_file_is_an_error_naming_the_file_and_line(tmp_path: Path, text: str,
                                                                     message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"^{path}, {message}"):
        read_groups(path)


def test_images_missing_from_the_file_and_rows_of_other_images_are_counted(tmp_path: Path) -> None:
    groups = read_groups(_write(tmp_path, "image,site\na,arm\nb,leg\nx,arm\ny,face\nz,arm\n"))
    coverage = groups.coverage(["a", "b", "c", "d"])
    assert coverage == {"by": "site", "file": "groups.csv", "unknown_images": 2, "unknown_examples": ["c", "d"],
                        "rows": 5, "not_in_benchmark": 3, "not_in_benchmark_examples": ["x", "y", "z"]}
    said = coverage_message(coverage)
    assert said is not None and said.startswith("warning: 2 test image(s) have no site in groups.csv")
    assert "3 row(s) of groups.csv name images that are not test images" in said
    assert coverage_message(groups.coverage(["a", "b", "x", "y", "z"])) is None
    metadata = ImageGroups("skin_tone", {"a": "dark"})  # DermXDB's: no file, no rows to count
    assert metadata.coverage(["a", "b"]) == {"by": "skin_tone", "file": None, "unknown_images": 1,
                                             "unknown_examples": ["b"]}
    assert "no skin_tone in DermXDB's metadata" in str(coverage_message(metadata.coverage(["a", "b"])))


def test_evaluate_refuses_a_broken_groups_file_before_any_work(tmp_path: Path) -> None:
    from dermx.cli import app

    bad = _write(tmp_path, "image;fitzpatrick\na;I\n")
    folder = tmp_path / "data"
    folder.mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--data", str(folder), "--images", str(folder), "--candidate",
                                      f"m={folder}", "--out", str(tmp_path / "out"), "--groups", str(bad)])
    assert result.exit_code == 1, result.output
    assert f"error: {bad}, line 1: a groups file has exactly two columns" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


#: The hand-made case: stems, fold, deletion AUC, group (None: not in the file) and patient.
CASE = [("a", 0, 0.1, "I", "p1"), ("b", 0, 0.3, "I", "p1"), ("c", 0, 0.5, "II", "c"), ("d", 0, 0.7, "II", "d"),
        ("e", 1, 0.5, "I", "e"), ("f", 1, 0.6, None, "f")]


def _case() -> tuple[list[ModelMetrics], list[Any], ImageGroups, pd.Series]:
    folds = [ModelMetrics([s for s, f, *_ in CASE if f == fold], {"cam": {"deletion_auc": torch.tensor(
        [v for _, f, v, *_ in CASE if f == fold], dtype=torch.float64)}}) for fold in (0, 1)]
    candidates = [SimpleNamespace(fold=0), SimpleNamespace(fold=1)]
    groups = ImageGroups("fitzpatrick", {s: g for s, _, _, g, _ in CASE if g is not None}, "groups.csv")
    return folds, candidates, groups, pd.Series({s: p for s, *_, p in CASE})


def test_deletion_auc_per_group_and_its_gap_by_hand() -> None:
    """Group I (a, b of one patient, e): (0.1 + 0.3 + 0.5)/3 = 0.3 against the rest (0.5 + 0.7 + 0.6)/3 = 0.6;
    II: 0.6 against (0.1 + 0.3 + 0.5 + 0.6)/4 = 0.375; unknown (f): 0.6 against 2.1/5 = 0.42. The folds are
    pooled per image; the CIs are the stats helpers' on the same rows, the gaps' at the Bonferroni level
    over the three groups."""
    folds, candidates, groups, clusters = _case()
    config = LeaderboardConfig(n_boot=300, seed=1)
    out = _deletion_groups(folds, candidates, "cam", groups, config, clusters)  # type: ignore[arg-type]
    assert out["level"] == pytest.approx(1 - 0.05 / 3) == bonferroni(3)
    by_hand = {"I": (0.3, -0.3, 3, 2), "II": (0.6, 0.225, 2, 2), "unknown": (0.6, 0.18, 1, 1)}
    assert set(out["groups"]) == set(by_hand)
    for name, (mean, gap, images, patients) in by_hand.items():
        entry = out["groups"][name]
        assert (entry["images"], entry["patients"]) == (images, patients), name
        assert entry["deletion_auc"]["mean"] == pytest.approx(mean), name
        assert entry["gap"]["deletion_auc"]["mean"] == pytest.approx(gap), name
        assert entry["gap"]["deletion_auc"]["level"] == out["level"]
        assert (entry["gap"]["deletion_auc"]["n"], entry["gap"]["deletion_auc"]["n_group"]) == (6, images)
    rows = pd.DataFrame([{"stem": s, "fold": f, "deletion_auc": v} for s, f, v, *_ in CASE])
    alone = estimate(rows[rows["stem"].isin({"a", "b", "e"})], "deletion_auc", clusters=clusters, n_boot=300,
                     seed=1)
    assert out["groups"]["I"]["deletion_auc"] == alone  # the group's own CI, over its 2 patients
    gap = out["groups"]["I"]["gap"]["deletion_auc"]
    assert gap["low"] < -0.3 < gap["high"] and gap["unit"] == "patient"


def test_the_benchmark_methods_deletion_auc_joins_the_summarys_groups() -> None:
    folds, candidates, groups, clusters = _case()
    board = Leaderboard(config=LeaderboardConfig(n_images=4, steps=3, n_boot=50))
    figures = _deletion_groups(folds, candidates, "cam", groups, board.config, clusters)  # type: ignore[arg-type]
    board.groups = {"by": "fitzpatrick", "score": "deletion_auc", "images": "the first 4 test images of each fold",
                    "models": {"m": {"cam": {"same_maps": ["gradcam"], **figures}}}}
    blank = {"images": 1, "patients": 1, "gap": {}}
    summary: dict[str, Any] = {"config": {"method": "gradcam"}, "groups": {
        "by": "fitzpatrick", "scores": ["accuracy", "macro_f1", "dice", "pointing"],
        "models": {"m": {"groups": {name: {**blank, "gap": {}} for name in ("I", "II", "III", "unknown")}}}}}
    assert add_deletion(summary, board)  # Grad-CAM shares the CAM row's maps
    block = summary["groups"]
    assert block["scores"][-1] == "deletion_auc" and block["deletion_auc"]["method"] == "gradcam"
    assert block["deletion_auc"]["images"] == "the first 4 test images of each fold"
    assert block["models"]["m"]["groups"]["I"]["deletion_auc"]["mean"] == pytest.approx(0.3)
    assert block["models"]["m"]["groups"]["I"]["gap"]["deletion_auc"]["mean"] == pytest.approx(-0.3)
    assert "deletion_auc" not in block["models"]["m"]["groups"]["III"]  # none of its images was perturbed
    summary["config"]["method"] = "eigencam"
    assert not add_deletion(summary, board)
    with pytest.raises(ValueError, match=r"deletion_auc of models the benchmark did not score: \['other'\]"):
        add_score(block, "deletion_auc", {"other": figures}, {})


def test_a_partitions_mean_score_averages_pairs_per_image_first() -> None:
    """Two pairs of image a (0.2, 0.4 → 0.3) weigh as one image against b (0.9) in group x; y is c (0.5)."""
    rows = pd.DataFrame({"stem": ["a", "a", "b", "c"], "dice": [0.2, 0.4, 0.9, 0.5]})
    part = Partition.of(["a", "b", "c"], ["x", "x", "y"], None)
    figures = part.mean_score(rows, "dice", clusters=None, n_boot=100, seed=0)
    assert figures["x"][0]["mean"] == pytest.approx(0.6) and figures["x"][1]["mean"] == pytest.approx(0.1)
    assert figures["y"][1]["mean"] == pytest.approx(-0.1) and part.counts("x") == {"images": 2, "patients": 2}
    same = score_groups(rows, "dice", ImageGroups("site", {"a": "x", "b": "x", "c": "y"}), clusters=None,
                        n_boot=100, seed=0)
    assert same["groups"]["x"]["dice"] == figures["x"][0] and same["groups"]["y"]["gap"]["dice"] == figures["y"][1]


def _images(groups: list[str]) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """Test images with logits (the true class's raised by 2) and the same values as two attributes."""
    rng = np.random.default_rng(2)
    n = len(groups)
    y = rng.integers(0, 6, n)
    z = rng.normal(0, 1.5, (n, 6))
    z[np.arange(n), y] += 2.0
    p = torch.tensor(z).softmax(dim=1).numpy()
    frame = pd.DataFrame({"stem": [f"i{k:02d}" for k in range(n)], "reference": [vocab.DIAGNOSES[k] for k in y],
                          "fold": 0, **{f"dx:{d}": p[:, i] for i, d in enumerate(vocab.DIAGNOSES)},
                          **{f"logit:{d}": z[:, i] for i, d in enumerate(vocab.DIAGNOSES)},
                          "skin_tone": groups, "site": groups})
    return frame, torch.tensor(z), torch.tensor(y)


def test_per_group_thresholds_apply_only_to_the_attribute_the_calibration_was_fitted_on() -> None:
    """The calibration's groups are skin tones light and medium. Grouped by skin tone, each gets its own
    temperature and threshold; grouped by another attribute whose values happen to be spelled the same,
    every group gets the overall ones and is listed as falling back."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 200)
    logits = rng.normal(0, 1.5, (200, 6))
    logits[np.arange(200), labels] += 2.0
    calibration = fit_model_calibration(logits, labels, ["light"] * 100 + ["medium"] * 100, alpha=0.2, score="lac")
    assert calibration.group_key == "skin_tone" and set(calibration.group_thresholds) == {"light", "medium"}
    tones = ["light"] * 20 + ["medium"] * 20
    images, z, y = _images(tones)
    info = {"folds": [0], "names": {}}
    kw: dict[str, Any] = {"clusters": None, "target_risk": 0.1, "n_boot": 20, "seed": 0}
    with one_thread():  # as the benchmark runs it
        own = model_trust(images, info, [calibration], by="skin_tone", **kw)
        other = model_trust(images, info, [calibration], by="site", **kw)
    assert own["conformal"]["mondrian"]["fallback"] == []
    assert other["conformal"]["mondrian"]["fallback"] == ["light", "medium"]
    for model, p in ((own, calibration.probabilities(z, tones)), (other, calibration.probabilities(z))):
        assert model["calibration"]["calibrated"]["groups"]["all"]["ece"]["mean"] == pytest.approx(ece(p, y))
    sets = calibration.sets(calibration.probabilities(z, tones), tones)
    covered = sets[torch.arange(len(y)), y].double()
    assert own["conformal"]["mondrian"]["groups"]["medium"]["coverage"]["mean"] == pytest.approx(
        covered[20:].mean().item())
    for name in ("all", "light", "medium"):  # no thresholds of their own: the Mondrian sets are the marginal ones
        assert other["conformal"]["mondrian"]["groups"][name] == other["conformal"]["marginal"]["groups"][name]
    assert not math.isclose(own["conformal"]["mondrian"]["groups"]["light"]["mean_size"]["mean"],
                            other["conformal"]["mondrian"]["groups"]["light"]["mean_size"]["mean"])
