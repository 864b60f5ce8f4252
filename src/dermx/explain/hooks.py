"""Forward hooks that live only inside a ``with`` block and never alter what the model computes.

:func:`capture_output` records what one module returns during a forward pass and passes an equal copy
on to the rest of the model; :func:`record_spatial_outputs` records every spatial output untouched.
Hooks are removed on exit, even after an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Capture:
    """The outputs one module produced while the capture was active, and the copies passed on.

    ``outputs[i]`` is the module's i-th output as the module returned it, ``passed[i]`` the copy the
    model continued with, ``versions[i]`` both tensors' in-place version counters right after the
    module ran, and ``aliased[i]`` whether the output shares memory with one of the module's inputs.
    """

    name: str
    outputs: list[Tensor] = field(default_factory=list)
    passed: list[Tensor] = field(default_factory=list)
    versions: list[tuple[int, int]] = field(default_factory=list)
    aliased: list[bool] = field(default_factory=list)

    @property
    def output(self) -> Tensor:
        """The single output of the module, as it was when the module returned it.

        ValueError if the module ran zero or several times, or if the pass could not leave that
        output intact without changing what the model computes (see :func:`capture_output`).
        """
        if len(self.outputs) != 1:
            raise ValueError(
                f"layer {self.name!r} ran {len(self.outputs)} times in one forward pass; "
                "choose a layer that runs exactly once"
            )
        output, passed = self.outputs[0], self.passed[0]
        if output._version != self.versions[0][0]:
            raise ValueError(
                f"the model modified the output of layer {self.name!r} in place through another reference "
                "to the same memory after the layer ran, so its activations are lost; choose another layer"
            )
        if self.aliased[0] and passed._version != self.versions[0][1]:
            raise ValueError(
                f"layer {self.name!r} returns (a view of) its own input, which the model then modifies in "
                "place; its activations cannot be kept without changing what the model computes: choose "
                "the layer that produces its input, or one that computes a new tensor"
            )
        return output

    def passed_on(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` is the copy of the module's single output that the model continued with,
        unmodified (an in-place operation returns the same object with other values)."""
        return len(self.passed) == 1 and self.passed[0] is tensor and tensor._version == self.versions[0][1]


def _shares_memory(output: Tensor, args: object) -> bool:
    """Whether ``output`` lives in the storage of one of the positional tensor arguments ``args``."""
    pointer = output.untyped_storage().data_ptr()
    inputs = args if isinstance(args, tuple) else (args,)
    return any(isinstance(x, Tensor) and x.untyped_storage().data_ptr() == pointer for x in inputs)


@contextmanager
def capture_output(module: nn.Module, name: str, track_gradients: bool,
                   graph_from_layer: bool = False) -> Iterator[Capture]:
    """Record ``module``'s output tensors; with ``track_gradients``, make them require grad.

    The rest of the forward pass runs on a copy of the output (``clone``, equal values, part of the
    graph), so that in-place operations after the layer (a residual ``x += shortcut`` then an in-place
    ReLU, as after ``bn2`` in a timm ResNet block) change the copy, never the captured activations nor
    their node of the autograd graph: gradients are taken with respect to the layer's own output.
    A copy changes nothing the model computes unless the output shares memory with another live
    tensor; :attr:`Capture.output` checks the version counters and raises instead of returning
    activations that were overwritten, or whose copy hid an in-place write from the module's input.

    A frozen backbone (no parameter requiring grad), or a forward run under ``torch.no_grad``,
    yields a leaf output that does not require grad; a detached alias of it, flagged to require grad,
    is captured instead, so that gradients can be taken with respect to it. Outputs that already
    require grad are captured as they are.

    ``graph_from_layer``: the forward pass runs without autograd up to this module, and the hook
    switches autograd on for the rest of the pass (the caller's ``torch.no_grad`` block restores the
    mode on exit). Only the graph from the target layer to the logits is recorded, which is all that
    gradients with respect to the layer's output need: the backbone's prefix runs at no-grad speed.
    """
    capture = Capture(name)

    def hook(_module: nn.Module, args: object, output: object) -> Tensor:
        if not isinstance(output, Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"layer {name!r} must output a (batch, channels, h, w) tensor, got {shape}")
        if graph_from_layer:
            torch.set_grad_enabled(True)
        captured = output.detach().requires_grad_(True) if track_gradients and not output.requires_grad else output
        passed = captured.clone()
        capture.outputs.append(captured)
        capture.passed.append(passed)
        capture.versions.append((captured._version, passed._version))
        capture.aliased.append(_shares_memory(output, args))
        return passed

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
