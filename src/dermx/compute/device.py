"""The device and precision of every command that computes maps (``explain``, ``evaluate``,
``predict``, ``serve``), with the meanings ``dermx train`` gives them.

``--device``: ``auto`` (an accelerator when one is present: CUDA, then Apple's MPS; else the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``. ``--precision``: ``32`` (float32, Lightning's ``32-true``),
``bf16-mixed`` or ``16-mixed`` (autocast to bfloat16 / float16 around the model passes; the maps and
every score are computed from float32 copies of their outputs). ``--devices``, ``--num-nodes`` and
``--strategy``: how many processes share the images, as Lightning reads them (:mod:`dermx.compute.shards`).
``--n-workers``: data-loading worker processes (default: from the cores this process may use).
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

__all__ = ["PRECISIONS", "Compute", "ComputeError"]

#: The precisions a map-computing command takes (Lightning's spellings; ``32-true`` is read as ``32``).
PRECISIONS: tuple[str, ...] = ("32", "bf16-mixed", "16-mixed")
_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class ComputeError(ValueError):
    """A device or precision that cannot be used here (named, with the reason)."""


@dataclass(frozen=True)
class Compute:
    """Where and how a command computes: ``device``, ``precision``, ``n_workers`` (data loading),
    and the processes that share the images (``devices`` per machine, ``num_nodes`` machines,
    Lightning's ``strategy``) (module docstring)."""

    device: str = "auto"
    precision: str = "32"
    n_workers: int | None = None
    devices: str = "1"
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        precision = "32" if self.precision in ("32-true", 32) else str(self.precision)
        if precision not in PRECISIONS:
            raise ComputeError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        object.__setattr__(self, "precision", precision)
        kind, _, index = self.device.partition(":")
        if kind not in ("auto", "cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
            raise ComputeError(f"device {self.device!r}: expected auto, cpu, cuda, cuda:N or mps")
        devices = str(self.devices).strip()
        if not re.fullmatch(r"auto|[1-9]\d*|\d+(\s*,\s*\d+)*\s*,?", devices):
            raise ComputeError(f"devices {self.devices!r}: expected auto, a positive count N or comma-separated "
                               "GPU ids")
        object.__setattr__(self, "devices", devices)
        if self.num_nodes < 1:
            raise ComputeError(f"num_nodes must be positive, got {self.num_nodes}")
        if index and devices != "1":
            raise ComputeError(f"device {self.device!r} names one GPU; with --devices {devices} give "
                               "--device cuda")

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

    def torch_device(self, local_rank: int = 0) -> torch.device:
        """The ``torch.device`` of this process (``local_rank``: its index among this machine's
        processes, each on its own GPU); a device that is not there is a :class:`ComputeError`."""
        kind = self.accelerator
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise ComputeError(f"device {self.device!r}: CUDA is not available on this machine "
                                   "(use --device cpu or auto)")
            devices = self.lightning_devices
            index = devices[local_rank] if isinstance(devices, list) else local_rank
            if index >= torch.cuda.device_count():
                raise ComputeError(f"device {self.device!r}: this machine has {torch.cuda.device_count()} "
                                   f"CUDA device(s), no cuda:{index}")
            return torch.device("cuda", index)
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ComputeError(f"device {self.device!r}: MPS is not available on this machine")
        return torch.device(kind)

    def autocast(self, device: torch.device | None = None) -> AbstractContextManager[object]:
        """The autocast context of the precision on ``device`` (default: :meth:`torch_device`); a
        no-op at ``32``."""
        dtype = _DTYPES.get(self.precision)
        if dtype is None:
            return nullcontext()
        device = device or self.torch_device()
        if device.type == "cpu" and dtype is torch.float16:
            raise ComputeError("precision 16-mixed needs a GPU; on the CPU use bf16-mixed or 32")
        return torch.autocast(device.type, dtype=dtype)

    def workers(self) -> int:
        """Data-loading worker processes: ``n_workers`` if given, else the cores this process may use
        shared among this machine's processes, less one for the main process (at most 8)."""
        if self.n_workers is not None:
            return self.n_workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(8, cores // self.processes_per_node - 1))
