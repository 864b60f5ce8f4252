"""``dermx evaluate --interventions``: the intervention curve (diagnosis macro F1 after correcting k characteristics
to the raters' majority, most uncertain first and in random orders) and the reliance of the diagnosis on the
characteristics (replaced by a constant, shuffled across images).

Known answers: F1(0) is the benchmark's own diagnosis F1; F1(K) and F1(k) most uncertain first are recomputed
image by image with :func:`dermx.models.intervention.intervened` and scikit-learn's F1. Two hand-built
networks that know each test image's class: one passes it through its characteristics only (shuffling them
must cost F1), one beside them (W = 0 on the characteristic part: nothing may change)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from dermx import vocab
from dermx.cli import app
from dermx.data import DermXDB
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.interventions import _corrected, _ranks, curve_table, intervention_study
from dermx.evaluate.benchmark.run import run_benchmark, write_benchmark
from dermx.evaluate.candidates import Candidate, Explanation, load_candidates
from dermx.models import build_model
from dermx.models.checkpoint import intervention_rule
from dermx.models.dermx_net import HIDDEN
from dermx.models.intervention import fit_intervention_rule, intervened
from dermx.train.datasets import characteristic_labels
from predict.samples import tiny_checkpoint
from predict.test_intervention import linear_checkpoint
from report.oracle import GRID, SPEC, oracle, tiny_synth
from support import DermXDBWriter, plain

N_DX = len(vocab.DIAGNOSES)
K = len(vocab.CHARACTERISTICS)


def test_most_uncertain_first_on_a_small_case() -> None:
    """|z| = 0.25, 3, 2, 0.5: corrected in the order 0, 3, 2, 1; the first two set to the targets at k = 2."""
    z = torch.tensor([[0.25, -3.0, 2.0, -0.5]])
    columns = torch.arange(4)
    rank = _ranks(z.abs().argsort(dim=1, stable=True))
    assert rank.tolist() == [[0, 3, 2, 1]]
    out = _corrected(z, columns, torch.full((1, 4), 9.0), rank)
    assert out.shape == (5, 1, 4)
    assert out[0].tolist() == z.tolist() and out[4].tolist() == [[9.0] * 4]
    assert out[2].tolist() == [[9.0, -3.0, 2.0, 9.0]]
    only = _corrected(z, torch.tensor([1, 2]), torch.tensor([[7.0, 8.0]]), _ranks(torch.tensor([[1, 0]])))
    assert only[1].tolist() == [[0.25, -3.0, 8.0, -0.5]]  # column 2 first; columns 0 and 3 never touched


class Lookup(torch.nn.Module):
    """A backbone that knows the test images: each image's feature vector is the one-hot code of the class of
    the stored image nearest to it (the same preprocessing gives the same tensor: distance 0)."""

    def __init__(self, images: torch.Tensor, classes: torch.Tensor, width: int) -> None:
        super().__init__()
        self.register_buffer("stored", images.flatten(1))
        self.register_buffer("codes", torch.nn.functional.one_hot(classes, width).float())
        self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nearest = torch.cdist(x.flatten(1), self.stored).argmin(dim=1)
        return self.codes[nearest][:, :, None, None]


def lookup_candidate(db: DermXDB, name: str, *, reads_characteristics: bool) -> Candidate:
    """A linear network on :class:`Lookup` features: characteristic j < 6 has logit +5 on images of class j, else
    −5 (the rule: absent −4.5, present +4.5); the diagnosis is ``z_char[:6]`` (``reads_characteristics``) or
    the class code through ``h`` with W = 0 on the characteristic part. A stand-in candidate carrying it."""
    probe = Candidate.stand_in(name, oracle, db.stems(), SPEC, GRID)
    batches = list(probe.batches(db, batch_size=64))
    images = torch.cat([b["image"] for _, b in batches])
    classes = torch.cat([b["diagnosis"] for _, b in batches])
    model = build_model("tiny", pretrained=False, input_size=SPEC.size)
    hidden, head = model.diagnosis_mlp, model.characteristic_head
    assert hidden is not None and head is not None
    width = hidden[1].in_features
    model.backbone = Lookup(images, classes, width)
    eye = torch.eye(N_DX)
    with torch.no_grad():
        for module in (head, hidden, model.diagnosis_out):
            for parameter in module.parameters():
                parameter.zero_()
        head[1].weight[:N_DX, :N_DX] = eye
        head[4].weight[:N_DX, :N_DX] = 10 * eye
        head[4].bias.fill_(-5.0)
        if reads_characteristics:
            model.diagnosis_out.weight[:, HIDDEN:HIDDEN + N_DX] = eye
        else:
            hidden[1].weight[:N_DX, :N_DX] = eye
            model.diagnosis_out.weight[:, :N_DX] = eye
    model.config.interventions = fit_intervention_rule(torch.tensor([[-5.0] * K, [5.0] * K]),
                                                       vocab.CHARACTERISTICS).to_dict()
    model.eval()

    def explain(batch: dict[str, torch.Tensor]) -> Explanation:
        with torch.no_grad():
            out = model(batch["image"])
        size = (len(batch["image"]), K, *SPEC.size)
        return Explanation(out["diagnosis"].softmax(dim=1), out["characteristic"].sigmoid(), torch.zeros(size),
                           torch.zeros(size[0], 1, *SPEC.size), out["diagnosis"])

    return dataclasses.replace(Candidate.stand_in(name, explain, db.stems(), SPEC, GRID), model=model)


CONFIG = BenchmarkConfig(n_boot=200, batch_size=12, agreement=False, shortcut_test=False, examples=False,
                         interventions=True, intervention_draws=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DermXDB, BenchmarkResult, list[Candidate]]:
    root = tmp_path_factory.mktemp("interventions")
    db = tiny_synth(root / "data")
    candidates = [*load_candidates("linear", linear_checkpoint(root / "linear"), db, allow_overlap=True),
                  lookup_candidate(db, "reads", reads_characteristics=True),
                  lookup_candidate(db, "ignores", reads_characteristics=False),
                  *load_candidates("old", tiny_checkpoint(root / "old"), db, allow_overlap=True)]
    return db, run_benchmark(db, candidates, CONFIG), candidates


def _by_hand(db: DermXDB, candidate: Candidate, corrected: int | None) -> tuple[float, float]:
    """Macro F1 (scikit-learn, over the classes in the truth or the predictions) and accuracy of ``candidate``'s
    network, image by image, after setting its ``corrected`` most uncertain characteristics (all for ``None``)
    to the raters' majority with :func:`intervened`."""
    model = candidate.model
    assert model is not None
    rule = intervention_rule(model.config)
    names = list(model.config.characteristics)
    truth, predicted = [], []
    for stems, batch in candidate.batches(db, batch_size=64):
        for stem, x, y in zip(stems, batch["image"], batch["diagnosis"].tolist(), strict=True):
            labels = characteristic_labels(db, stem, names, "majority")
            with torch.no_grad():
                z = model(x[None])["characteristic"][0]
            order = sorted(range(len(names)), key=lambda j: (abs(float(z[j])), j))
            chosen = order if corrected is None else order[:corrected]
            with torch.no_grad(), intervened(model, rule.values({names[j]: bool(labels[j]) for j in chosen})):
                predicted.append(int(model(x[None])["diagnosis"].argmax()))
            truth.append(y)
    classes = sorted(set(truth) | set(predicted))
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    return float(f1_score(truth, predicted, labels=classes, average="macro")), accuracy


