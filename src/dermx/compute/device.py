"""The device and precision of every command that computes maps (``explain``, ``evaluate``,
``predict``, ``serve``), with the meanings ``dermx train`` gives them.

``--device``: ``auto`` (an accelerator when one is present: CUDA, then Apple's MPS; else the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``. ``--precision``: ``32`` (float32, Lightning's ``32-true``),
``bf16-mixed`` or ``16-mixed`` (autocast to bfloat16 / float16 around the model passes; the maps and
every score are computed from float32 copies of their outputs). ``--devices``, ``--num-nodes`` and
``--strategy``: how many processes share the images, as Lightning reads them (:mod:`dermx.compute.shards`).
``--n-workers``: data-loading worker processes (default: from the cores this process may use), with
pinned memory when the device is a CUDA GPU (:meth:`Compute.loader`); the workers keep the batches
and their order (a ``DataLoader`` without shuffling), so a run gives the same maps whatever the count.

The model passes (forward, and the gradients of the CAM methods) run on the device under the precision's
autocast; every map, probability and score leaves the model pass as float32 on the CPU, so files and
metrics have one dtype whatever the device. ``bf16-mixed`` maps on the CPU agree with float32 ones to
:data:`BF16_MAP_TOLERANCE`, a GPU's with the CPU's to :data:`DEVICE_MAP_TOLERANCE` (mean absolute
difference; ``tests/test_compute_device.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["BF16_MAP_TOLERANCE", "DEVICE_MAP_TOLERANCE", "PRECISIONS", "Compute", "ComputeError", "full_precision",
           "model_device"]

#: The precisions a map-computing command takes (Lightning's spellings; ``32-true`` is read as ``32``).
PRECISIONS: tuple[str, ...] = ("32", "bf16-mixed", "16-mixed")
_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
#: Tolerance of ``bf16-mixed`` maps against float32 maps of the same images on the CPU: the mean absolute
#: difference of their pixels (maps in [0, 1]). Measured on the tiny test model (random weights, batch-norm
#: scales randomised), 4 seeds of 8 images: at most 0.0045 (Grad-CAM, XGrad-CAM, HiRes-CAM, CAM), 0.0023
#: (Grad-CAM++, Layer-CAM), 0.0013 (Eigen-CAM), 0.0008 (Score-CAM); logits within 0.001. No bound holds
#: pixel by pixel: a map whose positive part is within bfloat16's rounding (8 bits of mantissa) of zero is
#: flat at one precision and min-max normalised to [0, 1] at the other.
BF16_MAP_TOLERANCE = 0.02
#: Tolerance of a GPU's float32 maps against the CPU's, as :data:`BF16_MAP_TOLERANCE` (mean absolute
#: difference): other kernels and summation orders, and TF32 convolutions (10 bits of mantissa, more than
#: bfloat16's 8); not measured here (no GPU on the machine these tests were written on).
DEVICE_MAP_TOLERANCE = 0.02


class ComputeError(ValueError):
    """A device or precision that cannot be used here (named, with the reason); ``flag``: the command-line
    flag at fault (``--device``, ``--precision``, ...)."""

    def __init__(self, message: str, flag: str = "--device") -> None:
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class Compute:
    """Where and how a command computes: ``device``, ``precision``, ``n_workers`` (data loading),
    and the processes that share the images (``devices`` per machine, ``num_nodes`` machines,
    Lightning's ``strategy``) (module docstring). ``local_rank``: this process's index among its
    machine's processes, set by :meth:`Shards.launch <dermx.compute.shards.Shards.launch>` (each process
    on its own GPU)."""

    device: str = "auto"
    precision: str = "32"
    n_workers: int | None = None
    devices: str = "1"
    num_nodes: int = 1
    strategy: str = "auto"
    local_rank: int = 0

    def __post_init__(self) -> None:
        precision = "32" if self.precision in ("32-true", 32) else str(self.precision)
        if precision not in PRECISIONS:
            raise ComputeError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}",
                               "--precision")
        object.__setattr__(self, "precision", precision)
        kind, _, index = self.device.partition(":")
        if kind not in ("auto", "cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
            raise ComputeError(f"device {self.device!r}: expected auto, cpu, cuda, cuda:N or mps")
        devices = str(self.devices).strip()
        if not re.fullmatch(r"auto|[1-9]\d*|\d+(\s*,\s*\d+)*\s*,?", devices):
            raise ComputeError(f"devices {self.devices!r}: expected auto, a positive count N or comma-separated "
                               "GPU ids", "--devices")
        object.__setattr__(self, "devices", devices)
        if self.num_nodes < 1:
            raise ComputeError(f"num_nodes must be positive, got {self.num_nodes}", "--num-nodes")
        if index and devices != "1":
            raise ComputeError(f"device {self.device!r} names one GPU; with --devices {devices} give "
                               "--device cuda")
        if self.n_workers is not None and self.n_workers < 0:
            raise ComputeError(f"n_workers must be 0 or more, got {self.n_workers}", "--n-workers")

    @property
    def accelerator(self) -> str:
        """The device kind: ``cpu``, ``cuda`` or ``mps`` (``auto`` resolved on this machine)."""
        kind = self.device.partition(":")[0]
        if kind == "auto":
            if torch.cuda.is_available():
                return "cuda"
            return "mps" if torch.backends.mps.is_available() else "cpu"
        return kind

    @property
    def lightning_devices(self) -> int | list[int]:
        """``devices`` as Lightning takes it: a count, or GPU ids (``auto``: every GPU, else one process;
        ``cuda:N`` with one device: ``[N]``)."""
        index = self.device.partition(":")[2]
        if index:
            return [int(index)]
        if self.devices == "auto":
            return torch.cuda.device_count() if self.accelerator == "cuda" else 1
        if "," in self.devices:
            return [int(v) for v in self.devices.split(",") if v.strip()]
        return int(self.devices)

    @property
    def processes_per_node(self) -> int:
        """The processes each machine runs (one per device)."""
        devices = self.lightning_devices
        return len(devices) if isinstance(devices, list) else devices

    @property
    def sharded(self) -> bool:
        """Whether more than one process shares the images."""
        return self.processes_per_node * self.num_nodes > 1

    def torch_device(self, local_rank: int | None = None) -> torch.device:
        """The ``torch.device`` of this process (``local_rank``: its index among this machine's
        processes, each on its own GPU); a device that is not there is a :class:`ComputeError`."""
        kind = self.accelerator
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise ComputeError(f"device {self.device!r}: CUDA is not available on this machine "
                                   "(use --device cpu or auto)")
            devices = self.lightning_devices
            rank = self.local_rank if local_rank is None else local_rank
            index = devices[rank] if isinstance(devices, list) else rank
            if index >= torch.cuda.device_count():
                raise ComputeError(f"device {self.device!r}: this machine has {torch.cuda.device_count()} "
                                   f"CUDA device(s), no cuda:{index}")
            return torch.device("cuda", index)
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ComputeError(f"device {self.device!r}: MPS is not available on this machine")
        return torch.device(kind)

    def check(self) -> torch.device:
        """:meth:`torch_device`, once the precision is known to run there: a command calls it before any
        work, so that a device or precision this machine lacks is an error naming its flag."""
        device = self.torch_device()
        self.autocast(device)
        return device

    def place(self, model: torch.nn.Module, local_rank: int | None = None) -> torch.nn.Module:
        """``model`` moved (in place, as ``Module.to`` does) to :meth:`torch_device` of ``local_rank``; its
        weights keep their dtype whatever the precision (autocast casts inside the passes)."""
        return model.to(self.torch_device(local_rank))

    def autocast(self, device: torch.device | None = None) -> AbstractContextManager[object]:
        """The autocast context of the precision on ``device`` (default: :meth:`torch_device`); a
        no-op at ``32``."""
        dtype = _DTYPES.get(self.precision)
        if dtype is None:
            return nullcontext()
        device = device or self.torch_device()
        if device.type == "cpu" and dtype is torch.float16:
            raise ComputeError("precision 16-mixed needs a GPU; on the CPU use bf16-mixed or 32", "--precision")
        return torch.autocast(device.type, dtype=dtype)

    def loader(self, dataset: Dataset[Any], batch_size: int | None,
               collate_fn: Callable[[list[Any]], Any] | None = None) -> DataLoader[Any]:
        """Consecutive batches of ``dataset`` in order (no shuffling; the last may be shorter; ``batch_size``
        ``None``: the items one by one), read by :meth:`workers` processes, pinned in memory on CUDA (where
        pinned batches copy to the GPU asynchronously): the same batches whatever the worker count. A
        dataset of one batch is read in this process: a worker would have nothing to read ahead."""
        one_batch = batch_size is not None and len(dataset) <= batch_size  # type: ignore[arg-type]
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                          num_workers=0 if one_batch else self.workers(), pin_memory=self.accelerator == "cuda")

    def workers(self) -> int:
        """Data-loading worker processes: ``n_workers`` if given, else the cores this process may use
        shared among this machine's processes, less one for the main process (at most 8)."""
        if self.n_workers is not None:
            return self.n_workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(8, cores // self.processes_per_node - 1))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def full_precision(value: torch.Tensor) -> torch.Tensor:
    """``value`` in float32 when autocast left it in half precision (float16, bfloat16); float32 and float64
    tensors are kept as they are (differentiable: the copy stays in the graph)."""
    return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
