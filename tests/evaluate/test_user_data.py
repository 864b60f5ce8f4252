"""Issue 14 scenarios on two tiny DermXDB folders: which images a model is tested on, models covering
different images, and image folders missing some images.

Dataset A and B have the same file names, diagnoses and patients (like two synthetic seeds) but other
lesions, so only the content tells them apart; C has other file names. Models: a ``dermx cv``-style
fold-1 model and a no-fold model trained on A, and a no-fold model trained on C.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dermx.cli import app
from dermx.data import load_dermxdb
from dermx.data.coverage import image_coverage
from dermx.evaluate.candidates import load_candidates
from dermx.evaluate.eval_sets import EvalSetError
from dermx.train import TrainConfig, fit
from train.conftest import write_tiny_dermxdb

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

N_IMAGES = 24  # 6 classes x 4; fold 1's test part holds the 12 images of odd patients


def _train(data: tuple[Path, Path], out: Path, fold: int | None, **changes: object):
    config = TrainConfig.of(data=str(data[0]), images=str(data[1]), kind="dx-only", preset="tiny",
                         input_size=(32, 32), epochs=1, batch_size=8, pretrained=False, fold=fold,
                         val_fraction=0.25, progress=False, cache_dir=str(out.parent / "cache"), out=str(out))
    return fit(config.replace(**changes))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("userdata")
    a, b = write_tiny_dermxdb(root / "A", seed=0), write_tiny_dermxdb(root / "B", seed=1)
    c = write_tiny_dermxdb(root / "C", seed=2, prefix="c")
    _train(a, root / "cv-A" / "fold_1", fold=1)
    _train(a, root / "all-A", fold=None)
    _train(c, root / "all-C", fold=None)
    return {"A": a[0], "A_images": a[1], "B": b[0], "B_images": b[1], "C": c[0], "C_images": c[1],
            "cv-A": root / "cv-A", "all-A": root / "all-A", "all-C": root / "all-C", "root": root}


def _candidates(world: dict[str, Path], data: str, model: str, **options: object):
    db = load_dermxdb(world[data], image_dir=world[f"{data}_images"], check_mask_sizes=False)
    return load_candidates(model, world[model], db, **options)


def test_a_model_on_other_data_is_scored_on_the_images_it_never_saw(world: dict[str, Path]) -> None:
    """On data of other names (C) every image is new; on data of the same names (B: a new release of the
    annotations keeps the names of the pictures it re-annotates) the images named as training images
    are excluded, and said so, whatever their content."""
    (other,) = _candidates(world, "C", "cv-A")
    assert len(other.stems) == N_IMAGES and other.test.rule == "other-data"
    assert sum(other.test.excluded.values()) == 0
    (renamed,) = _candidates(world, "B", "cv-A")
    trained = json.loads((world["cv-A"] / "fold_1" / "model" / "config.json").read_text())["training_data"]
    assert renamed.test.rule == "other-data" and renamed.test.excluded["listed"] == len(trained["images"]) == 12
    assert not set(trained["images"]) & set(renamed.stems) and len(renamed.stems) == 12


def test_on_its_own_data_a_model_is_scored_only_on_images_it_never_saw(world: dict[str, Path]) -> None:
    (fold_model,) = _candidates(world, "A", "cv-A")
    db = load_dermxdb(world["A"])
    assert sorted(fold_model.stems) == sorted(db.fold(1).test) and len(fold_model.stems) == 12
    assert fold_model.test.rule == "held-out" and fold_model.test.excluded == {"listed": 12, "pixels": 0,
                                                                               "patient": 0}
    trained = json.loads((world["cv-A"] / "fold_1" / "model" / "config.json").read_text())["training_data"]
    assert not set(trained["images"]) & set(fold_model.stems)
    # old code: the no-fold model was scored on all 24 images, every one of them seen in training
    with pytest.raises(EvalSetError, match=r"every one of the 24 images .* was seen in training"):
        _candidates(world, "A", "all-A")
    (overlap,) = _candidates(world, "A", "all-A", allow_overlap=True)
    assert len(overlap.stems) == N_IMAGES and overlap.test.rule == "overlap-allowed"


def test_one_byte_changed_in_the_data_never_lets_training_images_in(world: dict[str, Path], tmp_path: Path) -> None:
    """Old code: a newline appended to one annotation file changed the data's identity, and every image,
    the model's training images included, was scored as "other data". A new release of the annotations
    (DermXDB v1 -> v2) is the same case."""
    copy = tmp_path / "A2"
    shutil.copytree(world["A"], copy)
    first = sorted((copy / "annotations").glob("*.json"))[0]
    first.write_text(first.read_text() + "\n")
    db = load_dermxdb(copy, image_dir=world["A_images"], check_mask_sizes=False)
    (candidate,) = load_candidates("m", world["cv-A"], db)
    assert candidate.test.rule == "other-data"
    assert sorted(candidate.stems) == sorted(db.fold(1).test)  # the 12 held-out images, no training image
    assert candidate.test.excluded == {"listed": 12, "pixels": 0, "patient": 0}
    assert "12 excluded: 12 in the model's training list" in candidate.test.describe()


def test_renamed_training_images_are_found_by_their_pixels_and_patients(world: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    """A training image under another name is excluded by its pixels; the other image of a patient seen
    in training is excluded by its patient. Old code: both scored as held-out (per image, by name)."""
    from PIL import Image

    from dermx.data import pixel_digest

    legacy = tmp_path / "cv"
    shutil.copytree(world["cv-A"], legacy)
    config_file = legacy / "fold_1" / "model" / "config.json"
    document = json.loads(config_file.read_text())
    record = document["training_data"]
    db = load_dermxdb(world["A"], image_dir=world["A_images"], check_mask_sizes=False)
    # fold 1 trained on the even patients; img004 (patient 2) is left in the record by its pixels only,
    # img000 (patient 0) not at all, but img001 of the same patient is still listed
    renamed, hidden = "img004", "img000"
    assert db.images[hidden].patient == db.images["img001"].patient == "patient-0"
    record["images"] = [s for s in record["images"] if s not in (renamed, hidden)]
    record["pixels"] = [p for p in record["pixels"] if p != pixel_digest(db.image_path(hidden))]
    config_file.write_text(json.dumps(document))
    (candidate,) = load_candidates("m", legacy, db)
    assert renamed not in candidate.stems and hidden not in candidate.stems
    assert sorted(candidate.stems) == sorted(db.fold(1).test)
    assert candidate.test.excluded == {"listed": 10, "pixels": 1, "patient": 1}
    # the digest is of the decoded pixels: a lossless copy under another name and format has the same one
    with Image.open(db.image_path(hidden)) as picture:
        picture.save(tmp_path / "renamed.png")
    assert pixel_digest(tmp_path / "renamed.png") == pixel_digest(db.image_path(hidden))


def test_a_label_table_model_trained_on_the_same_pictures_is_not_scored_on_them(world: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    """Old code: a model trained on class folders of A's pictures was scored on A as "other data", on its
    own training images. Their pixels give them away."""
    run = tmp_path / "own"
    root = tmp_path / "classes"
    db = load_dermxdb(world["A"], image_dir=world["A_images"], check_mask_sizes=False)
    for stem in db.stems():
        target = root / db.images[stem].diagnosis.lower().replace(" ", "-")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(db.image_path(stem), target / f"pic-{stem}.jpeg")
    fit(TrainConfig.of(images=str(root), kind="dx-only", preset="tiny", input_size=(32, 32), epochs=1,
                       batch_size=8, pretrained=False, val_fraction=0.25, progress=False, out=str(run)))
    with pytest.raises(EvalSetError, match=r"every one of the 24 images .* \(24 excluded: 24 same pixels"):
        load_candidates("own", run, db)


def test_an_older_checkpoint_is_judged_by_its_training_fingerprint(world: dict[str, Path], tmp_path: Path) -> None:
    """A checkpoint recording only the fingerprint (sha256, fold): reproduced from the data with the run's
    split settings it is the same data; not reproduced, the choice is refused unless --allow-overlap. (The
    old fingerprint covers keys and labels only: B, with A's names and diagnoses, reproduces it for a
    dx-only model, which is why new checkpoints also record the data's content identity.)"""
    legacy = tmp_path / "legacy"
    shutil.copytree(world["cv-A"], legacy)
    config_file = legacy / "fold_1" / "model" / "config.json"
    document = json.loads(config_file.read_text())
    for key in ("data_sha256", "images", "pixels", "patients", "missing_images"):
        document["training_data"].pop(key)
    config_file.write_text(json.dumps(document))
    world = {**world, "legacy": legacy}
    (same,) = _candidates(world, "A", "legacy")
    assert same.test.rule == "fold-test" and len(same.stems) == 12
    document["training_data"]["sha256"] = "0" * 16
    config_file.write_text(json.dumps(document))
    with pytest.raises(EvalSetError, match=r"cannot tell.*--allow-overlap"):
        _candidates(world, "A", "legacy")
    (allowed,) = _candidates(world, "A", "legacy", allow_overlap=True)
    assert allowed.test.rule == "overlap-allowed" and len(allowed.stems) == 12


def _evaluate(*args: str) -> object:
    return CliRunner().invoke(app, ["evaluate", "--n-boot", "20", "--no-agreement", *args])


def test_models_covering_different_images_are_compared_on_the_shared_ones(world: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """Old code: KeyError 'predicted:a' after all the scoring, and no tables on disk."""
    out = tmp_path / "bench"
    result = _evaluate("--data", str(world["A"]), "--images", str(world["A_images"]), "--out", str(out),
                       "--candidate", f"a={world['cv-A']}", "--candidate", f"b={world['all-C']}")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["a"]["test_images"]["n"] == 12 and summary["models"]["b"]["test_images"]["n"] == 24
    assert "other data" in summary["models"]["b"]["test_images"]["rules"][0]
    (checkpoint,) = summary["models"]["a"]["checkpoints"]  # relative to the run folder
    assert not Path(checkpoint).is_absolute()
    assert (out / checkpoint).resolve() == (world["cv-A"] / "fold_1" / "model").resolve()
    assert summary["shared"]["images"] == 12 and summary["shared"]["per_model"] == {"a": 12, "b": 24}
    paired = next(p for p in summary["paired"] if p["kind"] == "diagnosis-union")
    assert 0 < paired["difference"]["n"] <= 12 and set(summary["shared"]["models"]) == {"a", "b"}
    images = pd.read_csv(out / "images.csv")
    assert (images["model"] == "a").sum() == 12 and (images["model"] == "b").sum() == 24
    assert "12 test images" in result.output and "24 test images" in result.output
    assert "12 test images: same data as training" in (out / "report.html").read_text()
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output


def test_tables_are_written_as_each_model_is_scored(world: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dermx.evaluate.benchmark import run as benchmark
    from dermx.evaluate.benchmark.config import BenchmarkConfig

    def broken(_result: object) -> dict:
        raise RuntimeError("late failure")

    monkeypatch.setattr(benchmark, "summarize_benchmark", broken)
    db = load_dermxdb(world["A"], image_dir=world["A_images"], check_mask_sizes=False)
    candidates = load_candidates("a", world["cv-A"], db)
    config = BenchmarkConfig(n_boot=10, agreement=False)
    with pytest.raises(RuntimeError):
        benchmark.run_benchmark(db, candidates, config, out=tmp_path)
    assert len(pd.read_csv(tmp_path / "images.csv")) == 12


def _not_json(token: str) -> None:
    raise AssertionError(f"summary.json is not strict JSON: {token}")


def _partial(world: dict[str, Path], tmp_path: Path, missing: tuple[str, ...]) -> Path:
    folder = tmp_path / "partial"
    shutil.copytree(world["A_images"], folder)
    for stem in missing:
        (folder / f"{stem}.jpeg").unlink()
    return folder


def test_a_partial_image_folder_is_counted_listed_and_evaluated(world: dict[str, Path], tmp_path: Path) -> None:
    """Old code: `no image file for 'img003'` traceback."""
    missing = ("img003", "img005", "img020")  # patients 1, 2, 10: fold 1 (odd patients) loses img003
    folder = _partial(world, tmp_path, missing)
    out = tmp_path / "bench"
    args = ["--data", str(world["A"]), "--images", str(folder), "--candidate", f"a={world['cv-A']}"]
    result = _evaluate(*args, "--out", str(out), "--no-report")
    assert result.exit_code == 0, result.output
    assert f"found {N_IMAGES - 3} of {N_IMAGES} images" in result.output
    assert (out / "missing_images.txt").read_text().split() == list(missing)
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_not_json)
    assert summary["image_folder"] == {"expected": 24, "found": 21, "missing": 3,
                                       "missing_file": "missing_images.txt"}
    assert summary["models"]["a"]["test_images"]["n"] == 11
    strict = _evaluate(*args, "--out", str(tmp_path / "strict"), "--require-all-images")
    assert strict.exit_code == 1 and "found 21 of 24 images" in strict.output
    assert "Traceback" not in strict.output


def test_training_on_a_partial_image_folder(world: dict[str, Path], tmp_path: Path) -> None:
    folder = _partial(world, tmp_path, ("img003", "img020"))
    data = (world["A"], folder)
    result = _train(data, tmp_path / "run", fold=None)
    record = json.loads((result.checkpoint_dir / "config.json").read_text())["training_data"]
    assert record["missing_images"] == 2 and len(record["images"]) == N_IMAGES - 2
    assert record["n_train"] + record["n_val"] == N_IMAGES - 2
    assert record["source"] == "dermxdb" and "/" not in record["source"]
    assert (result.run_dir / "missing_images.txt").read_text().split() == ["img003", "img020"]
    db = load_dermxdb(world["A"], image_dir=folder)
    assert image_coverage(db).missing == ("img003", "img020")
    with pytest.raises(ValueError, match="found 22 of 24 images"):
        _train(data, tmp_path / "strict", fold=None, require_all_images=True)


def test_a_model_of_its_own_classes_is_benchmarked_on_the_shared_ones(world: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    """A dx-only model of class folders acne / psoriasis / eczema against DermXDB A: scored on A's Acne and
    Psoriasis images, its diagnosis read among those two classes, and the report rendered (the per-class F1
    of the classes it lacks is undefined) though its name has a ``$...$`` pair. Old code: no eczema class at
    all; then a TypeError in the report and a mathtext error in the figures."""
    from dermx.predict import Predictor

    db = load_dermxdb(world["A"], image_dir=world["A_images"], check_mask_sizes=False)
    run = _own_class_model(world, tmp_path, {"Acne": "acne", "Psoriasis": "psoriasis"})
    out = tmp_path / "bench"
    name = "own$\\frac$"  # a user's string reaches the figures as plain text, never as mathtext
    result = _evaluate("--data", str(world["A"]), "--images", str(world["A_images"]), "--out", str(out),
                       "--candidate", f"{name}={run}")
    assert result.exit_code == 0, result.output
    assert name in (out / "report.html").read_text(encoding="utf-8")
    rerun = CliRunner().invoke(app, ["report", str(out)])
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads((out / "summary.json").read_text())
    tests = summary["models"][name]["test_images"]
    assert tests["n"] == 8 and "shared classes Acne, Psoriasis (16 images of other classes left out)" in tests[
        "rules"][0]
    images = pd.read_csv(out / "images.csv")
    assert set(images["reference"]) == {"Acne", "Psoriasis"}
    predictor = Predictor(run / "model")
    for stem, predicted in zip(images["stem"], images["predicted"], strict=True):
        (prediction,) = predictor.predict([db.image_path(stem)])
        ranked = [name for name, _ in prediction.diagnoses if name in ("Acne", "Psoriasis")]
        assert predicted == ranked[0], stem


def _own_class_model(world: dict[str, Path], tmp_path: Path, folders: dict[str, str]) -> Path:
    """A dx-only model trained (1 epoch) on class folders: B's images of each DermXDB class in
    ``folders`` under the folder name given (other pictures than A's, so that A tests it), and six plain
    images of a class ``eczema``."""
    from PIL import Image

    db = load_dermxdb(world["B"], image_dir=world["B_images"], check_mask_sizes=False)
    root = tmp_path / "classes"
    for stem in db.stems():
        if db.images[stem].diagnosis in folders:
            target = root / folders[db.images[stem].diagnosis]
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(db.image_path(stem), target / f"{stem}.jpeg")
    (root / "eczema").mkdir()
    for i in range(6):
        Image.new("RGB", (48, 40), (150 + 10 * i, 90, 90)).save(root / "eczema" / f"e{i}.png")
    run = tmp_path / "own"
    fit(TrainConfig.of(images=str(root), kind="dx-only", preset="tiny", input_size=(32, 32), epochs=1,
                    batch_size=4, pretrained=False, val_fraction=0.3, progress=False, out=str(run)))
    return run


def test_own_class_names_are_mapped_at_evaluation_with_an_aliases_file(world: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """A model trained on folders 'acne vulgaris', 'psoriasis', 'eczema' without an aliases file: its
    'acne vulgaris' is nobody's class, so without aliases only Psoriasis is shared; `evaluate --aliases`
    maps it onto Acne without retraining (benchmark and leaderboard). A mapping that puts two of the
    model's classes onto one name is refused, naming both."""
    run = _own_class_model(world, tmp_path, {"Acne": "acne vulgaris", "Psoriasis": "psoriasis"})
    common = ("--data", str(world["A"]), "--images", str(world["A_images"]), "--candidate", f"own={run}", "--no-report")
    plain = _evaluate(*common, "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    tests = json.loads((tmp_path / "plain" / "summary.json").read_text())["models"]["own"]["test_images"]
    assert tests["n"] == 4 and "shared classes Psoriasis (" in tests["rules"][0]
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("alias,name\nAcne Vulgaris,Acne\n")
    out = tmp_path / "mapped"
    mapped = _evaluate(*common, "--out", str(out), "--aliases", str(aliases), "--methods", "gradcam",
                       "--n-faithfulness-images", "2", "--n-steps", "2")
    assert mapped.exit_code == 0, mapped.output
    tests = json.loads((out / "summary.json").read_text())["models"]["own"]["test_images"]
    assert tests["n"] == 8 and "shared classes Acne, Psoriasis (16 images" in tests["rules"][0]
    assert set(pd.read_csv(out / "images.csv")["reference"]) == {"Acne", "Psoriasis"}
    board = json.loads((out / "leaderboard.json").read_text())  # a dx-only model: no characteristic maps
    (row,) = board["rows"]
    assert (row["model"], row["method"], row["dice"]) == ("own", "gradcam", None) and row["deletion_auc"] > 0
    assert "a dx-only model" in {e["metric"]: e["reason"] for e in board["undefined"]}["dice"]
    assert json.loads((out / "manifest.json").read_text())["config"]["aliases"] == aliases.name
    aliases.write_text("alias,name\nacne vulgaris,Psoriasis\n")
    clash = _evaluate(*common, "--out", str(tmp_path / "clash"), "--aliases", str(aliases))
    message = " ".join(clash.output.split())
    assert clash.exit_code == 1 and "['Psoriasis', 'acne vulgaris'] all map to 'Psoriasis'" in message
    assert "own/model" in message  # the checkpoint it is about


def test_a_concept_model_is_benchmarked_on_the_characteristics_it_shares(world: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    """A `dermx` model trained on a SkinCon-layout table (concepts Papule, Plaque, Ulcer, Bulla) of B's
    images: scored against A's expert maps on Papule and Plaque only (Ulcer and Bulla are not DermXDB's)."""
    db = load_dermxdb(world["B"], image_dir=world["B_images"], check_mask_sizes=False)
    concepts = ("Papule", "Plaque", "Ulcer", "Bulla")
    lines = [",".join(("ImageID", "Do not consider this image", *concepts, "label"))]
    for i, stem in enumerate(db.stems()):
        flags = [str(int(c in db.ratings_of(stem)[0].characteristics)) if c in ("Papule", "Plaque") else str(i % 2)
                 for c in concepts]
        lines.append(",".join((db.image_path(stem).name, "0", *flags, db.images[stem].diagnosis)))
    (tmp_path / "concepts.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "concepts"
    fit(TrainConfig().replace(labels=str(tmp_path / "concepts.csv"), images=str(world["B_images"]), kind="dermx",
                              preset="tiny", input_size=(32, 32), epochs=1, batch_size=8, pretrained=False,
                              val_fraction=0.25, progress=False, out=str(run)))
    out = tmp_path / "bench"
    result = _evaluate("--data", str(world["A"]), "--images", str(world["A_images"]), "--out", str(out),
                       "--candidate", f"concepts={run}")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["concepts"]["characteristics"] == ["Papule", "Plaque"]
    assert "shared characteristics: Papule, Plaque" in summary["models"]["concepts"]["test_images"]["rules"][0]
    items = pd.read_csv(out / "items.csv")
    assert set(items.loc[items["kind"] == "characteristic", "target"]) <= {"Papule", "Plaque"}
    assert summary["models"]["concepts"]["test_images"]["n"] == N_IMAGES  # other data: every image
    # tiny DermXDB outlines none of the two (old code: KeyError 'characteristic' when no row was present)
    assert not items.loc[items["kind"] == "characteristic", "present"].any()
    assert (out / "report.html").is_file()


def test_evaluate_groups_by_a_files_attribute_with_the_deletion_auc_per_group(world: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """`evaluate --groups FILE --methods gradcam`: the test images the file lacks are grouped as unknown and
    counted, its rows of other images counted, both said; the leaderboard's Grad-CAM deletion AUC per group
    joins summary.json's groups, and the groups' means weighted by their images give the row's mean."""
    (candidate,) = _candidates(world, "A", "cv-A")
    tested = sorted(candidate.stems)
    db = load_dermxdb(world["A"], image_dir=world["A_images"], check_mask_sizes=False)
    named = [s for s in sorted(db.stems()) if s not in tested[:2]]
    groups = tmp_path / "sites.csv"
    groups.write_text("image,site\n" + "".join(f"{s}.png,{'arm' if k % 2 else 'leg'}\n" for k, s in enumerate(named))
                      + "zz_none.jpg,arm\n")
    out = tmp_path / "run"
    result = _evaluate("--data", str(world["A"]), "--images", str(world["A_images"]), "--out", str(out),
                       "--candidate", f"a={world['cv-A']}", "--groups", str(groups), "--methods", "gradcam",
                       "--n-faithfulness-images", "6", "--n-steps", "2")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: 2 test image(s) have no site in sites.csv and are grouped as 'unknown'" in said
    assert f"{len(db.stems()) - len(tested) + 1} row(s) of sites.csv name images that are not test images" in said
    summary = json.loads((out / "summary.json").read_text())
    block = summary["groups"]
    assert block["by"] == "site" and block["coverage"]["unknown_images"] == 2
    assert block["scores"][-1] == "deletion_auc" and block["deletion_auc"]["method"] == "gradcam"
    board = json.loads((out / "leaderboard.json").read_text())
    (row,) = board["rows"]
    figures = block["models"]["a"]["groups"]
    perturbed = [g for g in figures.values() if "deletion_auc" in g]
    assert sum(g["gap"]["deletion_auc"]["n_group"] for g in perturbed) == row["n_images"] == 6
    weighted = sum(g["gap"]["deletion_auc"]["n_group"] * g["deletion_auc"]["mean"] for g in perturbed) / 6
    assert weighted == pytest.approx(row["deletion_auc"])
    assert board["groups"]["models"]["a"]["gradcam"]["groups"]["unknown"]["deletion_auc"] == figures["unknown"][
        "deletion_auc"]  # the first 6 test images hold the 2 the file lacks
    assert json.loads((out / "manifest.json").read_text())["config"]["groups"] == {"by": "site",
                                                                                   "file": "sites.csv"}
    report = (out / "report.html").read_text()
    assert "Trust per site" in report and "gradcam deletion AUC" in report