@pytest.mark.slow
def test_k0_is_the_benchmarks_f1_and_k_all_sets_every_characteristic_to_the_majority(run: Any) -> None:
    db, result, candidates = run
    block = result.summary["interventions"]["models"]["linear"]
    diagnosis = result.summary["diagnosis"]["linear"]
    assert block["k_max"] == K and block["characteristics"] == list(vocab.CHARACTERISTICS)
    assert block["benchmark_differ"] == 0 and block["images"] == diagnosis["macro_f1"]["n"]
    for order in ("uncertain", "random"):
        start = block["curves"][order][0]
        assert {k: start["macro_f1"][k] for k in ("mean", "low", "high")} == pytest.approx(
            {k: diagnosis["macro_f1"][k] for k in ("mean", "low", "high")})
        assert {k: start["accuracy"][k] for k in ("mean", "low", "high")} == pytest.approx(
            {k: diagnosis["accuracy"][k] for k in ("mean", "low", "high")})
    f1, accuracy = _by_hand(db, candidates[0], None)
    for order in ("uncertain", "random"):
        end = block["curves"][order][K]
        assert end["macro_f1"]["mean"] == pytest.approx(f1) and end["accuracy"]["mean"] == pytest.approx(accuracy)
    assert block["gain"]["macro_f1"]["mean"] == pytest.approx(f1 - diagnosis["macro_f1"]["mean"])
    assert f1 != pytest.approx(diagnosis["macro_f1"]["mean"])  # the corrections change the diagnosis


