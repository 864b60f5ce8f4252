"""Named explanation targets: which output of which head a map explains.

A model returns either one logit tensor ``(B, n)`` (a plain classifier, one unnamed head) or an ordered
``dict[str, Tensor]`` of heads (a multi-head DermX network, whose ``target_names`` attribute names each
head's outputs). :class:`OutputLayout` flattens either into one ``(B, N)`` logit matrix, so that every
target is one column of it, and resolves target specifications into :class:`Target` objects:

- an ``int``: a column of the flattened logits (for a plain classifier, the class index);
- a ``str``: an output name, unique over all heads (``"Psoriasis"``), or a head name meaning all of that
  head's outputs (``"diagnosis"``);
- a ``(head, name_or_index)`` pair: ``("characteristic", "Plaque")`` or ``("diagnosis", 2)``.

An index may be any integer type (``numpy.int64``, ...) or a float with an integer value (``1.0``, as
labels read from a table often are); other floats and booleans are refused with a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from torch import Tensor

#: One target specification, as accepted by :meth:`OutputLayout.resolve`.
TargetSpec = int | str | tuple[str, int | str]


@dataclass(frozen=True)
class Target:
    """One explained output: ``column`` of the flattened logits, ``index`` within its ``head``."""

    head: str | None
    index: int
    name: str
    column: int

    @property
    def label(self) -> str:
        """``"head:name"`` for a multi-head model, ``"name"`` for a plain classifier."""
        return self.name if self.head is None else f"{self.head}:{self.name}"


@dataclass(frozen=True)
class OutputLayout:
    """The heads of a model's output, in order, with the names of their outputs."""

    heads: tuple[tuple[str | None, tuple[str, ...]], ...]

    @classmethod
    def of(
        cls,
        outputs: Tensor | Mapping[str, Tensor],
        target_names: Mapping[str, Sequence[str]] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> OutputLayout:
        """Layout of ``outputs``; names come from ``target_names`` (multi-head) or ``class_names``."""
        if isinstance(outputs, Tensor):
            return cls(((None, _names(None, _width(None, outputs), class_names)),))
        if not isinstance(outputs, Mapping) or not outputs:
            raise ValueError(f"the model must return a logit tensor or a dict of them, got {type(outputs)}")
        names = target_names or {}
        return cls(tuple((head, _names(head, _width(head, out), names.get(head))) for head, out in outputs.items()))

    @property
    def width(self) -> int:
        """Number of columns of the flattened logits."""
        return sum(len(names) for _, names in self.heads)

    def flatten(self, outputs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """``(B, N)`` logits: the tensor itself, or the heads concatenated in order."""
        return outputs if isinstance(outputs, Tensor) else torch.cat(list(outputs.values()), dim=1)

    def all_targets(self) -> tuple[Target, ...]:
        """Every output of every head, in column order."""
        targets: list[Target] = []
        for head, names in self.heads:
            targets.extend(Target(head, i, name, len(targets)) for i, name in enumerate(names))
        return tuple(targets)

    def resolve(self, specs: Sequence[TargetSpec] | TargetSpec | None) -> tuple[Target, ...]:
        """Targets named by ``specs`` (``None``: every output of every head); ValueError if unknown."""
        everything = self.all_targets()
        if specs is None:
            return everything
        if isinstance(specs, str | tuple | Real) or not isinstance(specs, Iterable):
            specs = [specs]
        resolved: list[Target] = []
        for spec in specs:
            resolved.extend(self._resolve_one(spec, everything))
        if not resolved:
            raise ValueError("no targets given: pass None for every output, or at least one target")
        return tuple(resolved)

    def _resolve_one(self, spec: TargetSpec, everything: tuple[Target, ...]) -> tuple[Target, ...]:
        index = _as_index(spec)
        if index is not None:
            if not -len(everything) <= index < len(everything):
                raise ValueError(f"target index {spec} is out of range for {len(everything)} outputs")
            return (everything[index],)
        if isinstance(spec, str):
            matches = tuple(t for t in everything if t.name == spec)
            if len(matches) == 1:
                return matches
            if len(matches) > 1:
                heads = ", ".join(str(t.head) for t in matches)
                raise ValueError(f"target name {spec!r} is ambiguous (heads {heads}): pass (head, name)")
            by_head = tuple(t for t in everything if t.head is not None and t.head == spec)
            if by_head:
                return by_head
            raise ValueError(f"unknown target {spec!r}; known targets: {[t.label for t in everything]}")
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
            head, key = spec
            in_head = tuple(t for t in everything if t.head == head)
            if not in_head:
                raise ValueError(f"unknown head {head!r}; heads: {[h for h, _ in self.heads]}")
            position = _as_index(key)
            found = [t for t in in_head if (t.index == position if position is not None else t.name == key)]
            if not found:
                raise ValueError(f"unknown target {key!r} in head {head!r}; known: {[t.name for t in in_head]}")
            return (found[0],)
        if isinstance(spec, Real) and not isinstance(spec, bool):
            raise ValueError(f"target {spec!r} is not an integer index")
        raise ValueError(f"target {spec!r} is not an index, a name or a (head, name) pair")


def _as_index(spec: object) -> int | None:
    """``spec`` as an integer index (any integer type, or a float with an integer value), else ``None``."""
    if isinstance(spec, bool):
        return None
    if isinstance(spec, Integral):
        return int(spec)
    if isinstance(spec, Real):
        value = float(spec)
        return int(value) if value.is_integer() else None
    return None


def _width(head: str | None, logits: object) -> int:
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        where = "the model output" if head is None else f"head {head!r}"
        raise ValueError(f"{where} must be a (batch, outputs) logit tensor, got {shape}")
    return logits.shape[1]


def _names(head: str | None, width: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return tuple(str(i) for i in range(width))
    if len(names) != width:
        where = "the model output" if head is None else f"head {head!r}"
        raise ValueError(f"{where} has {width} outputs but {len(names)} names")
    return tuple(names)


def target_probabilities(logits: Tensor | Mapping[str, Tensor], targets: Sequence[Target]) -> Tensor:
    """``(B, T)`` probability of each target: sigmoid for the multi-label ``characteristic`` head, softmax
    over its head for any other head (a plain classifier's one head included)."""
    columns = []
    for target in targets:
        head = logits if isinstance(logits, Tensor) else logits[target.head or ""]
        head = head.float()
        decoded = head.sigmoid() if target.head == "characteristic" else head.softmax(dim=1)
        columns.append(decoded[:, target.index])
    return torch.stack(columns, dim=1)
