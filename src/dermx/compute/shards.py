"""Work shared across processes and machines with Lightning, resumable, with the one-process result.

>>> shards = Shards.launch(Compute(devices="2"), out / "shards")          # doctest: +SKIP
>>> tables = shards.map("benchmark", units, score_unit, key=config)       # doctest: +SKIP

A stage of a command is a list of **units** (a batch of images of one model; one model fold), each a
pure function of its inputs. :meth:`Shards.map` gives this process its units, runs those not already
done, writes each result to its own file (``<folder>/<stage>-<key>/unit-00012.pkl``, written whole or
not at all: :mod:`dermx.atomic`; the folder is :data:`SHARDS` in the run's output folder), waits for the
other processes (a barrier), and returns every unit's result in unit order: its own as computed, the
others' read from their files. So:

* **The one-process result.** A unit is computed the same way whichever process runs it, and the
  results come back in the order a single process would produce them, so the merged rows, and every
  statistic computed from them afterwards (bootstrap CIs included, same seed), are those of a run in
  one process. Units are whole batches of the one-process run, so no image meets different
  neighbours in a batch; random draws are seeded per unit as in one process.
* **Resume.** With ``resume``, a unit whose file exists is read, not recomputed: an interrupted run
  (one shard killed, or all) redoes only the units that had not finished. The key in the folder name
  is a hash of everything the units depend on (the stage's configuration, the models, the images), so
  results of another configuration are never read back.
* **Who does what.** Unit ``i`` goes to process ``i mod world`` (units are of similar cost), or, given
  ``costs``, to the least loaded process in decreasing order of cost (greedy longest-processing-time).

Processes are started by Lightning Fabric (:meth:`Shards.launch`): ``--devices N`` on one machine
re-runs the same command line in N − 1 more processes (Lightning's subprocess launcher), and on a SLURM
cluster each task is a process; they talk over ``gloo`` on CPUs and ``nccl`` on GPUs (only the
barrier: results travel through the shared folder, which must therefore be visible to every machine).
On the CPU each process gets an equal share of the cores' threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, get_args

import torch

from dermx.atomic import atomic_write
from dermx.choices import ShardStrategy
from dermx.compute.device import Compute, ComputeError

__all__ = ["SHARDS", "STRATEGIES", "Shards", "assign", "unit_key"]

U = TypeVar("U")
R = TypeVar("R")
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]

#: The folder of a run's unit results, inside its output folder (removed when the run has finished).
SHARDS = ".shards"
#: How long a process waits at a barrier for the slowest one (Lightning's default, 30 minutes, is shorter
#: than a paper-scale shard); a process that dies ends the others' wait at once (gloo and nccl see the
#: closed connection).
BARRIER_TIMEOUT = timedelta(hours=48)
#: The strategies a sharded command takes (:data:`dermx.choices.ShardStrategy`): data parallel, one process
#: per device (the models are only read, so nothing is synchronised but the barrier).
STRATEGIES: tuple[str, ...] = get_args(ShardStrategy)


def assign(n_units: int, world: int, costs: Sequence[float] | None = None) -> list[list[int]]:
    """Each process's units (indices): round robin, or with ``costs`` the greedy longest-processing-time
    rule (units by decreasing cost, each to the least loaded process; ties to the lower rank and the
    lower unit index), so the result depends only on the costs."""
    if costs is None:
        return [list(range(rank, n_units, world)) for rank in range(world)]
    if len(costs) != n_units:
        raise ValueError(f"{len(costs)} costs for {n_units} units")
    loads = [0.0] * world
    out: list[list[int]] = [[] for _ in range(world)]
    for unit in sorted(range(n_units), key=lambda i: (-costs[i], i)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        out[rank].append(unit)
        loads[rank] += costs[unit]
    return [sorted(units) for units in out]


def unit_key(*parts: Any) -> str:
    """A short hash of what a stage's units depend on (JSON of ``parts``; paths and other objects by
    their text)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Shards:
    """This process's part of a sharded command (module docstring): its ``rank`` among ``world``
    processes, the ``folder`` of unit results (``None``: keep results in memory, one process only),
    whether to ``resume`` from units already there, and the ``compute`` of this process (its device:
    ``Compute.local_rank`` set)."""

    rank: int = 0
    world: int = 1
    folder: Path | None = None
    resume: bool = False
    fabric: Any = None
    compute: Compute = field(default_factory=Compute)

    @classmethod
    def launch(cls, compute: Compute, folder: Path | None, *, resume: bool = False) -> Shards:
        """Start the processes of ``compute`` (``devices`` × ``num_nodes``; one process: nothing to start)
        and return this one's :class:`Shards`. A sharded run needs ``folder`` (where the processes meet)."""
        if not compute.sharded:
            return cls(folder=folder, resume=resume, compute=compute)
        if compute.strategy not in STRATEGIES:
            raise ComputeError(f"strategy {compute.strategy!r}: the map-computing commands shard images with "
                               f"{' or '.join(STRATEGIES)} (one process per device)")
        if folder is None:
            raise ComputeError("a run in several processes needs an output folder, where they share results")
        from lightning.fabric import Fabric
        from lightning.fabric.strategies import DDPStrategy

        accelerator = compute.accelerator
        backend = "nccl" if accelerator == "cuda" else "gloo"
        fabric = Fabric(accelerator=accelerator, devices=compute.lightning_devices, num_nodes=compute.num_nodes,
                        strategy=DDPStrategy(process_group_backend=backend, timeout=BARRIER_TIMEOUT),
                        precision="32-true")
        fabric.launch()
        if accelerator == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(max(1, cores // compute.processes_per_node))
        return cls(rank=fabric.global_rank, world=fabric.world_size, folder=folder, resume=resume, fabric=fabric,
                   compute=replace(compute, local_rank=fabric.local_rank))

    @classmethod
    def joined(cls, folder: Path | None, compute: Compute | None = None) -> Shards:
        """The :class:`Shards` of the processes already started around this one (a Lightning run in
        several processes, e.g. ``dermx cv --devices 2``: their process group), or of this process alone."""
        import torch.distributed as dist

        compute = compute or Compute()
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls(folder=folder, compute=compute)
        local = int(os.environ.get("LOCAL_RANK", 0))
        return cls(rank=dist.get_rank(), world=dist.get_world_size(), folder=folder,
                   compute=replace(compute, local_rank=local))

    def agree(self, value: Any) -> Any:
        """The main process's ``value``, in every process (waits for the main process to get there)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @property
    def is_main(self) -> bool:
        """Whether this is the process that merges, computes the statistics and writes the run's files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op in one process)."""
        if self.fabric is not None:
            self.fabric.barrier()
        elif self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def map(self, stage: str, units: Sequence[U], work: Callable[[U], R], *, key: Any,
            costs: Sequence[float] | None = None, progress: Progress | None = None,
            description: str = "") -> list[R]:
        """Every unit's ``work(unit)``, in unit order; this process computes its share (module docstring).

        ``key``: everything the units' results depend on (the configuration, the models, the units'
        images; :func:`unit_key`); ``progress`` wraps this process's loop (``description``)."""
        if self.folder is None:
            if self.world > 1:
                raise ComputeError("a run in several processes needs a folder to share results")
            wrap = progress or (lambda it, _d, _n: it)
            return [work(unit) for unit in wrap(units, description or stage, len(units))]
        where = self.folder / f"{stage}-{unit_key(stage, key, len(units))}"
        if self.is_main and not self.resume and where.exists():
            shutil.rmtree(where)
        self.barrier()
        mine = [i for i in assign(len(units), self.world, costs)[self.rank]
                if not (self.resume and _unit_file(where, i).exists())]
        wrap = progress or (lambda it, _d, _n: it)
        label = description or stage
        if self.world > 1:
            label += f" (process {self.rank + 1} of {self.world})"
        computed: dict[int, R] = {}
        for i in wrap(mine, label, len(mine)):
            computed[i] = work(units[i])
            with atomic_write(_unit_file(where, i)) as handle:
                pickle.dump(computed[i], handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.barrier()
        return [computed[i] if i in computed else _read(_unit_file(where, i)) for i in range(len(units))]

    def finish(self) -> None:
        """After a run that finished: wait for every process, then remove the folder of unit results, of
        this configuration and of any earlier one (main process)."""
        self.barrier()
        if self.is_main and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _read(path: Path) -> Any:
    """A unit's result, as its process wrote it."""
    with path.open("rb") as handle:
        return pickle.load(handle)


def _unit_file(where: Path, index: int) -> Path:
    return where / f"unit-{index:05d}.pkl"
