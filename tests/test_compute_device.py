"""One device story for every command: :class:`~dermx.compute.Compute`, the flags, and maps that agree
across precisions and devices.

The CPU ``bf16-mixed`` path is tested everywhere against float32 (tolerance
:data:`~dermx.compute.BF16_MAP_TOLERANCE`, the mean absolute difference of maps in [0, 1], measured at most
0.0045); the CUDA parity tests (tolerance :data:`~dermx.compute.DEVICE_MAP_TOLERANCE`) skip without a GPU.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from dermx.compute import BF16_MAP_TOLERANCE, DEVICE_MAP_TOLERANCE, Compute, ComputeError
from dermx.explain import CamEngine
from dermx.models import DermXNet, build_model, save_checkpoint

if TYPE_CHECKING:
    from dermx.data import DermXDB
    from dermx.evaluate.benchmark.config import BenchmarkResult

#: What ``--device auto`` resolves to here: the explicit device must give the default run exactly (on a
#: machine without an accelerator, ``--device cpu``).
AUTO = Compute().accelerator
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CPU/GPU parity)")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
METHODS = ("gradcam", "gradcam++", "layercam", "scorecam", "eigencam")


def tiny_model(seed: int = 0) -> DermXNet:
    """The tiny preset at 32×32 with random weights, batch-norm scales randomised (timm zero-initialises the
    last of each residual block, which would make every gradient map zero)."""
    torch.manual_seed(seed)
    model = build_model("tiny", pretrained=False, input_size=(32, 32)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model


#: Leaderboard columns that measure small changes of the maps or logits, which bfloat16's rounding (and a
#: GPU's summation order) is of the order of, and their tolerance (at ``bf16-mixed`` on the CPU, measured on
#: the tiny model: 0.050 and 0.020); every other column within the map tolerance.
NOISY = {"faithfulness_corr": 0.1, "max_sensitivity": 0.05, "avg_sensitivity": 0.05}
#: The benchmark's per-pair scores compared across devices and precisions.
SCORES = ("sensitivity", "specificity", "dice", "iou", "pointing", "energy")


def mean_difference(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def tiny_synth_checkpoint(root: Path) -> tuple[DermXDB, str]:
    """A tiny synthetic DermXDB and a :func:`tiny_model` checkpoint to benchmark on it."""
    from report.oracle import tiny_synth

    return tiny_synth(root / "data"), str(save_checkpoint(tiny_model(), root / "ckpt"))


def benchmark_on(db: DermXDB, checkpoint: str, compute: Compute | None) -> BenchmarkResult:
    """The benchmark (no agreement, examples or shortcut test) of ``checkpoint`` with ``compute``."""
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.benchmark.run import run_benchmark
    from dermx.evaluate.candidates import load_candidates

    config = BenchmarkConfig(n_boot=20, agreement=False, examples=False, shortcut_test=False)
    return run_benchmark(db, load_candidates("m", checkpoint, db, allow_overlap=True), config, compute=compute)


def assert_benchmarks_agree(ours: BenchmarkResult, theirs: BenchmarkResult, tolerance: float) -> None:
    """The same pairs; each score undefined on the same pairs and within ``tolerance`` on average; the
    probabilities within 0.001."""
    keys = ["stem", "kind", "target"]
    assert ours.items[keys].equals(theirs.items[keys])
    for score in SCORES:
        assert ours.items[score].isna().equals(theirs.items[score].isna()), score
        assert (ours.items[score] - theirs.items[score]).abs().mean() <= tolerance, score
    probabilities = [c for c in theirs.images.columns if c.startswith(("dx:", "char:"))]
    assert np.abs(ours.images[probabilities].to_numpy() - theirs.images[probabilities].to_numpy()).max() < 1e-3


def leaderboard_on(db: DermXDB, checkpoint: str, compute: Compute | None) -> list[dict[str, Any]]:
    """The leaderboard rows of Grad-CAM and Eigen-CAM on few images, steps and draws, with ``compute``."""
    from dermx.evaluate.candidates import load_candidates
    from dermx.evaluate.leaderboard.run import run_leaderboard
    from evaluate.test_leaderboard import _small

    candidates = load_candidates("m", checkpoint, db, allow_overlap=True)
    return run_leaderboard(db, candidates, ["gradcam", "eigencam"], _small(), compute=compute).rows


def assert_leaderboards_agree(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], tolerance: float) -> None:
    """The same rows; every finite column within ``tolerance`` (those of :data:`NOISY` within theirs)."""
    assert [r["method"] for r in ours] == [r["method"] for r in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        for column, value in other.items():
            if isinstance(value, float) and math.isfinite(value) and not column.endswith(("_low", "_high")):
                assert abs(mine[column] - value) <= NOISY.get(column, tolerance), (mine["method"], column)


# --- Compute -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "flag"), [
    ({"device": "gpu"}, "--device"), ({"device": "cuda:x"}, "--device"), ({"device": "mps:0"}, "--device"),
    ({"precision": "fp8"}, "--precision"), ({"precision": "16"}, "--precision"),
    ({"n_workers": -1}, "--n-workers"), ({"devices": "two"}, "--devices"), ({"num_nodes": 0}, "--num-nodes"),
    ({"device": "cuda:1", "devices": "2"}, "--device"),
])
def test_bad_values_name_their_flag(arguments: dict[str, object], flag: str) -> None:
    with pytest.raises(ComputeError) as raised:
        Compute(**arguments)  # type: ignore[arg-type]
    assert raised.value.flag == flag and isinstance(raised.value, ValueError)


def test_spellings_and_cpu_checks() -> None:
    assert Compute(precision="32-true").precision == "32"
    assert Compute("cpu", "bf16-mixed").check() == torch.device("cpu")
    with pytest.raises(ComputeError, match="16-mixed needs a GPU") as raised:
        Compute("cpu", "16-mixed").check()
    assert raised.value.flag == "--precision"
    assert Compute(n_workers=3).workers() == 3 and Compute().workers() >= 0


@NO_CUDA
def test_cuda_without_cuda_is_an_error_naming_device() -> None:
    with pytest.raises(ComputeError, match="CUDA is not available") as raised:
        Compute("cuda").check()
    assert raised.value.flag == "--device"


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_keeps_the_batches_and_their_order(workers: int) -> None:
    data = TensorDataset(torch.arange(11))
    batches = [b[0].tolist() for b in Compute("cpu", n_workers=workers).loader(data, 4)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert not Compute("cpu").loader(data, 4).pin_memory


def test_place_moves_the_model_to_the_device_in_float32() -> None:
    model = tiny_model()
    assert Compute("cpu", "bf16-mixed").place(model) is model
    assert {p.device.type for p in model.parameters()} == {"cpu"} and {p.dtype for p in model.parameters()} == {
        torch.float32}


# --- the engine at bf16 on the CPU ----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_bf16_maps_are_float32_and_within_the_tolerance(method: str) -> None:
    model = tiny_model()
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    full = CamEngine(model, method, model.config.cam_layer)(images)
    half = CamEngine(model, method, model.config.cam_layer, precision="bf16-mixed")(images)
    assert half.maps.dtype == torch.float32 and half.target_logits.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in half.logits.values())  # type: ignore[union-attr]
    assert mean_difference(half.maps, full.maps) <= BF16_MAP_TOLERANCE
    assert torch.allclose(half.target_logits, full.target_logits, atol=0.01)


def test_the_engine_refuses_an_unknown_precision() -> None:
    with pytest.raises(ComputeError, match="precision"):
        CamEngine(tiny_model(), precision="64")


# --- commands ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"lesion{i}.png")
    return folder


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    from dermx.cli import app

    return app


def _explain(app: typer.Typer, checkpoint: Path, images: Path, out: Path, *flags: str) -> dict[str, np.ndarray]:
    result = CliRunner().invoke(app, ["explain", "--model", str(checkpoint), "--images", str(images), "--out",
                                      str(out), "--batch-size", "2", *flags])
    assert result.exit_code == 0, result.output
    return {p.parent.name: dict(np.load(p)) for p in sorted(out.glob("*/maps.npz"))}  # type: ignore[misc]


def test_explain_on_the_auto_device_equals_the_default_and_bf16_is_within_the_tolerance(
        app: typer.Typer, checkpoint: Path, images: Path, tmp_path: Path) -> None:
    default = _explain(app, checkpoint, images, tmp_path / "default")
    cpu = _explain(app, checkpoint, images, tmp_path / "cpu", "--device", AUTO, "--n-workers", "2")
    half = _explain(app, checkpoint, images, tmp_path / "bf16", "--device", "cpu", "--precision", "bf16-mixed",
                    "--n-workers", "0")
    assert sorted(default) == sorted(cpu) == sorted(half) and len(default) == 5
    for stem, saved in default.items():
        for key in ("maps", "probabilities", "logits"):
            assert cpu[stem][key].dtype == half[stem][key].dtype == np.float32
            assert np.array_equal(cpu[stem][key], saved[key]), (stem, key)
        assert mean_difference(half[stem]["maps"], saved["maps"]) <= BF16_MAP_TOLERANCE, stem
        assert np.allclose(half[stem]["probabilities"], saved["probabilities"], atol=0.01), stem


@pytest.mark.parametrize(("command", "flags", "named"), [
    ("explain", ["--precision", "fp8"], "--precision"),
    ("explain", ["--device", "cpu", "--precision", "16-mixed"], "--precision"),
    ("predict", ["--device", "tpu"], "--device"),
    ("serve", ["--precision", "16"], "--precision"),
    ("evaluate", ["--device", "gpu"], "--device"),
])
def test_a_bad_device_or_precision_is_a_usage_error_naming_the_flag(
        app: typer.Typer, checkpoint: Path, images: Path, tmp_path: Path, command: str, flags: list[str],
        named: str) -> None:
    arguments = {"explain": ["--model", str(checkpoint), "--images", str(images), "--out", str(tmp_path)],
                 "predict": [str(images), "--model", str(checkpoint)],
                 "serve": ["--model", str(checkpoint)],
                 "evaluate": ["--data", str(images), "--images", str(images), "--candidate", f"m={checkpoint}",
                              "--out", str(tmp_path)]}[command]
    result = CliRunner().invoke(app, [command, *arguments, *flags], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert named in result.output


@NO_CUDA
def test_explain_device_cuda_without_cuda_says_so(app: typer.Typer, checkpoint: Path, images: Path,
                                                   tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["explain", "--model", str(checkpoint), "--images", str(images), "--out",
                                      str(tmp_path), "--device", "cuda"], terminal_width=200)
    assert result.exit_code == 2 and "--device" in result.output and "CUDA is not available" in result.output
    assert not any(tmp_path.iterdir())


def test_predictor_bf16_is_within_the_tolerance_and_the_auto_device_equals_the_default(checkpoint: Path,
                                                                                      images: Path) -> None:
    from dermx.predict import Predictor

    files = sorted(images.glob("*.png"))
    runs = {name: Predictor(checkpoint, threshold=0.3, compute=compute).predict(files)
            for name, compute in (("default", None), ("cpu", Compute(AUTO)), ("bf16", Compute("cpu", "bf16-mixed")))}
    for default, cpu, half in zip(runs["default"], runs["cpu"], runs["bf16"], strict=True):
        assert default.to_dict() == cpu.to_dict()
        assert [n for n, _ in half.diagnoses][:1] == [n for n, _ in default.diagnoses][:1]
        assert np.allclose([p for _, p in half.diagnoses], [p for _, p in default.diagnoses], atol=0.01)
        for label in set(half.maps) & set(default.maps):
            assert half.maps[label].dtype == np.float32
            assert mean_difference(half.maps[label], default.maps[label]) <= BF16_MAP_TOLERANCE, label


# --- CUDA parity (skipped without a GPU) -------------------------------------------------------------------


@CUDA
@pytest.mark.parametrize("method", METHODS)
def test_cuda_float32_maps_agree_with_the_cpu(method: str) -> None:
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cpu = CamEngine(tiny_model(), method)(images)
    gpu = CamEngine(Compute("cuda").place(tiny_model()), method)(images)
    assert gpu.maps.device.type == "cuda" and gpu.maps.dtype == torch.float32
    assert mean_difference(gpu.maps.cpu(), cpu.maps) <= DEVICE_MAP_TOLERANCE
    assert torch.allclose(gpu.target_logits.cpu(), cpu.target_logits, atol=1e-3)


@CUDA
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_cuda_mixed_precision_maps_are_within_the_bf16_tolerance(precision: str) -> None:
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cpu = CamEngine(tiny_model(), "gradcam")(images)
    gpu = CamEngine(Compute("cuda", precision).place(tiny_model()), "gradcam", precision=precision)(images)
    assert gpu.maps.dtype == torch.float32
    assert mean_difference(gpu.maps.cpu(), cpu.maps) <= BF16_MAP_TOLERANCE


@CUDA
def test_cuda_predictor_agrees_with_the_cpu(checkpoint: Path, images: Path) -> None:
    from dermx.predict import Predictor

    files = sorted(images.glob("*.png"))
    cpu = Predictor(checkpoint, threshold=0.3, compute=Compute("cpu")).predict(files)
    gpu = Predictor(checkpoint, threshold=0.3, compute=Compute("cuda")).predict(files)
    for a, b in zip(cpu, gpu, strict=True):
        assert np.allclose([p for _, p in a.diagnoses], [p for _, p in b.diagnoses], atol=1e-3)
        for label in set(a.maps) & set(b.maps):
            assert mean_difference(a.maps[label], b.maps[label]) <= DEVICE_MAP_TOLERANCE


@CUDA
def test_cuda_benchmark_and_leaderboard_agree_with_the_cpu(tmp_path: Path) -> None:
    db, checkpoint = tiny_synth_checkpoint(tmp_path)
    assert_benchmarks_agree(benchmark_on(db, checkpoint, Compute("cuda")), benchmark_on(db, checkpoint, Compute("cpu")),
                            DEVICE_MAP_TOLERANCE)
    assert_leaderboards_agree(leaderboard_on(db, checkpoint, Compute("cuda")),
                              leaderboard_on(db, checkpoint, Compute("cpu")), DEVICE_MAP_TOLERANCE)