@pytest.mark.slow
def test_the_most_uncertain_characteristics_are_corrected_first(run: Any) -> None:
    db, result, candidates = run
    block = result.summary["interventions"]["models"]["linear"]
    curve = block["curves"]["uncertain"]
    values = {k: _by_hand(db, candidates[0], k) for k in (1, 2, 3)}
    assert len({round(v[0], 9) for v in values.values()}) > 1  # the orders differ in what they change
    for k, (f1, accuracy) in values.items():
        assert curve[k]["macro_f1"]["mean"] == pytest.approx(f1) and curve[k]["accuracy"]["mean"] == pytest.approx(
            accuracy), k
    lift = block["lift"]
    assert lift["k"] == 3 and lift["uncertain"]["mean"] == pytest.approx(values[3][0] - curve[0]["macro_f1"]["mean"])
    random = block["curves"]["random"]
    assert random[0]["draw_sd"] == 0 and random[K]["draw_sd"] == pytest.approx(0, abs=1e-12)
    assert max(p["draw_sd"] for p in random) > 0  # the random orders differ between draws
    assert lift["uncertain_minus_random"]["mean"] == pytest.approx(curve[3]["macro_f1"]["mean"]
                                                                   - random[3]["macro_f1"]["mean"])


@pytest.mark.slow
def test_a_diagnosis_read_from_its_characteristics_relies_on_them_and_one_beside_them_does_not(run: Any) -> None:
    block = run[1].summary["interventions"]["models"]
    reads, ignores = block["reads"]["reliance"], block["ignores"]["reliance"]
    assert reads["plain"]["macro_f1"]["mean"] == 1.0 and ignores["plain"]["macro_f1"]["mean"] == 1.0
    assert reads["shuffled"]["drop"]["low"] > 0 and reads["shuffled"]["draw_sd"] > 0
    # the constant (the training mean, 0) gives every class the logit 0: the first class is predicted everywhere
    assert reads["constant"]["accuracy"]["mean"] == pytest.approx(
        (run[1].images.query("model == 'reads'")["reference"] == vocab.DIAGNOSES[0]).mean())
    assert reads["constant"]["drop"]["low"] > 0
    for name in ("constant", "shuffled"):
        assert ignores[name]["macro_f1"]["mean"] == 1.0
        assert [ignores[name]["drop"][k] for k in ("mean", "low", "high")] == pytest.approx([0, 0, 0], abs=1e-12)
    for order in ("uncertain", "random"):
        assert {p["macro_f1"]["mean"] for p in block["ignores"]["curves"][order]} == {1.0}


@pytest.mark.slow
def test_the_summary_key_is_strict_json_and_the_table_has_a_row_per_model_order_and_k(run: Any,
                                                                                     tmp_path: Path) -> None:
    _, result, _ = run
    write_benchmark(result, tmp_path)

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token}")

    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"), parse_constant=refuse)
    block = summary["interventions"]
    assert set(block["models"]) == {"linear", "reads", "ignores"} and list(block["skipped"]) == ["old"]
    assert "records no intervention rule" in block["skipped"]["old"]
    assert block["draws"] == 8 and block["labels"] == "majority" and summary["config"]["interventions"] is True
    table = pd.read_csv(tmp_path / "interventions.csv")
    assert len(table) == 3 * 2 * (K + 1)
    assert set(table.groupby(["model", "order"])["k"].apply(tuple)) == {tuple(range(K + 1))}
    row = table.query("model == 'linear' and order == 'random' and k == 3").iloc[0]
    point = block["models"]["linear"]["curves"]["random"][3]
    assert row["macro_f1"] == pytest.approx(point["macro_f1"]["mean"]) and row["draws"] == 8
    assert row["macro_f1_low"] == pytest.approx(point["macro_f1"]["low"])
    assert row["macro_f1_draw_sd"] == pytest.approx(point["draw_sd"])
    assert table.query("order == 'uncertain'")["macro_f1_draw_sd"].isna().all()


