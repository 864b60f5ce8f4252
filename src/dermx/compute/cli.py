"""The command line's side of :class:`~dermx.compute.Compute`: a command's ``--device``, ``--precision`` and
``--n-workers`` (flags of :data:`dermx.cli_common.SHARED`) made one ``Compute``, checked before any work."""

from __future__ import annotations

from typing import Any

import typer

from dermx.compute.device import Compute, ComputeError


def compute_of(device: str = "auto", precision: str = "32", n_workers: int | None = None,
               **sharing: Any) -> Compute:
    """The :class:`~dermx.compute.Compute` of a command's ``--device``, ``--precision`` and ``--n-workers``
    (``sharing``: ``devices``, ``num_nodes``, ``strategy``), checked on this machine
    (:meth:`~dermx.compute.Compute.check`): a value it cannot use, such as ``--device cuda`` without CUDA,
    is a usage error (exit 2) naming its flag."""
    try:
        compute = Compute(device, precision, n_workers, **sharing)
        compute.check()
    except ComputeError as error:
        raise typer.BadParameter(str(error), param_hint=f"'{error.flag}'") from error
    return compute
