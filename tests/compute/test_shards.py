"""Sharding (dermx.compute.shards, docs/design.md section 12, "Processes and sharding"): the assignment
rule, resuming from finished units, and two CPU processes (gloo) giving the one-process files of
`dermx explain` and `dermx evaluate` (benchmark, raters' ceiling and leaderboard) byte for byte, and
`dermx cv`'s fold maps of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dermx.compute import Compute, ComputeError
from dermx.compute.shards import SHARDS, Shards, assign

ROOT = Path(__file__).resolve().parents[2]


def test_round_robin_and_longest_processing_time() -> None:
    assert assign(5, 2) == [[0, 2, 4], [1, 3]]
    assert assign(2, 3) == [[0], [1], []]
    # LPT: 8 to rank 0; 5 to rank 1; 4 to rank 1 (5 < 8); 3 to rank 0 (8 < 9); 1 to rank 1 (9 < 11)
    assert assign(5, 2, [3, 8, 4, 5, 1]) == [[0, 1], [2, 3, 4]]
    with pytest.raises(ValueError, match="2 costs for 3 units"):
        assign(3, 2, [1, 2])


def test_one_process_without_a_folder_keeps_results_in_memory() -> None:
    shards = Shards()
    assert shards.is_main and shards.map("s", [1, 2, 3], lambda u: u * 10, key=None) == [10, 20, 30]


def test_a_resumed_run_redoes_only_the_unfinished_units(tmp_path: Path) -> None:
    folder = tmp_path / SHARDS
    done: list[int] = []

    def work(unit: int) -> int:
        if unit == 3 and len(done) < 10:
            raise RuntimeError("killed")
        done.append(unit)
        return unit * unit

    with pytest.raises(RuntimeError, match="killed"):
        Shards(folder=folder).map("stage", [0, 1, 2, 3, 4], work, key="config")
    assert done == [0, 1, 2]
    done += [99] * 10  # unit 3 works now
    assert Shards(folder=folder, resume=True).map("stage", [0, 1, 2, 3, 4], work, key="config") == [0, 1, 4, 9, 16]
    assert done[-2:] == [3, 4]  # units 0-2 were read back, not recomputed
    rerun: list[int] = []
    Shards(folder=folder, resume=True).map("stage", [0, 1, 2, 3, 4], lambda u: rerun.append(u) or u, key="other")
    assert rerun == [0, 1, 2, 3, 4]  # another configuration never reads these results
    fresh = Shards(folder=folder)  # without --resume: everything is recomputed
    assert fresh.map("stage", [0, 1], lambda u: -u, key="config") == [0, -1]
    fresh.finish()
    assert not folder.exists()  # a finished run leaves no unit files, of any configuration


def test_a_sharded_run_needs_a_folder_and_a_data_parallel_strategy() -> None:
    with pytest.raises(ComputeError, match="output folder"):
        Shards.launch(Compute(device="cpu", devices="2"), None)
    with pytest.raises(ComputeError, match="strategy 'fsdp'"):
        Shards.launch(Compute(device="cpu", devices="2", strategy="fsdp"), Path("unused"))


# --- two processes against one, through the command line -----------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic DermXDB (24 images) and two untrained checkpoints whose scores move."""
    from dermx.models import build_model, save_checkpoint
    from report.oracle import tiny_synth

    root = tmp_path_factory.mktemp("shards")
    tiny_synth(root / "data")
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        model = build_model("tiny", pretrained=False, input_size=(32, 32))
        with torch.no_grad():
            model.diagnosis_out.weight.mul_(50)
        save_checkpoint(model, root / f"ckpt-{name}")
    return root


def _dermx(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m dermx ARGS`` with one thread per process (as each of two processes gets on 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "dermx", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _same_files(one: Path, two: Path, skip: tuple[str, ...] = ()) -> int:
    names = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and p.name not in skip)
    assert names == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file() and p.name not in skip)
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), f"{name} differs"
    return len(names)


@pytest.mark.slow
def test_two_processes_give_the_one_process_evaluation(world: Path) -> None:
    """Rows, bootstrap CIs, the leaderboard and every other file equal to the byte (the manifest records
    the run's own command, so its process options differ)."""
    args = ["evaluate", "--data", world / "data", "--images", world / "data" / "images",
            "--candidate", f"a={world / 'ckpt-a'}", "--candidate", f"b={world / 'ckpt-b'}",
            "--methods", "gradcam,eigencam", "--n-boot", "50", "--n-faithfulness-images", "3", "--n-steps", "2",
            "--no-report", "--allow-overlap"]
    _dermx(*args, "--out", world / "one")
    two = _dermx(*args, "--out", world / "two", "--devices", "2", "--strategy", "ddp")
    assert "process 2 of 2" not in two.stdout  # the second process says nothing
    assert _same_files(world / "one", world / "two", skip=("manifest.json",)) >= 10
    rows = json.loads((world / "two" / "leaderboard.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"a", "b"}  # one fold each: one per process
    assert not (world / "two" / SHARDS).exists()  # unit files are removed once the run has finished


@pytest.mark.slow
def test_two_processes_give_the_one_process_maps(world: Path) -> None:
    args = ["explain", "--model", world / "ckpt-a", "--images", world / "data" / "images", "--batch-size", "5",
            "--targets", "diagnosis:Psoriasis,Plaque"]
    _dermx(*args, "--out", world / "maps-one")
    _dermx(*args, "--out", world / "maps-two", "--devices", "2")
    assert _same_files(world / "maps-one", world / "maps-two") == 24 * 3  # maps.npz and two PNGs per image


@pytest.mark.slow
def test_the_processes_that_trained_a_fold_share_its_maps(tmp_path: Path) -> None:
    """`dermx cv --devices 2`: both training processes compute the fold's maps (each its batches) and the
    file equals the maps one process computes from the same checkpoint, to the bit."""
    from dermx.models import load_checkpoint
    from dermx.train.config import load_config
    from dermx.train.datamodule import DermXDataModule
    from dermx.train.fold_maps import compute_fold_maps, load_fold_maps
    from train.conftest import write_tiny_dermxdb

    data, images = write_tiny_dermxdb(tmp_path)
    run = tmp_path / "cv"
    _dermx("cv", "--data", data, "--images", images, "--kind", "dermx", "--preset", "cpu", "--input-size", "64",
           "--epochs", "1", "--batch-size", "4", "--no-pretrained", "--out", run, "--devices", "2", "--strategy", "ddp",
           "--accelerator", "cpu", "--folds", "0", "--no-progress")
    shared = load_fold_maps(run / "fold_0" / "test_maps.npz")
    config = load_config(run / "fold_0" / "config.json")
    model = load_checkpoint(run / "fold_0" / "model")
    module = DermXDataModule(config, model.config)
    module.setup()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = compute_fold_maps(model, module.dataset("test", augment=False), batch_size=4)
    finally:
        torch.set_num_threads(threads)
    assert len(shared) == 12 and shared.stems == alone.stems  # 3 batches: two in one process, one in the other
    assert np.array_equal(shared.diagnosis, alone.diagnosis) and np.array_equal(shared.characteristic,
                                                                                 alone.characteristic)
    assert not (run / "fold_0" / SHARDS).exists()
