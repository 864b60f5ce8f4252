"""The multi-target CAM engine: one forward pass per batch, every target's map from it.

>>> result = explain(model, images, targets=[("diagnosis", "Psoriasis"), ("characteristic", "Plaque")])
>>> result.maps.shape   # (batch, target, h, w), on the model's device
>>> result.logits       # what the model returned, for the same pass

Models: a plain classifier returning ``(B, n)`` logits (timm, torchvision, ...), or a multi-head model
returning an ordered ``dict[str, Tensor]`` with ``target_names`` naming each head's outputs. Models
following timm's protocol (``forward_features`` then ``forward_head``) are run as those two calls; when
the target layer's output is exactly what ``forward_head`` pools, the pooled features become a node
of the graph and the fast gradient routes apply (see :mod:`dermx.explain.routes`).

The engine never changes the model: hooks are removed on exit, the mode, ``requires_grad`` flags and
parameter ``.grad`` are left as they were, and gradients are enabled internally, so calling under
``torch.no_grad()`` works. The forward pass runs in the model's current mode: in train mode, batch
norm updates its running statistics as in any training forward pass.

``create_graph=True`` (gradient methods only) keeps the maps differentiable with respect to the model
parameters, for guided-attention training (DermX+): a loss on ``result.maps`` backpropagates into the
backbone and the head, and ``result.logits`` stay attached to the same graph, so one forward pass
serves both the classification loss and the attention loss.

``precision`` (``32``, ``bf16-mixed`` or ``16-mixed``, :class:`dermx.compute.Compute`'s meaning) runs the
model passes (the forward pass, Score-CAM's masked passes, the head of :meth:`CamEngine.explain_pooled`)
under autocast on the model's device; the gradients follow the pass, and the activations, gradients and
logits are copied to float32 before any map is computed, so maps and logits are float32 at every
precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dermx.compute import Compute, full_precision, model_device
from dermx.explain.hooks import capture_output
from dermx.explain.layers import resolve_layer
from dermx.explain.maps import Interpolation, MapSize, finalize, output_size, zero_absent
from dermx.explain.methods import CamInputs, Method, ScoreFunction, get_method
from dermx.explain.routes import (
    ROUTES,
    Route,
    batched_gradients,
    head_pools_first,
    linear_weights,
    loop_gradients,
)
from dermx.explain.targets import OutputLayout, Target, TargetSpec

Outputs = Tensor | dict[str, Tensor]


@dataclass(frozen=True)
class CamResult:
    """Maps ``(B, T, h, w)``, the logits of the same forward pass (as the model returned them, and the
    targets' own ``(B, T)``), the targets, the route and the layer.

    ``route`` is the gradient route taken (``"linear"``, ``"jacobian"``, ``"batched"``, ``"loop"``), or
    ``"none"`` for methods without gradients. ``activations``: the target layer's activations ``(B, K, h, w)``
    (detached) when that layer is what the head pools, from which :meth:`CamEngine.explain_pooled` gives the
    same maps and logits without the backbone; ``None`` for a layer before it.
    """

    maps: Tensor
    logits: Outputs
    target_logits: Tensor
    targets: tuple[Target, ...]
    route: str
    layer: str
    activations: Tensor | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """Target labels, ``"head:name"`` or ``"name"``, in map order."""
        return tuple(t.label for t in self.targets)


@dataclass(frozen=True)
class _Pass:
    """One forward pass: the raw outputs, the target activations and, if usable, pooled features."""

    outputs: Outputs
    activations: Tensor
    pooled: Tensor | None


class CamEngine:
    """Reusable explainer of one model with one method and layer; call it on batches of images.

    Args:
        model: plain classifier or multi-head model (see the module docstring); never modified.
        method: ``gradcam``, ``gradcam++``, ``xgradcam``, ``hirescam``, ``layercam``, ``cam``,
            ``scorecam`` or ``eigencam`` (see :mod:`dermx.explain.methods`).
        layer: dotted module path or module; ``None`` for the architecture default
            (see :mod:`dermx.explain.layers`).
        size: ``"input"`` (the model input), ``"features"`` (the feature grid) or ``(h, w)``.
        interpolation: resizing mode, bilinear by default.
        normalize: per-map min-max normalisation (:func:`dermx.explain.maps.minmax`); ``False`` keeps raw
            values.
        relu: clamp negative map values at the feature grid.
        zero_absent: zero maps of targets predicted absent (logit < 0): ``True`` for every target,
            or the names of the multi-label heads it applies to (DermX: ``{"characteristic"}``).
        route: gradient route, ``"auto"`` (fastest exact) or one of ``linear``, ``jacobian``,
            ``batched``, ``loop`` to force it (ValueError if it does not apply).
        create_graph: keep maps differentiable w.r.t. the parameters (gradient methods only).
        class_names: output names of a plain classifier, so targets can be given by name.
        score_batch_size: masked images per forward pass in Score-CAM.
        eps: relative ε of the min-max normalisation: a map whose range is below ``eps`` times its
            largest magnitude counts as flat (see :func:`dermx.explain.maps.minmax`).
        precision: ``32``, ``bf16-mixed`` or ``16-mixed``: autocast around the model passes (module
            docstring); ``16-mixed`` needs a GPU.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "gradcam",
        layer: str | nn.Module | None = None,
        *,
        size: MapSize = "input",
        interpolation: Interpolation = "bilinear",
        normalize: bool = True,
        relu: bool = True,
        zero_absent: bool | Collection[str] = False,
        route: Route = "auto",
        create_graph: bool = False,
        class_names: Sequence[str] | None = None,
        score_batch_size: int = 32,
        eps: float = 1e-7,
        precision: str = "32",
    ) -> None:
        self.model = model
        self.precision = Compute(precision=precision).precision
        self.method = get_method(method)
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; routes: {list(ROUTES)}")
        if create_graph and not self.method.uses_gradients:
            raise ValueError(f"create_graph=True needs a gradient method, not {self.method.name!r}")
        if score_batch_size < 1:
            raise ValueError(f"score_batch_size must be positive, got {score_batch_size}")
        output_size(size, (1, 1), (1, 1))  # validates size early
        self.size = size
        self.interpolation = interpolation
        self.normalize = normalize
        self.relu = relu
        self.zero_absent = zero_absent
        self.route = route
        self.create_graph = create_graph
        self.class_names = class_names
        self.score_batch_size = score_batch_size
        self.eps = eps
        self._layer_spec = layer
        self._layer: tuple[str, nn.Module] | None = None
        if layer is not None:
            self._layer = resolve_layer(model, layer, torch.empty(0))

    def __call__(self, images: Tensor, targets: Sequence[TargetSpec] | TargetSpec | None = None) -> CamResult:
        """Explain ``images`` ``(B, C, H, W)`` for ``targets`` (``None``: every output of every head).

        ValueError on images with a NaN or infinite pixel (naming their batch indices); a
        ``RuntimeWarning`` when the target layer's grid is 1×1, where no map can localise anything.
        """
        return self._explain(images, targets, (self.method,))[self.method.name]

    def explain_methods(self, images: Tensor, methods: Sequence[str],
                        targets: Sequence[TargetSpec] | TargetSpec | None = None) -> dict[str, CamResult]:
        """Every method's result from **one** forward pass (and one gradient computation when any of
        them needs gradients): {method name: result}, each equal to ``CamEngine(model, method, ...)``
        with this engine's layer and options. The engine's own ``method`` is not used."""
        if not methods:
            raise ValueError("no methods to explain with")
        chosen = tuple(dict.fromkeys(get_method(m) for m in methods))
        if self.create_graph and not all(m.uses_gradients for m in chosen):
            raise ValueError("create_graph=True needs gradient methods only, got "
                             f"{[m.name for m in chosen if not m.uses_gradients]}")
        return self._explain(images, targets, chosen)

    def _explain(self, images: Tensor, targets: Sequence[TargetSpec] | TargetSpec | None,
                 methods: tuple[Method, ...]) -> dict[str, CamResult]:
        images = self._check_images(images)
        if self._layer is None:
            self._layer = resolve_layer(self.model, self._layer_spec, images)
        layer = self._layer
        layer_name = layer[0]
        uses_scores = any(m.uses_scores for m in methods)
        if uses_scores and self.model.training:
            raise ValueError("Score-CAM runs many masked forward passes: put the model in eval mode first")
        uses_gradients = any(m.uses_gradients for m in methods)
        # Without create_graph only d(logits)/d(layer output) is needed: record autograd from the layer on.
        from_layer = uses_gradients and not self.create_graph
        with torch.enable_grad() if uses_gradients and not from_layer else torch.no_grad():
            run = self._forward(images, layer, from_layer, uses_gradients)
            return self._results(run, images, targets, methods, layer_name)

    def explain_pooled(self, activations: Tensor, input_size: tuple[int, int],
                       targets: Sequence[TargetSpec] | TargetSpec | None = None) -> CamResult:
        """The maps and logits of :meth:`__call__` from the target layer's activations alone, when that layer
        is what the model's head pools (:attr:`CamResult.activations` of an earlier call): the head runs on
        f = GAP(A), no backbone pass. Gradient methods take the pooled routes (∂y_c/∂A_kij = (∂g_c/∂f_k) / (hw),
        the head's Jacobian), Eigen-CAM reads A only; the maps equal those of the images A came from.

        ``input_size``: ``(H, W)`` of those images (for ``size="input"``). ValueError for Score-CAM (it
        scores masked images through the backbone), with ``create_graph``, for a model whose head does not
        begin with global average pooling, or before the target layer is known (give ``layer`` or call the
        engine on images first). A forward hook on the head (:func:`dermx.models.intervention.intervened`)
        applies here as in a full pass: the maps and logits are those of the hooked head.
        """
        if self.method.uses_scores or self.create_graph:
            raise ValueError(f"explain_pooled cannot compute {self.method.name!r} maps"
                             + (" with create_graph" if self.create_graph else ": it scores masked images"))
        stages = _timm_stages(self.model)
        if stages is None or not head_pools_first(self.model):
            raise ValueError("explain_pooled needs a model whose head begins with global average pooling")
        if self._layer is None:
            raise ValueError("explain_pooled needs the target layer: give layer=... or call the engine on images first")
        if not isinstance(activations, Tensor) or activations.ndim != 4 or activations.shape[0] == 0:
            shape = tuple(activations.shape) if isinstance(activations, Tensor) else type(activations).__name__
            raise ValueError(f"activations must be a non-empty (batch, channels, h, w) tensor, got {shape}")
        parameter = next(self.model.parameters(), None)
        a = activations.detach() if parameter is None else activations.detach().to(parameter.device, parameter.dtype)
        uses_gradients = self.method.uses_gradients
        with torch.enable_grad() if uses_gradients else torch.no_grad():
            pooled = a.mean(dim=(-2, -1)).requires_grad_(uses_gradients)
            with self.autocast():
                outputs = stages[1](pooled[..., None, None])
            run = _Pass(_float(outputs), a, pooled)
            return self._results(run, input_size, targets, (self.method,), self._layer[0])[self.method.name]

    def _results(self, run: _Pass, images: Tensor | tuple[int, int], targets: Sequence[TargetSpec] | TargetSpec | None,
                 methods: tuple[Method, ...], layer_name: str) -> dict[str, CamResult]:
        """Every method's result from one pass (``images``: the batch, or only its ``(H, W)`` when there are
        no images to score, :meth:`explain_pooled`), inside the pass's autograd mode."""
        layout = OutputLayout.of(run.outputs, getattr(self.model, "target_names", None), self.class_names)
        chosen = layout.resolve(targets)
        columns = [t.column for t in chosen]
        logits = layout.flatten(run.outputs)
        pooled_needed = [m.name for m in methods if m.needs_pooled_layer]
        if pooled_needed and run.pooled is None:
            raise ValueError(f"method {pooled_needed[0]!r} needs the target layer to be the backbone output "
                             f"that feeds global average pooling; {layer_name!r} is not")
        uses_gradients = any(m.uses_gradients for m in methods)
        route, gradients = self._gradients(run, logits, columns, layer_name) if uses_gradients else ("none", None)
        gradients = None if gradients is None else full_precision(gradients)
        keep_graph = self.create_graph
        size = (images.shape[-2], images.shape[-1]) if isinstance(images, Tensor) else images
        activations = full_precision(run.activations)
        pooled_layer = None if run.pooled is None else activations.detach()
        results: dict[str, CamResult] = {}
        with nullcontext() if keep_graph else torch.no_grad():
            inputs = CamInputs(
                activations=activations if keep_graph else activations.detach(),
                n_targets=len(chosen),
                gradients=gradients,
                images=images if isinstance(images, Tensor) else None,
                score=self._scorer(layout, columns) if any(m.uses_scores for m in methods) else None,
                score_batch_size=self.score_batch_size,
            )
            target_logits = logits[:, columns] if keep_graph else logits[:, columns].detach()
            outputs = run.outputs if keep_graph else _detach(run.outputs)
            for method in methods:
                maps = self._finish(method.compute(inputs), size, layer_name, target_logits, chosen)
                results[method.name] = CamResult(maps=maps, logits=outputs, target_logits=target_logits,
                                                 targets=chosen, route=route if method.uses_gradients else "none",
                                                 layer=layer_name, activations=pooled_layer)
        return results

    def _finish(self, raw: Tensor, image_size: tuple[int, int], layer_name: str, target_logits: Tensor,
                chosen: tuple[Target, ...]) -> Tensor:
        """Raw maps at the feature grid → final maps (ReLU, resizing, normalisation, absent targets)."""
        if raw.shape[-2] * raw.shape[-1] == 1:
            warnings.warn(f"layer {layer_name!r} has a 1x1 feature grid for {image_size[0]}x"
                          f"{image_size[1]} images: every map is spatially constant (all zero once "
                          "min-max normalised); use larger images or an earlier layer",
                          RuntimeWarning, stacklevel=5)
        size = output_size(self.size, (raw.shape[-2], raw.shape[-1]), image_size)
        maps = finalize(raw, size, relu=self.relu, normalize=self.normalize, eps=self.eps,
                        interpolation=self.interpolation)
        if self.zero_absent:
            maps = zero_absent(maps, target_logits.detach(), self._absence_applies(chosen, maps))
        return maps

    def _check_images(self, images: object) -> Tensor:
        if not isinstance(images, Tensor):
            raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"images must be 4-D (batch, channels, height, width), got shape {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("images is an empty batch (batch size 0)")
        if not images.is_floating_point():
            raise ValueError(f"images must be a floating-point tensor, got {images.dtype}")
        finite = torch.isfinite(images).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"images at batch index {bad} contain NaN or infinite pixels")
        first_conv = next((m for m in self.model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is not None and images.shape[1] != first_conv.in_channels:
            raise ValueError(f"images have {images.shape[1]} channels but the model's first convolution "
                             f"expects {first_conv.in_channels}")
        parameter = next(self.model.parameters(), None)
        if parameter is None:
            return images
        return images.to(device=parameter.device, dtype=parameter.dtype)

    def autocast(self) -> AbstractContextManager[object]:
        """Autocast of :attr:`precision` on the model's device (a no-op at ``32``)."""
        if self.precision == "32":
            return nullcontext()
        return Compute(precision=self.precision).autocast(model_device(self.model))

    def _run(self, images: Tensor) -> Outputs:
        """The model's outputs: ``forward_head(forward_features(x))`` under timm's protocol, else ``model(x)``."""
        stages = _timm_stages(self.model)
        if stages is None:
            return self.model(images)
        forward_features, forward_head = stages
        return forward_head(forward_features(images))

    def _forward(self, images: Tensor, layer: tuple[str, nn.Module], graph_from_layer: bool,
                 track_gradients: bool) -> _Pass:
        """One forward pass capturing the target ``layer`` (name, module); pooled features when the layer
        feeds GAP."""
        name, module = layer
        with capture_output(module, name, track_gradients=track_gradients,
                            graph_from_layer=graph_from_layer) as capture, self.autocast():
            stages = _timm_stages(self.model) if head_pools_first(self.model) else None
            if stages is None:
                return _Pass(_float(self._run(images)), capture.output, None)
            forward_features, forward_head = stages
            features = forward_features(images)
            pooled = features.mean(dim=(-2, -1)) if capture.passed_on(features) else None
            outputs = forward_head(features if pooled is None else pooled[..., None, None])
            return _Pass(_float(outputs), capture.output, pooled)

    def _gradients(self, run: _Pass, logits: Tensor, columns: list[int], layer_name: str) -> tuple[str, Tensor]:
        """``(route, G)`` with G broadcastable to ``(B, T, K, h, w)`` (1×1 grid on pooled routes)."""
        route, pooled, activations = self.route, run.pooled, run.activations
        create_graph = self.create_graph
        if route in ("linear", "jacobian") and pooled is None:
            raise ValueError(f"route {route!r} needs the target layer to be the backbone output that feeds "
                             f"global average pooling; {layer_name!r} is not (use 'batched')")
        weight = linear_weights(self.model, pooled, logits) if pooled is not None and route in ("auto", "linear") \
            else None
        if route == "linear" and weight is None:
            raise ValueError("route 'linear' needs a linear classifier after global average pooling "
                             "(model.get_classifier()); this head is not linear on this batch")
        if route == "auto":
            route = "linear" if weight is not None else "jacobian" if pooled is not None else "batched"
        grid = activations.shape[-2] * activations.shape[-1]
        if route == "linear":
            assert weight is not None  # checked above
            grads = (weight if create_graph else weight.detach())[columns][None, :, :, None, None] / grid
        elif route == "jacobian":
            assert pooled is not None  # checked above
            grads = batched_gradients(logits, pooled, columns, create_graph).transpose(0, 1)[..., None, None] / grid
        elif route == "batched":
            grads = batched_gradients(logits, activations, columns, create_graph).transpose(0, 1)
        else:
            grads = loop_gradients(logits, activations, columns, create_graph).transpose(0, 1)
        return route, grads

    def _scorer(self, layout: OutputLayout, columns: list[int]) -> ScoreFunction:
        """Target logits ``(n, T)`` of a batch of (masked) images, from a plain forward pass."""
        def score(batch: Tensor) -> Tensor:
            with self.autocast():
                outputs = self._run(batch)
            return layout.flatten(_float(outputs))[:, columns]

        return score

    def _absence_applies(self, targets: tuple[Target, ...], like: Tensor) -> Tensor:
        heads = self.zero_absent
        flags = [heads is True or (not isinstance(heads, bool) and t.head in heads) for t in targets]
        return torch.tensor(flags, dtype=torch.bool, device=like.device)


def explain(
    model: nn.Module,
    images: Tensor,
    targets: Sequence[TargetSpec] | TargetSpec | None = None,
    method: str = "gradcam",
    layer: str | nn.Module | None = None,
    **options: object,
) -> CamResult:
    """One-shot :class:`CamEngine` call: ``CamEngine(model, method, layer, **options)(images, targets)``."""
    return CamEngine(model, method, layer, **options)(images, targets)  # type: ignore[arg-type]


def _float(outputs: Outputs) -> Outputs:
    """:func:`~dermx.compute.full_precision` of every head's outputs."""
    if isinstance(outputs, Mapping):
        return {head: full_precision(value) for head, value in outputs.items()}
    return full_precision(outputs)


def _detach(outputs: Outputs) -> Outputs:
    if isinstance(outputs, Mapping):
        return {head: value.detach() for head, value in outputs.items()}
    return outputs.detach()


def _timm_stages(model: nn.Module) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Outputs]] | None:
    """``(forward_features, forward_head)`` of a model following timm's protocol, else ``None``."""
    forward_features = getattr(model, "forward_features", None)
    forward_head = getattr(model, "forward_head", None)
    return (forward_features, forward_head) if callable(forward_features) and callable(forward_head) else None
