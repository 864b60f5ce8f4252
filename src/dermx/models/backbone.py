"""timm backbones without classifier or pooling: ``forward(x) -> (B, C, h, w)`` feature maps, and their
starting weights (a local file, timm's published weights from the cache or the hub, or random)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
from torch import nn

from dermx.models.presets import check_output_stride
from dermx.models.weights import load_backbone_weights, record_weight_source


class PretrainedUnavailableError(ValueError):
    """Pretrained weights that cannot be had (offline, hub out of reach, none published); the message
    names the fixes (:data:`FIXES`), ``what`` says which weights and why not."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}. To go on, {FIXES}")
        self.what = what


#: What to do when pretrained weights cannot be had (:class:`PretrainedUnavailableError`'s message).
FIXES = ("train from random weights with --no-pretrained (pretrained=False; add --recipe small-data, whose "
         "values learn from random weights), start from a local weight file with --backbone-weights FILE, "
         "or pass --random-fallback to train from random weights whenever the hub cannot be reached")
#: Seconds the one reachability check of the hub may take before weights count as out of reach.
HUB_TIMEOUT = 5.0


def create_backbone(name: str, *, pretrained: bool = False, weights: str | Path | None = None,
                    random_fallback: bool = False, output_stride: int = 32,
                    backbone_args: Mapping[str, Any] | None = None) -> nn.Module:
    """A timm model ``name`` with no head (``num_classes=0, global_pool=""``).

    ``output_stride`` (8, 16 or 32) is timm's dilation option: the last stages keep stride 1 and dilate
    their convolutions instead, so the feature grid is input / ``output_stride``; the weights' shapes do
    not change, so pretrained weights load either way. 32 is every timm CNN's own (and passes nothing:
    architectures without the option still build). ``backbone_args`` are further keyword arguments of
    the timm architecture (e.g. ResNet's ``channels``); an argument it does not take is a ValueError.

    Weights: ``weights`` (a local file) if given; else, with ``pretrained=True``, timm's published weights
    (:func:`hub_weights`): from the local cache without any network access, else downloaded. When they
    cannot be had, :class:`PretrainedUnavailableError` at once, naming the fixes, or, with
    ``random_fallback=True`` (asked for explicitly), random initialisation with a warning. The module's
    ``weight_source`` attribute records what actually happened: ``{"source": "file", "file", "sha256"}``,
    ``{"source": "hub", "name", "tag"}`` or ``{"source": "random"}``.
    """
    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r}")
    check_output_stride(output_stride)
    options: dict[str, Any] = {**(backbone_args or {}), "num_classes": 0, "global_pool": ""}
    if output_stride != 32:
        options["output_stride"] = output_stride
    try:
        model = timm.create_model(name, pretrained=False, **options)
        if weights is not None:
            load_backbone_weights(model, weights)
            return model
        if pretrained:
            try:
                # timm types its models as nn.Module, whose unknown attributes torch types as Tensor | Module
                return hub_weights(name, model.pretrained_cfg, options)  # type: ignore[arg-type]
            except PretrainedUnavailableError as error:
                if not random_fallback:
                    raise
                warnings.warn(f"{error.what}; using RANDOM initialisation (--random-fallback)", stacklevel=2)
        record_weight_source(model, {"source": "random"})
        return model
    except (TypeError, AssertionError) as error:
        given = {k: v for k, v in options.items() if k not in ("num_classes", "global_pool")}
        if not given:
            raise
        listed = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(f"timm backbone {name!r} cannot be built with {listed} "
                         f"({type(error).__name__}: {error})") from error


def hub_weights(name: str, cfg: Mapping[str, Any], options: Mapping[str, Any]) -> nn.Module:
    """timm model ``name`` with its published weights (``cfg``: its ``pretrained_cfg``): from a file already
    in the Hugging Face or torch hub cache, without network access; else downloaded once the hub has
    answered one request within :data:`HUB_TIMEOUT` seconds (the hub client's own retries would take
    about a minute to give up). :class:`PretrainedUnavailableError` when none of this works."""
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    label = str(hub_id or url or name)

    def unavailable(reason: str) -> PretrainedUnavailableError:
        return PretrainedUnavailableError(f"pretrained weights of {name!r} ({label}) cannot be had: {reason}")

    if not hub_id and not url:
        raise unavailable("timm publishes none for this architecture")
    cached = _cached_file(cfg)
    if cached is None:
        reason = _hub_unreachable()
        if reason is not None:
            raise unavailable(f"{reason}, and they are not in the local cache")
    overlay: dict[str, Any] = {"pretrained_cfg_overlay": {"file": cached}} if cached else {}
    try:
        model = timm.create_model(name, pretrained=True, **options, **overlay)
    except Exception as error:  # any download or file failure: say which
        raise unavailable(f"{type(error).__name__}: {error}") from error
    record_weight_source(model, {"source": "hub", "name": label, "tag": str(cfg.get("tag") or "")})
    return model


def _cached_file(cfg: Mapping[str, Any]) -> str | None:
    """The weight file of ``cfg`` already in the Hugging Face hub cache (or, for a URL, torch hub's)."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = str(hub_id).partition("@")
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        for filename in names:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return found
    url = cfg.get("url")
    if url:
        import torch.hub

        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(str(url)).path).name
        if path.is_file():
            return str(path)
    return None


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached now (offline mode, no answer), or ``None``: one request,
    no retries."""
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        return "offline mode (HF_HUB_OFFLINE is set)"
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT)
    except Exception as error:  # any transport failure means: out of reach
        return f"the hub ({constants.ENDPOINT}) did not answer ({type(error).__name__}: {error})"
    return None


def last_conv_name(module: nn.Module, prefix: str = "backbone") -> str:
    """Dotted name of the last ``Conv2d`` of ``module`` (default CAM layer for an unknown backbone)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError("backbone has no Conv2d layer to use as CAM layer")
    return f"{prefix}.{names[-1]}"
