"""The statistics a reviewer reads: paired tests instead of overlapping CIs, the raters' ceiling on the
models' own pairs, one rule for misses, patient-level intervals, folds pooled per image, and the
faithfulness correlation's random subsets in its interval (docs/design.md §8)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dermx import vocab
from dermx.evaluate.benchmark.ceiling import image_rows
from dermx.evaluate.benchmark.scoring import SCORES, score_batch
from dermx.evaluate.candidates import Explanation
from dermx.evaluate.stats import correlation_estimate, estimate, paired_difference
from dermx.report.verdict import flags, model_sentence

N = len(vocab.CHARACTERISTICS)


def _rows(values: np.ndarray, stems: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"stem": stems, "kind": "characteristic", "reference": "Papule", "dice": values})


def test_a_paired_test_sees_what_overlapping_intervals_hide() -> None:
    """The model is 0.03 above the baseline on every image while both vary a lot between images: their
    95 % CIs overlap (the old rule: "not above"), the paired CI of the difference is well above 0."""
    rng = np.random.default_rng(0)
    stems = [f"img{i:03d}" for i in range(60)]
    base = rng.uniform(0.05, 0.6, size=60)
    model = base + 0.03 + rng.normal(0, 0.005, size=60)
    a, b = estimate(_rows(model, stems), "dice", n_boot=2000), estimate(_rows(base, stems), "dice", n_boot=2000)
    assert a["low"] < b["high"]  # overlapping intervals
    paired = paired_difference(_rows(model, stems), _rows(base, stems), "dice", n_boot=2000)
    assert paired["low"] > 0.02 and paired["mean"] == pytest.approx(0.03, abs=0.003)
    row = {"source": "M", "type": "model", "char_dice": a}
    summary = {"headline": [row], "versus_baselines": {"M": {"char_dice": {"gaussian": paired}}},
               "gap_closed": {}, "paired": []}
    assert ("M", "char_dice") not in flags(summary)
    assert "is above every baseline (paired; closest: gaussian, +0.030" in model_sentence(summary, "M")


def test_the_raters_ceiling_is_computed_as_the_models_are_scored() -> None:
    """Three raters; one characteristic outlined by rater 0 alone, another by all three identically. As a
    model would be, each rater is scored against the others' fused map, a rater who did not outline it
    scoring 0 on every score: the first pair's ceiling is 0 (rater 0 against nobody, raters 1 and 2
    missed it), the second's 1. The old, conditional ceiling saw only the second (≥ 2 raters outlined)."""
    masks = torch.zeros(3, N, 8, 8, dtype=torch.uint8)
    masks[0, 0, 2:5, 2:5] = 1  # characteristic 0: rater 0 only
    masks[:, 1, 1:4, 4:7] = 1  # characteristic 1: all three, identically
    rows = image_rows("img", masks, "mean", tolerance=0.0)
    chars = rows[rows["kind"] == "characteristic"]
    assert set(chars["reference"]) == {vocab.CHARACTERISTICS[0], vocab.CHARACTERISTICS[1]}
    lonely = chars[chars["reference"] == vocab.CHARACTERISTICS[0]].set_index("rater")
    assert lonely.loc[0, "dice"] == 0.0  # outlined, against an empty reference: Dice 0
    for rater in (1, 2):  # missed: the worst value on every score
        assert all(lonely.loc[rater, score] == 0.0 for score in SCORES)
    shared = chars[chars["reference"] == vocab.CHARACTERISTICS[1]]
    assert (shared["dice"] == 1.0).all() and (shared["pointing"] == 1.0).all()
    pair_means = chars.groupby("reference")["dice"].mean()
    assert pair_means.mean() == pytest.approx(0.5)  # the image's ceiling on these two pairs
    union = rows[rows["kind"] == "diagnosis-union"].set_index("rater")["dice"]
    # the boxes overlap on 2 pixels: rater 0's union covers 16, the others' 9 (the shared box): 2·9 / (16 + 9);
    # rater 1's 9 against 1 on the shared box and 1/2 on rater 0's other 7 pixels: 2·9 / (9 + 9 + 3.5)
    assert union.loc[0] == pytest.approx(18 / 25) and union.loc[1] == pytest.approx(18 / 21.5)


