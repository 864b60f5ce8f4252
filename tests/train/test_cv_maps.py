"""``dermx cv`` test maps: one ``fold_<k>/test_maps.npz`` per fold, its loader, and ``--resume``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dermx import vocab
from dermx.data import load_dermxdb
from dermx.explain import CamEngine
from dermx.models import build_model, load_checkpoint, save_checkpoint
from dermx.train import (
    CVResult,
    DermXDataModule,
    FoldMaps,
    FoldMapsError,
    TrainConfig,
    TrainResult,
    load_fold_maps,
    run_cv,
    save_fold_maps,
)
from dermx.train.fold_record import write_fold_record

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

FLOAT16 = 1e-3  # float16 keeps a value in [0, 1] within 2^-12; margin for float32 arithmetic


def tiny_config(tiny_db: tuple[Path, Path], out: Path, **changes: object) -> TrainConfig:
    return TrainConfig.of(data=str(tiny_db[0]), images=str(tiny_db[1]), kind="dermx", preset="cpu", input_size=(64, 64),
                       epochs=1, batch_size=8, pretrained=False, val_fraction=0.25, progress=False,
                       cache_dir=str(out.parent / "cache"), out=str(out), in_memory=True).replace(**changes)


@pytest.fixture(scope="module")
def cv_run(tiny_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, CVResult]:
    config = tiny_config(tiny_db, tmp_path_factory.mktemp("cv") / "run")
    return config, run_cv(config, [0, 1])


def test_each_fold_has_maps_of_its_test_images(cv_run: tuple[TrainConfig, CVResult]) -> None:
    config, result = cv_run
    predictions = pd.read_csv(result.predictions)
    assert sorted(result.maps) == [0, 1]
    for k in (0, 1):
        path = Path(config.run.out) / f"fold_{k}" / "test_maps.npz"
        assert result.maps[k] == path and path.is_file()
        maps = load_fold_maps(path)
        assert list(maps.stems) == predictions.loc[predictions["fold"] == k, "stem"].tolist()
        assert maps.diagnosis_names == vocab.DIAGNOSES and maps.characteristic_names == vocab.CHARACTERISTICS
        assert (maps.method, maps.size, maps.kind, maps.input_size) == ("gradcam", "features", "dermx", (64, 64))
        assert maps.diagnosis.dtype == maps.characteristic.dtype == np.float16
        assert maps.diagnosis.shape == (12, 6, *maps.grid) and maps.characteristic.shape == (12, 16, *maps.grid)
        assert maps.grid == (2, 2)  # the CAM feature grid: 64 px / stride 32
        for array in (maps.diagnosis, maps.characteristic):
            assert np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1 and array.any()


def test_maps_equal_a_recomputation_on_the_saved_checkpoint(cv_run: tuple[TrainConfig, CVResult]) -> None:
    config, result = cv_run
    maps = load_fold_maps(result.maps[1])
    model = load_checkpoint(result.folds[1].checkpoint_dir)
    data = DermXDataModule(config.replace(fold=1), model.config)
    data.setup()
    dataset = data.dataset("test", augment=False)
    index = [item.key for item in dataset.items].index(maps.stems[-1])
    image = dataset[index]["image"][None]
    engine = CamEngine(model, "gradcam", model.config.cam_layer, size="features")
    expected = engine(image).maps[0].detach().numpy()  # characteristics, then diagnoses
    stored = np.concatenate([maps.characteristic[-1], maps.diagnosis[-1]]).astype(np.float32)
    np.testing.assert_allclose(stored, expected, atol=FLOAT16)
    at_input = CamEngine(model, "gradcam", model.config.cam_layer, size="input")(image).maps[0].detach().numpy()
    upsampled = maps.at_size()
    assert upsampled.grid == (64, 64)
    np.testing.assert_allclose(np.concatenate([upsampled.characteristic[-1], upsampled.diagnosis[-1]]), at_input,
                               atol=2 * FLOAT16)


def test_resume_keeps_done_maps_and_fills_in_missing_ones(cv_run: tuple[TrainConfig, CVResult], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = cv_run
    out = tmp_path / "run"
    shutil.copytree(config.run.out, out, ignore=shutil.ignore_patterns("*.ckpt"))
    done, missing = out / "fold_0" / "test_maps.npz", out / "fold_1" / "test_maps.npz"
    missing.unlink()
    before = (done.stat().st_mtime_ns, done.read_bytes())

    def no_training(_: TrainConfig) -> None:
        raise AssertionError("a done fold was trained again")

    monkeypatch.setattr("dermx.train.cv.fit", no_training)
    resumed = config.replace(out=str(out), resume=True)
    result = run_cv(resumed, [0, 1])
    assert (done.stat().st_mtime_ns, done.read_bytes()) == before
    assert result.maps == {0: done, 1: missing}
    original = load_fold_maps(Path(config.run.out) / "fold_1" / "test_maps.npz")
    filled = load_fold_maps(missing)
    assert filled.stems == original.stems
    np.testing.assert_allclose(filled.diagnosis, original.diagnosis, atol=FLOAT16)
    np.testing.assert_allclose(filled.characteristic, original.characteristic, atol=FLOAT16)

    assert run_cv(resumed, [0], maps_method="none").maps == {}
    run_cv(resumed, [0], maps_method="Grad-CAM++")  # maps of another method are made again
    assert load_fold_maps(done).method == "gradcam++"
    with pytest.raises(ValueError, match="unknown CAM method 'nope'"):
        run_cv(config.replace(out=str(tmp_path / "new")), [0], maps_method="nope")


def test_cli_dx_only_writes_diagnosis_maps_only(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    from dermx.cli import app

    out = tmp_path / "cv"
    model = build_model("cpu", kind="dx-only", input_size=(32, 32))
    save_checkpoint(model, out / "fold_1" / "model")
    # a completed fold: its predictions and the record of what it holds
    frame = pd.DataFrame({"stem": ["img000"], "reference": ["Acne"], "predicted": ["Acne"],
                          **{f"dx:{d}": [1 / 6] for d in vocab.DIAGNOSES}})
    (out / "fold_1" / "predictions.csv").write_text(frame.to_csv(index=False))
    write_fold_record(1, TrainResult(out / "fold_1" / "model", out / "fold_1", {}, out / "fold_1" / "predictions.csv"))
    args = ["cv", "--data", str(tiny_db[0]), "--images", str(tiny_db[1]), "--kind", "dx-only", "--preset", "cpu",
            "--input-size", "32", "--folds", "1", "--resume", "--progress", "--method", "gradcam++",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = out / "fold_1" / "test_maps.npz"
    assert f"maps: {path}" in result.output
    with np.load(path) as archive:
        assert not {"characteristic", "characteristic_names"} & set(archive.files)
    maps = load_fold_maps(path)
    assert set(maps.stems) == set(load_dermxdb(tiny_db[0], check_mask_sizes=False).fold(1).test)
    assert maps.method == "gradcam++" and maps.kind == "dx-only" and maps.diagnosis_names == vocab.DIAGNOSES
    assert maps.diagnosis.shape[:2] == (12, 6) and maps.characteristic.shape[:2] == (12, 0)
    assert maps.characteristic_names == ()


def _corrupt(arrays: dict[str, np.ndarray], case: str) -> None:
    if case == "missing diagnosis":
        del arrays["diagnosis"]
    elif case == "missing characteristic names":
        del arrays["characteristic_names"]
    elif case == "names disagree":
        arrays["diagnosis_names"] = arrays["diagnosis_names"][:-1]
    elif case == "stems disagree":
        arrays["stems"] = arrays["stems"][:-1]
    elif case == "grids disagree":
        arrays["characteristic"] = arrays["characteristic"][..., :2, :]


@pytest.mark.parametrize(("case", "message"), [
    ("missing diagnosis", "missing array.*diagnosis"),
    ("missing characteristic names", "missing array.*characteristic_names"),
    ("names disagree", "'diagnosis' has shape"),
    ("stems disagree", "'diagnosis' has shape"),
    ("grids disagree", "'characteristic' maps are"),
    ("truncated", "not a readable"),
])
def test_a_broken_maps_file_gives_an_error_naming_it(tmp_path: Path, case: str, message: str) -> None:
    rng = np.random.default_rng(0)
    maps = FoldMaps(("a", "b", "c"), rng.random((3, 6, 4, 4)).astype(np.float16), vocab.DIAGNOSES,
                    rng.random((3, 2, 4, 4)).astype(np.float16), ("Papule", "Plaque"), "gradcam", "features",
                    "backbone.layer4", "dermx", (32, 32))
    path = save_fold_maps(maps, tmp_path / "test_maps.npz")
    assert load_fold_maps(path).stems == ("a", "b", "c")
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        _corrupt(arrays, case)
        np.savez_compressed(path, **arrays)
    with pytest.raises(FoldMapsError, match=f"^{re.escape(str(path))}: {message}"):
        load_fold_maps(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none.npz"))):
        load_fold_maps(tmp_path / "none.npz")
