"""Backbone weights: from the timm hub when online, a local file when offline, random otherwise.

A local file may be a timm checkpoint (``torch.save`` of a state dict, possibly wrapped in
``{"state_dict": ...}`` / ``{"model": ...}`` with ``module.`` prefixes), a ``.safetensors`` file, or a
torchvision state dict. Keys are matched by name after stripping wrapper prefixes; when names do not
match (e.g. torchvision EfficientNet vs timm EfficientNet) but the ordered list of tensor shapes
does, tensors are mapped by position. Classifier weights of the source are ignored.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

_WRAPPERS: tuple[str, ...] = ("state_dict_ema", "model_ema", "state_dict", "model", "module")
_PREFIXES: tuple[str, ...] = ("module.", "model.", "backbone.", "_orig_mod.")
_CLASSIFIERS: tuple[str, ...] = ("fc.", "classifier.", "head.", "head.fc.", "last_linear.")


class WeightsError(ValueError):
    """A weight file that cannot be mapped onto the backbone."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file (safetensors or torch pickle, loaded with ``weights_only=True``), unwrapped
    from ``{"state_dict": ...}``-style wrappers (module docstring); the reader of every local weight file
    (backbone weights, ``dermx explain --weights``). ``WeightsError`` when there is no state dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(loaded, Mapping) and not _is_state_dict(loaded):
        inner = next((loaded[k] for k in _WRAPPERS if k in loaded), None)
        if inner is None:
            raise WeightsError(f"{path}: no state dict found (keys {sorted(loaded)[:8]})")
        loaded = inner
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    return dict(loaded)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_state_dict(obj: Mapping[str, object]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key.removeprefix(prefix), True
    return key


def map_state_dict(source: Mapping[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors onto ``target``'s keys, by name, else by position and shape."""
    wanted = target.state_dict()
    stripped = {_strip(k): v for k, v in source.items()}
    stripped = {k: v for k, v in stripped.items() if k in wanted or not k.startswith(_CLASSIFIERS)}
    if set(wanted) <= set(stripped):
        extra = sorted(set(stripped) - set(wanted))
        if extra:
            raise WeightsError(f"weights are for a larger model: {len(extra)} unexpected key(s), e.g. {extra[:5]}")
        bad = [k for k in wanted if stripped[k].shape != wanted[k].shape]
        if bad:
            raise WeightsError(f"shape mismatch for {bad[:5]}: file {tuple(stripped[bad[0]].shape)}, "
                               f"model {tuple(wanted[bad[0]].shape)}")
        return {k: stripped[k] for k in wanted}
    # positional fallback: scalar buffers (batch-norm step counters) carry no weights
    ours = [k for k in wanted if wanted[k].ndim]
    theirs = [k for k in stripped if stripped[k].ndim]
    if len(ours) == len(theirs) and all(
        wanted[a].shape == stripped[b].shape for a, b in zip(ours, theirs, strict=True)
    ):
        warnings.warn("weight names differ from the backbone's; mapped by position and shape", stacklevel=3)
        return {a: stripped[b] for a, b in zip(ours, theirs, strict=True)}
    missing = sorted(set(wanted) - set(stripped))
    raise WeightsError(f"weights do not fit the backbone: {len(missing)} missing key(s), e.g. {missing[:5]}; "
                       f"{len(theirs)} tensors in the file vs {len(ours)} in the model")


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local weight file into ``backbone`` (see the module docstring for accepted formats)."""
    mapped = map_state_dict(read_state_dict(path), backbone)
    backbone.load_state_dict(mapped, strict=False)
    record_weight_source(backbone, {"source": "file", "file": Path(path).name, "sha256": sha256_of(path)})


def record_weight_source(backbone: nn.Module, source: dict[str, str]) -> None:
    """Set ``backbone.weight_source``, where its weights came from (see
    :func:`dermx.models.backbone.create_backbone`). A plain attribute: set as ``nn.Module.__setattr__``
    sets any value that is not a tensor or a module, which its type hints do not admit."""
    object.__setattr__(backbone, "weight_source", source)
