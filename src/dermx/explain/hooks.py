"""Forward hooks that live only inside a ``with`` block and never alter the model.

:func:`capture_output` records what one module returns during a forward pass. The hook returns
``None`` (the output is passed on untouched) and is removed on exit, even after an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Capture:
    """The outputs one module produced while the capture was active."""

    name: str
    outputs: list[Tensor] = field(default_factory=list)

    @property
    def output(self) -> Tensor:
        """The single output of the module; ValueError if it ran zero or several times."""
        if len(self.outputs) != 1:
            raise ValueError(
                f"layer {self.name!r} ran {len(self.outputs)} times in one forward pass; "
                "choose a layer that runs exactly once"
            )
        return self.outputs[0]


@contextmanager
def capture_output(module: nn.Module, name: str, track_gradients: bool,
                   graph_from_layer: bool = False) -> Iterator[Capture]:
    """Record ``module``'s output tensors; with ``track_gradients``, make them require grad.

    A frozen backbone (no parameter requiring grad), or a forward run under ``torch.no_grad``,
    yields a leaf output that does not require grad; flagging that leaf (in place, same object) lets
    gradients be taken with respect to it. Outputs that already require grad are left alone.

    ``graph_from_layer``: the forward pass runs without autograd up to this module, and the hook
    switches autograd on for the rest of the pass (the caller's ``torch.no_grad`` block restores the
    mode on exit). Only the graph from the target layer to the logits is recorded, which is all that
    gradients with respect to the layer's output need: the backbone's prefix runs at no-grad speed.
    """
    capture = Capture(name)

    def hook(_module: nn.Module, _args: object, output: object) -> None:
        if not isinstance(output, Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"layer {name!r} must output a (batch, channels, h, w) tensor, got {shape}")
        if graph_from_layer:
            torch.set_grad_enabled(True)
        if track_gradients and not output.requires_grad:
            output.requires_grad_(True)
        capture.outputs.append(output)

    handle = module.register_forward_hook(hook)
    try:
        yield capture
    finally:
        handle.remove()


@contextmanager
def record_spatial_outputs(model: nn.Module) -> Iterator[list[tuple[str, Tensor]]]:
    """Record ``(module name, output)`` for every module that returns a 4-D map larger than 1×1."""
    records: list[tuple[str, Tensor]] = []

    def make_hook(module_name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _args: object, output: object) -> None:
            if isinstance(output, Tensor) and output.ndim == 4 and output.shape[-2] * output.shape[-1] > 1:
                records.append((module_name, output))

        return hook

    handles = [module.register_forward_hook(make_hook(n)) for n, module in model.named_modules() if n]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
