"""Rater agreement: hand-computed cases, an independent per-pair implementation, and the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from dermx import vocab
from dermx.cli import app
from dermx.data import DermXDB, load_dermxdb
from dermx.evaluate import (
    all_ordered_pairs,
    diagnosis_vs_reference,
    localization_agreement,
    rater_agreement,
    repeat_pairs,
)
from dermx.evaluate.agreement.tables import NO_DIAGNOSIS, _overlap
from support import polygon

LEFT = [(0, 0), (9, 0), (9, 9), (0, 9)]  # PIL fills the outline too: 10 x 10 = 100 pixels
SHIFTED = [(5, 0), (14, 0), (14, 9), (5, 9)]  # overlaps LEFT on x = 5..9: 50 pixels
BELOW = [(0, 20), (9, 20), (9, 29), (0, 29)]  # disjoint from both
PIXELS = 40 * 30


@pytest.fixture
def small_db(make_dermxdb) -> DermXDB:
    w = make_dermxdb()
    w.annotation("labeller1", "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Plaque", **polygon(LEFT)}])
    w.annotation("labeller2", "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Plaque", **polygon(SHIFTED)},
                                       {"name": "Scale", **polygon(LEFT)}])
    w.annotation("labeller3", "img1", [{"name": "Acne", "tag": {}}, {"name": "Plaque", **polygon(BELOW)}])
    w.annotation("labeller12", "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Plaque", **polygon(SHIFTED)}])
    w.annotation("labeller1", "img2", [{"name": "Vitiligo", "tag": {}}])
    w.annotation("labeller2", "img2", [])
    w.annotation("labeller3", "img2", [{"name": "Vitiligo", "tag": {}}, {"name": "Patch", **polygon(LEFT)}])
    w.metadata([("img1", "Psoriasis"), ("img2", "Vitiligo")])
    return load_dermxdb(w.root, strict=True)


def test_pairwise_localization_hand_computed(small_db: DermXDB) -> None:
    assert small_db.rater_stack("img1", characteristics=["Plaque"]).sum(dim=(-2, -1)).tolist() == [[100, 100, 100]]
    tables = localization_agreement(small_db, ["img1", "img2"], all_ordered_pairs(small_db.annotators()))
    pairs = tables.pairs.set_index(["a", "b"])
    assert len(pairs) == 6  # Plaque on img1 only: Scale and Patch have a single rater each
    one_two = pairs.loc[("labeller1", "labeller2")]
    assert one_two["dice"] == pytest.approx(2 * 50 / 200)
    assert one_two["iou"] == pytest.approx(50 / 150)
    assert one_two["sensitivity"] == pytest.approx(50 / 100)
    assert one_two["specificity"] == pytest.approx((PIXELS - 150) / (PIXELS - 100))
    assert pairs.loc[("labeller1", "labeller3")]["dice"] == 0
    # leave-one-out for rater 1: y = (m2 + m3) / 2, TP = 50 / 2, Σy = 100, Σp = 100
    loo = tables.leave_one_out.set_index("a").loc["labeller1"]
    assert loo["sensitivity"] == pytest.approx(25 / 100)
    assert loo["dice"] == pytest.approx(2 * 25 / 200)
    assert loo["reference_raters"] == 2


def test_overlap_equals_matrix_product() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((5, 37, 53)) > 0.6  # odd sizes exercise the bit padding
    flat = masks.reshape(5, -1).astype(np.int64)
    assert torch.equal(_overlap(masks), torch.from_numpy(flat @ flat.T).double())
    assert _overlap(np.zeros((3, 4, 4), dtype=bool)).sum() == 0


def _straightforward(db: DermXDB, stems: list[str], size: tuple[int, int]) -> tuple[dict, dict]:
    """Per-pair and leave-one-out scores, one pair at a time with the plain Zadeh formulas."""
    pairs, loo = {}, {}
    for stem in stems:
        ratings = db.ratings_of(stem)
        names = [r.annotator for r in ratings]
        stack = db.rater_stack(stem, annotators=names, size=size).numpy().astype(np.float64)
        for c, characteristic in enumerate(vocab.CHARACTERISTICS):
            drew = [characteristic in r.characteristics for r in ratings]
            if sum(drew) < 2:
                continue
            for i, j in itertools.permutations(range(len(names)), 2):
                if drew[i] and drew[j]:
                    p, y = stack[c, i], stack[c, j]
                    tp = np.minimum(p, y).sum()
                    tn = np.minimum(1 - p, 1 - y).sum()
                    pairs[(stem, characteristic, names[i], names[j])] = (
                        tp / y.sum(), tn / (1 - y).sum(), 2 * tp / (p.sum() + y.sum()), tp / np.maximum(p, y).sum())
            for i in range(len(names)):
                if drew[i]:
                    p = stack[c, i]
                    y = np.delete(stack[c], i, axis=0).mean(axis=0)
                    tp = np.minimum(p, y).sum()
                    tn = np.minimum(1 - p, 1 - y).sum()
                    loo[(stem, characteristic, names[i])] = (
                        tp / y.sum(), tn / (1 - y).sum(), 2 * tp / (p.sum() + y.sum()), tp / np.maximum(p, y).sum())
    return pairs, loo


@pytest.mark.realdata
def test_real_data_matches_straightforward_implementation(dermxdb: DermXDB) -> None:
    stems = dermxdb.stems()[::60]  # 10 images spread over the diagnoses
    size = (96, 128)
    expected_pairs, expected_loo = _straightforward(dermxdb, stems, size)
    tables = localization_agreement(dermxdb, stems, all_ordered_pairs(dermxdb.annotators()), size=size)
    scores = ["sensitivity", "specificity", "dice", "iou"]
    got = {(r.stem, r.characteristic, r.a, r.b): tuple(getattr(r, s) for s in scores)
           for r in tables.pairs.itertuples()}
    assert got.keys() == expected_pairs.keys() and len(got) > 50
    np.testing.assert_allclose(np.array(list(got.values())), np.array([expected_pairs[k] for k in got]), rtol=1e-9)
    got_loo = {(r.stem, r.characteristic, r.a): tuple(getattr(r, s) for s in scores)
               for r in tables.leave_one_out.itertuples()}
    assert got_loo.keys() == expected_loo.keys()
    np.testing.assert_allclose(np.array(list(got_loo.values())), np.array([expected_loo[k] for k in got_loo]),
                               rtol=1e-9)


@pytest.mark.realdata
def test_real_diagnosis_agreement_matches_sklearn(dermxdb: DermXDB) -> None:
    stems = dermxdb.stems()
    table = diagnosis_vs_reference(dermxdb, stems, ["labeller4"]).iloc[0]
    truth = [dermxdb.images[s].diagnosis for s in stems]
    answers = [dermxdb.ratings_of(s, ["labeller4"])[0].diagnosis or NO_DIAGNOSIS for s in stems]
    expected = f1_score(truth, answers, labels=list(vocab.DIAGNOSES), average=None)
    np.testing.assert_allclose([table[d] for d in vocab.DIAGNOSES], expected)
    assert table["macro_f1"] == pytest.approx(expected.mean())
    assert [p[1] for p in repeat_pairs(dermxdb)] == dermxdb.annotators()


def test_diagnosis_without_tag_counts_as_wrong(small_db: DermXDB) -> None:
    table = diagnosis_vs_reference(small_db, small_db.stems(), small_db.annotators()).set_index("rater")
    assert table.loc["labeller2", "no_diagnosis"] == 1
    assert table.loc["labeller2", "accuracy"] == 0.5  # Psoriasis right, img2 empty = wrong
    assert table.loc["labeller1", "accuracy"] == 1.0


def test_cli_writes_summary_of_documented_shape(small_db: DermXDB, tmp_path: Path) -> None:
    out = tmp_path / "agreement"
    result = CliRunner().invoke(app, ["interrater", "--data", str(small_db.root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["raters"] == ["labeller1", "labeller2", "labeller3"] and summary["images"] == 2
    macro = summary["diagnosis"]["rater_vs_reference"]["macro_f1"]
    assert set(macro) >= {"mean", "sd"}
    assert set(summary["diagnosis"]["pairwise"]["Psoriasis"]) >= {"f1", "kappa"}
    assert summary["identification"]["Plaque"]["pairs"] == 6
    plaque = summary["localization"]["per_characteristic"]["Plaque"]
    assert plaque["pairs"] == 6 and set(plaque) >= {"sensitivity", "specificity", "dice", "iou"}
    assert summary["localization"]["overall"]["pairs"] == 6
    assert summary["leave_one_out"]["overall"]["pairs"] == 3
    assert summary["intra_rater"]["pairs"] == [["labeller12", "labeller1"]]
    intra = summary["intra_rater"]["localization"]["overall"]
    assert intra["pairs"] == 1 and intra["dice"] == pytest.approx(0.5)
    assert (out / "localization.png").stat().st_size > 1000
    assert (out / "localization_pairs.csv").is_file()
    assert "Plaque" in result.output and "overall" in result.output


def test_rater_subset_and_resize(small_db: DermXDB) -> None:
    result = rater_agreement(small_db, annotators=["labeller1", "labeller2"], size=(15, 20), intra=False)
    assert result.summary["raters"] == ["labeller1", "labeller2"]
    assert result.summary["localization"]["overall"]["pairs"] == 2
    assert "intra_rater" not in result.summary


def test_release_without_repeat_pass(make_dermxdb, tmp_path: Path) -> None:
    w = make_dermxdb()
    w.annotation("labeller1", "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Plaque", **polygon(LEFT)}])
    w.annotation("labeller2", "img1", [{"name": "Acne", "tag": {}}, {"name": "Plaque", **polygon(SHIFTED)}])
    w.metadata([("img1", "Psoriasis")])
    db = load_dermxdb(w.root, strict=True)
    intra = rater_agreement(db).summary["intra_rater"]
    assert intra["pairs"] == [] and intra["images"] == 0 and intra["localization"]["overall"]["pairs"] == 0
    out = tmp_path / "agreement"
    result = CliRunner().invoke(app, ["interrater", "--data", str(w.root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "no repeat-pass files" in result.output
    assert json.loads((out / "summary.json").read_text())["localization"]["overall"]["pairs"] == 2


def test_cli_no_intra_skips_the_repeat_pass(small_db: DermXDB, tmp_path: Path) -> None:
    out = tmp_path / "agreement"
    result = CliRunner().invoke(app, ["interrater", "--data", str(small_db.root), "--out", str(out), "--no-intra"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert "intra_rater" not in summary and summary["localization"]["overall"]["pairs"] == 6
    assert not (out / "intra_localization_pairs.csv").exists()


def test_tables_separate_tags_and_include_the_repeat_pass(make_dermxdb) -> None:
    from dermx.evaluate.agreement.interrater import INTER_LABEL, INTRA_LABEL
    from dermx.runs.interrater import UNDEFINED_NOTE, markdown_tables

    w = make_dermxdb()
    for annotator, shape in (("labeller1", LEFT), ("labeller2", SHIFTED), ("labeller12", LEFT)):
        w.annotation(annotator, "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Female", "tag": {}},
                                         {"name": "Plaque", **polygon(shape)}])
    w.metadata([("img1", "Psoriasis")])
    db = load_dermxdb(w.root, strict=True)
    labels: list[str] = []
    result = rater_agreement(db, progress=lambda stems, label: labels.append(label) or stems)
    assert labels == [INTER_LABEL, INTRA_LABEL]  # two passes, two names
    text = markdown_tables(result.summary)
    tags = text.index("| tag (not outlined): identification, between raters")
    characteristics = text.index("| characteristic: identification, between raters")
    assert "| Female |" in text[tags:] and "| Female |" not in text[characteristics:tags]
    assert "| Plaque |" in text[characteristics:tags]
    repeat = text.index("**Intra-rater (repeat pass)**")
    assert "| localization, repeat pass |" in text[repeat:] and "| diagnosis, repeat pass |" in text[repeat:]
    assert "1 rater, each against their own first answer, on 1 image rated twice" in text
    assert "± –" in text and UNDEFINED_NOTE in text  # one pair: its SD is undefined, and the page says what – means