@pytest.mark.slow
def test_the_report_section_shows_the_curves_and_says_what_correcting_does(run: Any, tmp_path: Path) -> None:
    from dermx.report import render_report
    from dermx.report.intervention_section import intervention_section, model_sentences

    _, result, _ = run
    write_benchmark(result, tmp_path)
    text = render_report(tmp_path).read_text(encoding="utf-8")
    assert "Clinician in the loop: correcting characteristics" in text and 'alt="intervention curves"' in text
    block = result.summary["interventions"]["models"]["linear"]
    start, after = block["curves"]["uncertain"][0]["macro_f1"], block["curves"]["uncertain"][3]["macro_f1"]
    first, second = model_sentences(result.summary, "linear")
    assert first.startswith("linear: correcting the 3 most uncertain characteristics ") and (
        f"diagnosis macro F1 from {start['mean']:.3f} to {after['mean']:.3f} [{after['low']:.3f}, "
        f"{after['high']:.3f}]") in first
    assert f"correcting all {K}: F1({K}) − F1(0) = {block['gain']['macro_f1']['mean']:+.3f} [" in first
    assert "F1 drops by" in second
    assert "ignores, reliance on its characteristics: with them replaced by a constant its F1 drops by +0.000 [" in text
    assert "Not measured: old (the checkpoint records no intervention rule" in text
    assert intervention_section({}, str) == ""  # a run without --interventions


@pytest.mark.slow
def test_models_that_cannot_be_measured_are_listed_with_the_reason(run: Any, tmp_path: Path) -> None:
    db = run[0]
    candidates = [*load_candidates("dx", tiny_checkpoint(tmp_path / "dx", kind="dx-only"), db, allow_overlap=True),
                  Candidate.stand_in("oracle", oracle, db.stems(), SPEC, GRID)]
    summary, table = intervention_study(db, candidates, CONFIG, patients={}, images=pd.DataFrame())
    assert summary["models"] == {} and table.empty and list(table.columns) == list(curve_table(
        {"models": {}, "draws": 1}).columns)
    assert summary["skipped"] == {"dx": "this model has no characteristics (a dx-only model): nothing to set",
                                  "oracle": "a stand-in, not a network: the curve recomputes a network's heads"}


@pytest.mark.parametrize(("flag", "needed"), [("--n-intervention-draws", "--interventions"),
                                              ("--n-steps", "--methods")])
def test_a_count_without_its_flag_is_a_usage_error(tmp_path: Path, make_dermxdb: Callable[[], DermXDBWriter],
                                                   flag: str, needed: str) -> None:
    data = make_dermxdb()
    data.annotation("labeller1", "a", [])
    (tmp_path / "model").mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--data", str(data.root), "--images", str(tmp_path), "--candidate",
                                      f"m={tmp_path / 'model'}", "--out", str(tmp_path / "out"), flag, "5"])
    assert result.exit_code == 2 and f"{flag} has an effect only with {needed}" in plain(result.output)


@pytest.mark.slow
def test_the_command_line_measures_the_curve(run: Any, tmp_path: Path) -> None:
    db = run[0]
    checkpoint = linear_checkpoint(tmp_path / "linear")
    result = CliRunner().invoke(app, ["evaluate", "--data", str(db.root), "--images", str(Path(db.root) / "images"),
                                      "--candidate", f"linear={checkpoint}", "--out", str(tmp_path / "out"),
                                      "--allow-overlap", "--no-agreement", "--no-report", "--n-boot", "50",
                                      "--interventions", "--n-intervention-draws", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["config"]["intervention_draws"] == 3 and summary["interventions"]["draws"] == 3
    assert summary["interventions"]["models"]["linear"]["k_max"] == K
    assert len(pd.read_csv(tmp_path / "out" / "interventions.csv")) == 2 * (K + 1)