def test_a_zeroed_map_earns_nothing_on_any_score() -> None:
    """A characteristic outlined by the experts and called absent by the model: before, its zeroed map
    scored Dice 0 but specificity 1, a fuzzy pointing credit, and no energy value; now every score is 0,
    and the row says it is a miss."""
    refs = torch.zeros(1, N + 3, 8, 8)
    refs[0, 0, 2:6, 2:6] = 1.0
    refs[0, N] = refs[0, 0]  # the union
    present = torch.zeros(1, N, dtype=torch.bool)
    present[0, 0] = True
    maps = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    explanation = Explanation(torch.full((1, 6), 1 / 6), torch.tensor([[0.2]]), torch.zeros(1, 1, 8, 8), maps)
    tables = score_batch(["img"], torch.tensor([0]), present, refs, explanation, [vocab.CHARACTERISTICS[0]],
                         grid=(2, 2))
    (row,) = tables.items[tables.items["kind"] == "characteristic"].to_dict("records")
    assert row["miss"] and not row["predicted"]
    assert {score: row[score] for score in SCORES} == dict.fromkeys(SCORES, 0.0)
    shown = Explanation(torch.full((1, 6), 1 / 6), torch.tensor([[0.9]]), refs[:, :1], maps)
    (hit,) = score_batch(["img"], torch.tensor([0]), present, refs, shown, [vocab.CHARACTERISTICS[0]],
                         grid=(2, 2)).items.query("kind == 'characteristic'").to_dict("records")
    assert not hit["miss"] and hit["dice"] == 1.0 and hit["specificity"] == 1.0


def test_patients_not_images_are_resampled() -> None:
    """Three images of each of 20 patients, identical within a patient: the interval over patients is the
    interval of the 20 patients' values, about √3 wider than one that counts 60 independent images."""
    rng = np.random.default_rng(1)
    per_patient = rng.uniform(0, 1, size=20)
    stems = [f"p{k:02d}-{j}" for k in range(20) for j in range(3)]
    rows = _rows(per_patient.repeat(3), stems)
    patients = pd.Series({s: s.split("-")[0] for s in stems})
    by_patient = estimate(rows, "dice", clusters=patients, n_boot=2000)
    by_image = estimate(rows, "dice", n_boot=2000)
    assert by_patient["unit"] == "patient" and by_image["unit"] == "image"
    assert (by_patient["high"] - by_patient["low"]) > 1.5 * (by_image["high"] - by_image["low"])


def test_folds_are_pooled_per_image_and_one_fold_has_no_spread() -> None:
    """Two folds of one model: the CI is the patient bootstrap of the pooled image means (not the mean of
    two folds' bounds), and the fold SD is given; with one fold there is no SD column at all."""
    from dermx.evaluate.leaderboard.config import LeaderboardConfig
    from dermx.evaluate.leaderboard.run import _agreement_columns

    rng = np.random.default_rng(2)
    stems = [f"img{i:02d}" for i in range(40)]
    frame = pd.DataFrame({"stem": stems, "fold": [i % 2 for i in range(40)], "kind": "characteristic",
                          "reference": "Papule", **{s: rng.uniform(0, 1, 40) for s in
                                                    ("dice", "sensitivity", "specificity", "pointing")}})
    config = LeaderboardConfig(n_boot=500)
    both = _agreement_columns(frame, config)
    pooled = estimate(frame, "dice", n_boot=500)
    per_fold = [estimate(part, "dice", n_boot=500) for _, part in frame.groupby("fold")]
    assert (both["dice_low"], both["dice_high"]) == (pooled["low"], pooled["high"])
    assert both["dice_low"] != pytest.approx(np.mean([f["low"] for f in per_fold]), abs=1e-6)
    assert both["dice_fold_sd"] == pytest.approx(np.std([f["mean"] for f in per_fold], ddof=1))
    one = _agreement_columns(frame[frame["fold"] == 0], config)
    assert "dice_fold_sd" not in one and math.isfinite(one["dice_low"])


def test_the_faithfulness_correlation_interval_carries_its_random_subsets() -> None:
    """Sixteen identical images whose correlation depends only on which random subsets were drawn: an
    interval over images alone would be a point; resampling the runs too gives it its real width."""
    rng = np.random.default_rng(3)
    sums = rng.normal(size=20)
    drops = 0.3 * sums + rng.normal(size=20)
    a, b = np.tile(sums, (16, 1)), np.tile(drops, (16, 1))
    stems = [f"img{i}" for i in range(16)]
    e = correlation_estimate(a, b, stems, n_boot=1000, seed=0)
    r = np.corrcoef(sums, drops)[0, 1]
    assert e["mean"] == pytest.approx(r) and e["unit"] == "image and run"
    assert e["low"] < r < e["high"] and e["high"] - e["low"] > 0.3
    per_image = pd.DataFrame({"stem": stems, "value": np.full(16, r)})
    images_only = estimate(per_image, "value", n_boot=1000)
    assert images_only["high"] - images_only["low"] == pytest.approx(0.0)
