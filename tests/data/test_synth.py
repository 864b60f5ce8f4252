"""Synthetic DermXDB: format, counts, mask agreement, rater disagreement and known answers."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
import torch

from dermx import vocab
from dermx.data import load_dermxdb
from dermx.data.synth import (
    SynthSummary,
    generate,
    load_ground_truth,
    montage,
    read_synth_manifest,
    watermark_mask,
)
from dermx.metrics import dice

SIZE = (96, 128)


def _make(out: Path, **options: object) -> SynthSummary:
    settings: dict[str, object] = {"n_images": 12, "seed": 5, "size": SIZE, "progress": False}
    settings.update(options)
    return generate(out, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "db"
    return out, _make(out, n_images=36, seed=3, shortcut="Psoriasis", repeat_fraction=0.25)


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _mean_pairwise_dice(out: Path) -> float:
    """Mean Dice between the union masks of every ordered pair of first-pass raters of an image."""
    db = load_dermxdb(out)
    values = []
    for stem in db.stems():
        masks = db.rater_stack(stem).any(dim=0).float()
        for a, b in itertools.permutations(range(masks.shape[0]), 2):
            total = masks[a].sum() + masks[b].sum()
            if total > 0:
                values.append(float(2 * (masks[a] * masks[b]).sum() / total))
    return sum(values) / len(values)


@pytest.mark.slow
def test_reader_loads_output_strictly_with_expected_counts(synth: tuple[Path, SynthSummary]) -> None:
    out, summary = synth
    db = load_dermxdb(out, image_dir=out / "images", strict=True)
    assert db.report.ok
    assert len(db.stems()) == summary.n_images == 36
    first = [r for r in db.ratings if r.pass_ == "first"]
    repeat = [r for r in db.ratings if r.pass_ == "repeat"]
    assert len(first) == summary.n_ratings and len(repeat) == summary.n_repeat_ratings > 0
    assert len({r.stem for r in repeat}) == 9
    for stem in db.stems():
        assert 3 <= len(db.ratings_of(stem)) <= 8
        assert db.load_image(stem).size == (SIZE[1], SIZE[0])
        assert db.images[stem].skin_tone in ("light", "medium", "dark")
    assert set(db.masks) == {(r.annotator, r.stem, c) for r in db.ratings for c in r.characteristics}
    assert len(db.masks) == summary.n_masks
    assert {r.rater for r in db.ratings} <= {f"labeller{k}" for k in range(1, 9)}
    assert any(r.tags for r in db.ratings)


def test_folds_partition_images_and_group_patients(synth: tuple[Path, SynthSummary]) -> None:
    out, _ = synth
    db = load_dermxdb(out, strict=True)
    tests = [set(db.fold(k).test) for k in range(10)]
    assert sum(len(t) for t in tests) == len(db.stems())
    assert set().union(*tests) == set(db.stems())
    for k, test in enumerate(tests):
        assert set(db.fold(k).train) == set(db.stems()) - test
    fold_of = {s: k for k, test in enumerate(tests) for s in test}
    by_patient: dict[int, set[int]] = {}
    for stem in db.stems():
        by_patient.setdefault(db.images[stem].patient_id, set()).add(fold_of[stem])  # type: ignore[arg-type]
    assert all(len(folds) == 1 for folds in by_patient.values())
    assert len(by_patient) < len(db.stems())  # some patients have several images


def test_json_rasterised_masks_equal_written_pngs(synth: tuple[Path, SynthSummary]) -> None:
    out, _ = synth
    db = load_dermxdb(out, strict=True)
    everyone = db.annotators("first") + db.annotators("repeat")
    for stem in db.stems():
        json_stack = db.rater_stack(stem, annotators=everyone, source="json")
        assert torch.equal(json_stack, db.rater_stack(stem, annotators=everyone, source="png"))


def test_ground_truth_matches_manifest(synth: tuple[Path, SynthSummary]) -> None:
    out, _ = synth
    for entry in read_synth_manifest(out)["images"]:
        truth = load_ground_truth(out, entry["stem"])
        assert truth.shape == (16, *SIZE) and truth.dtype == torch.bool
        drawn = {vocab.CHARACTERISTICS[i] for i in range(16) if truth[i].any()}
        assert drawn == {x["characteristic"] for x in entry["lesions"]}


def test_shortcut_watermark_marks_mostly_one_class(synth: tuple[Path, SynthSummary]) -> None:
    out, summary = synth
    entries = read_synth_manifest(out)["images"]
    marked = [e for e in entries if e["watermark"]]
    assert len(marked) == summary.n_watermarked
    in_class = [e["watermark"] is not None for e in entries if e["diagnosis"] == "Psoriasis"]
    others = [e["watermark"] is not None for e in entries if e["diagnosis"] != "Psoriasis"]
    assert sum(in_class) / len(in_class) >= 0.6 and sum(others) / len(others) <= 0.2
    mask = watermark_mask(out, marked[0]["stem"])
    x0, y0, x1, y1 = marked[0]["watermark"]
    assert mask.shape == SIZE and int(mask.sum()) == (x1 - x0) * (y1 - y0)
    height, width = SIZE
    for x0, y0, x1, y1 in (e["watermark"] for e in marked):  # a corner logo: fixed bottom-right corner
        assert 0.01 * width - 1 <= width - x1 <= 0.03 * width + 1
        assert 0.01 * height - 1 <= height - y1 <= 0.03 * height + 1
        assert 0.26 * width - 1 <= x1 - x0 <= 0.3 * width + 1 and 0.18 * height - 1 <= y1 - y0 <= 0.22 * height + 1


def test_known_answer_ground_truth_beats_baselines_and_watermark(synth: tuple[Path, SynthSummary]) -> None:
    out, _ = synth
    db = load_dermxdb(out, strict=True)
    entries = {e["stem"]: e for e in read_synth_manifest(out)["images"]}
    stems = db.stems()
    reference = torch.stack([db.union_map(s) for s in stems])
    truth = torch.stack([load_ground_truth(out, s).any(dim=0) for s in stems]).float()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE[0]), torch.linspace(-1, 1, SIZE[1]), indexing="ij")
    gaussian = torch.exp(-(xx**2 + yy**2) / (2 * 0.35**2)).expand_as(truth)
    uniform = torch.full_like(truth, 0.5)
    score = {name: float(dice(m, reference).values.nanmean())
             for name, m in {"truth": truth, "gaussian": gaussian, "uniform": uniform}.items()}
    assert score["truth"] > 0.6
    assert score["truth"] > score["gaussian"] + 0.25 and score["truth"] > score["uniform"] + 0.25
    marked = [i for i, s in enumerate(stems) if entries[s]["watermark"]]
    watermark = torch.stack([watermark_mask(out, stems[i]) for i in marked]).float()
    assert float(dice(watermark, reference[marked]).values.nanmean()) < 0.15


@pytest.mark.slow
def test_rater_agreement_is_realistic_and_follows_parameters(tmp_path: Path) -> None:
    default = _mean_pairwise_dice(_make(tmp_path / "default", n_images=10).out)
    loose = _mean_pairwise_dice(_make(tmp_path / "loose", n_images=10, jitter=0.5).out)
    tight = _mean_pairwise_dice(_make(tmp_path / "tight", n_images=10, jitter=0.02).out)
    missing = _mean_pairwise_dice(_make(tmp_path / "missing", n_images=10, miss_rate=0.5).out)
    assert 0.45 < default < 0.9
    assert tight > default > loose
    assert missing < default


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    options = {"n_images": 6, "shortcut": "Acne", "repeat_fraction": 0.5}
    first = _tree_hash(_make(tmp_path / "a", **options).out)
    again = _tree_hash(_make(tmp_path / "b", workers=2, **options).out)
    other = _tree_hash(_make(tmp_path / "c", seed=6, **options).out)
    assert first == again != other


def test_regenerating_replaces_previous_output_but_not_foreign_folders(tmp_path: Path) -> None:
    out = tmp_path / "db"
    _make(out, n_images=4)
    _make(out, n_images=3)
    assert len(list((out / "images").iterdir())) == 3
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        _make(tmp_path / "foreign", n_images=2)


@pytest.mark.slow
def test_layouts_from_a_dermxdb_folder(synth: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    source, _ = synth
    out = _make(tmp_path / "layouts", n_images=6, size=(64, 80), layouts=source).out
    db = load_dermxdb(out, strict=True)
    entries = read_synth_manifest(out)["images"]
    real = load_dermxdb(source)
    for entry in entries:
        assert db.images[entry["stem"]].diagnosis == real.images[entry["layout"]].diagnosis
    assert any(load_ground_truth(out, e["stem"]).any() for e in entries)


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_raters"):
        _make(tmp_path / "x", n_raters=12)
    with pytest.raises(ValueError, match="unknown name"):
        _make(tmp_path / "y", shortcut="Eczema")


@pytest.mark.slow
def test_montage_is_small_png(synth: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    out, _ = synth
    path = montage(out, tmp_path / "montage.png", per_class=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 300_000


def test_cli_synth_command(tmp_path: Path) -> None:
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from dermx.data.synth.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the app into one command
        """Nothing."""

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "db"), "--n-images", "3",
                                      "--n-raters", "4", "--image-size", "64x80", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "images:" in result.output
    db = load_dermxdb(tmp_path / "db", strict=True)
    assert db.report.ok and len(db.images) == 3
    assert {(r.height, r.width) for r in db.images.values()} == {(64, 80)}
    bad = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "e"), "--image-size", "64by80"])
    assert bad.exit_code == 2 and "expected N or HxW" in bad.output
    # the old spellings still work for one release, with a note
    old = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "old"), "--images=2", "--raters", "3",
                                   "--size", "48"])
    assert old.exit_code == 0, old.output
    assert "synth --images` is deprecated" in old.output and "use --n-images" in old.output
    assert len(load_dermxdb(tmp_path / "old").images) == 2


def test_the_skin_tone_effect_fades_lesions_on_one_tone_only(tmp_path: Path) -> None:
    """``tone_contrast={"dark": 0.3}``: the same images as without it (same draws), except that on dark
    skin the lesions are drawn at 30 % of their contrast; masks, raters and other tones unchanged."""
    import numpy as np
    from PIL import Image

    kwargs = {"n_images": 36, "size": (48, 56), "seed": 4, "progress": False, "repeat_fraction": 0.0}
    generate(tmp_path / "plain", **kwargs)
    generate(tmp_path / "faint", tone_contrast={"dark": 0.3}, tone_probabilities={"light": 1, "dark": 1}, **kwargs)
    generate(tmp_path / "plain2", tone_probabilities={"light": 1, "dark": 1}, **kwargs)
    entries = {e["stem"]: e for e in read_synth_manifest(tmp_path / "faint")["images"]}
    tones = {e["skin_tone"] for e in entries.values()}
    assert tones == {"light", "dark"}  # the shares given: no medium skin
    assert {e["skin_tone"] for e in read_synth_manifest(tmp_path / "plain")["images"]} >= {"light", "medium"}
    faded = []
    for stem, entry in entries.items():
        name = next((tmp_path / "faint" / "images").glob(f"{stem}.*")).name
        faint = np.asarray(Image.open(tmp_path / "faint" / "images" / name), dtype=float)
        plain = np.asarray(Image.open(tmp_path / "plain2" / "images" / name), dtype=float)
        truth = load_ground_truth(tmp_path / "faint", stem).any(dim=0).numpy()
        if entry["skin_tone"] == "light":
            assert np.abs(faint - plain).max() <= 2  # JPEG of the same pixels
        elif truth.any():
            faded.append(np.abs(faint - plain)[truth].mean())
        assert (load_ground_truth(tmp_path / "faint", stem) == load_ground_truth(tmp_path / "plain2", stem)).all()
    assert faded and min(faded) > 3
    with pytest.raises(ValueError, match="unknown skin tone"):
        generate(tmp_path / "bad", tone_contrast={"purple": 0.5}, **kwargs)


def test_distinct_profiles_give_each_class_a_marker_no_other_class_shows() -> None:
    """The ``distinct`` set (docs/design.md §1, the synthetic DermXDB): each class of MARKERS always shows its
    marker (probability 1, and so does the finding it is drawn within), no other class's profile has it, and
    seborrheic dermatitis, the class without a marker, shows none of them."""
    from dermx.data.synth.profiles import MARKERS, PROFILE_SETS, PROFILES

    distinct = PROFILE_SETS["distinct"]
    assert PROFILE_SETS["overlapping"] is PROFILES and set(distinct) == set(vocab.DIAGNOSES)
    assert set(vocab.DIAGNOSES) - set(MARKERS) == {"Seborrheic dermatitis"}
    for diagnosis, findings in distinct.items():
        shown = {f.characteristic: f for f in findings}
        for owner, marker in MARKERS.items():
            if owner == diagnosis:
                assert shown[marker].probability == 1.0
                if shown[marker].within:
                    assert shown[shown[marker].within].probability == 1.0
            else:
                assert marker not in shown, (diagnosis, marker)


def test_distinct_profiles_let_the_drawn_characteristics_name_the_class(tmp_path: Path) -> None:
    """On generated ``distinct`` data the rule 'the class whose marker is drawn, else seborrheic dermatitis'
    names every image's diagnosis from its ground-truth masks; on the default profiles it does not, and
    ``profiles`` is recorded in synth.json and checked."""
    from dermx.data.synth.profiles import MARKERS

    def named(out: Path) -> float:
        hits = []
        for entry in read_synth_manifest(out)["images"]:
            drawn = load_ground_truth(out, entry["stem"]).flatten(1).any(dim=1)
            markers = [d for d, m in MARKERS.items() if drawn[vocab.CHARACTERISTICS.index(m)]]
            guess = markers[0] if len(markers) == 1 else "Seborrheic dermatitis" if not markers else None
            hits.append(guess == entry["diagnosis"])
        return sum(hits) / len(hits)

    _make(tmp_path / "distinct", n_images=60, size=(48, 56), profiles="distinct", repeat_fraction=0.0)
    _make(tmp_path / "overlapping", n_images=60, size=(48, 56), repeat_fraction=0.0)
    assert read_synth_manifest(tmp_path / "distinct")["config"]["profiles"] == "distinct"
    assert named(tmp_path / "distinct") == 1.0
    assert named(tmp_path / "overlapping") < 0.9
    with pytest.raises(ValueError, match="unknown profile set 'bogus'"):
        _make(tmp_path / "bad", profiles="bogus")
