"""Explanation maps of a fold's test images: every target's CAM, one compressed file per fold.

``dermx cv`` writes ``<out>/fold_<k>/test_maps.npz`` (``numpy.savez_compressed``, no pickled objects)::

    stems                 (N,) str                 test images, in the order of the fold's predictions.csv
    diagnosis             (N, n_dx, h, w) float16  one map per diagnosis
    diagnosis_names       (n_dx,) str
    characteristic        (N, n_char, h, w) float16  one map per characteristic (not for dx-only models)
    characteristic_names  (n_char,) str               (not for dx-only models)
    method                () str                   CAM method (``gradcam``, ``gradcam++``, ...)
    size                  () str                   ``features``, ``input`` or ``HxW``: how (h, w) was chosen
    layer                 () str                   the CAM layer (the model config's ``cam_layer``)
    kind                  () str                   model kind (``dx-only``, ``dermx``, ``dermx+``)
    input_size            (2,) int                 model input (height, width)

Maps. With the activations A ∈ R^{K×h×w} of the CAM layer and the logit y_c of target c, Grad-CAM
(the default) is::

    α_kc = (1 / hw) Σ_ij ∂y_c / ∂A_kij,        M_c = ReLU(Σ_k α_kc A_k)

(other methods: :mod:`dermx.explain.methods`), then each map is min-max normalised,
M_c ← (M_c − min M_c) / (max M_c − min M_c + ε) with ε = 1e-7, so every map lies in [0, 1]. All targets
come from one forward pass per batch (:class:`~dermx.explain.CamEngine`). No map is zeroed: a
characteristic predicted absent keeps its map; its probability is in ``predictions.csv``.

Resolution. The default is the CAM feature grid (``size="features"``; 8×8 for the ``resnet50`` preset
at 256 px): upsampling adds no information, and the file stays small — before compression it holds
N·(n_dx + n_char)·h·w·2 bytes, 57 images × 22 targets × 8×8 ≈ 160 kB, against ≈ 164 MB at 256×256.
:meth:`FoldMaps.at_size` brings grid maps to the input size exactly as the engine does (bilinear with
half-pixel centres, then min-max again), so they equal the engine's ``size="input"`` maps up to float16
rounding. ``size="input"`` stores maps at the model input instead.

Precision. float16 keeps 11 significant bits: a value in [0, 1] is stored within 2⁻¹² ≈ 2.4e-4.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dermx.atomic import atomic_write

if TYPE_CHECKING:
    from dermx.compute.shards import Shards
    from dermx.explain.maps import MapSize
    from dermx.models import DermXNet
    from dermx.train.config import TrainConfig
    from dermx.train.datasets import ImageDataset

log = logging.getLogger(__name__)

#: Name of the maps file in each fold's run folder.
MAPS_FILE = "test_maps.npz"
#: ε of the engine's min-max normalisation, reused by :meth:`FoldMaps.at_size`.
EPS = 1e-7
_META = ("stems", "diagnosis", "diagnosis_names", "method", "size", "layer", "kind", "input_size")
_CHAR = ("characteristic", "characteristic_names")


class FoldMapsError(ValueError):
    """A maps file that cannot be read or whose arrays disagree; the message names the file."""


@dataclass(frozen=True, eq=False)
class FoldMaps:
    """Every target's map for the test images of one fold (see the module docstring).

    ``characteristic`` is ``(N, 0, h, w)`` and ``characteristic_names`` empty for a dx-only model.
    ``path`` is the file the maps were loaded from (``None`` for computed or resized maps).
    """

    stems: tuple[str, ...]
    diagnosis: np.ndarray
    diagnosis_names: tuple[str, ...]
    characteristic: np.ndarray
    characteristic_names: tuple[str, ...]
    method: str
    size: str
    layer: str
    kind: str
    input_size: tuple[int, int]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def grid(self) -> tuple[int, int]:
        """The stored map size ``(h, w)``."""
        return int(self.diagnosis.shape[-2]), int(self.diagnosis.shape[-1])

    def at_size(self, size: tuple[int, int] | None = None) -> FoldMaps:
        """Maps resized to ``size`` (default: the model input), float32: bilinear with half-pixel
        centres, then min-max again, the engine's own finishing step (:func:`dermx.explain.maps.finalize`)."""
        import torch

        from dermx.explain.maps import finalize

        target = (int(size[0]), int(size[1])) if size is not None else self.input_size

        def resized(maps: np.ndarray) -> np.ndarray:
            if maps.shape[1] == 0:
                return np.zeros((*maps.shape[:2], *target), dtype=np.float32)
            tensor = torch.from_numpy(maps.astype(np.float32))
            return finalize(tensor, target, relu=False, normalize=True, eps=EPS, interpolation="bilinear").numpy()

        return FoldMaps(self.stems, resized(self.diagnosis), self.diagnosis_names, resized(self.characteristic),
                        self.characteristic_names, self.method, f"{target[0]}x{target[1]}", self.layer, self.kind,
                        self.input_size, None)


def maps_method_name(method: str | None) -> str | None:
    """The canonical CAM method name (``"Grad-CAM++"`` → ``"gradcam++"``); ``None`` for ``None`` or
    ``"none"`` (maps disabled). ValueError listing the methods for an unknown name."""
    if method is None or method.strip().lower() == "none":
        return None
    from dermx.explain.methods import get_method

    return get_method(method).name


def _size_label(size: MapSize) -> str:
    return size if isinstance(size, str) else f"{int(size[0])}x{int(size[1])}"


def compute_fold_maps(model: DermXNet, dataset: ImageDataset, *, method: str = "gradcam",
                      size: MapSize = "features", batch_size: int = 32, progress: bool = False,
                      description: str = "test maps", indices: Sequence[int] | None = None) -> FoldMaps:
    """Maps of every characteristic and diagnosis for every image of ``dataset`` (or those at ``indices``),
    in its order.

    The model runs in eval mode on its own device, with ``model.config.cam_layer`` as the CAM layer;
    ``progress`` shows the progress over batches (:mod:`dermx.progress`).
    """
    import torch

    from dermx.explain import CamEngine
    from dermx.progress import track

    model.eval()
    engine = CamEngine(model, method, model.config.cam_layer, size=size)
    chosen = dataset if indices is None else torch.utils.data.Subset(dataset, list(indices))
    loader = torch.utils.data.DataLoader(chosen, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    stems: list[str] = []
    parts: dict[str, list[np.ndarray]] = {"characteristic": [], "diagnosis": []}
    names: dict[str, tuple[str, ...]] = {"characteristic": (), "diagnosis": ()}
    for batch in track(loader, description, total=len(loader), disable=not progress):
        result = engine(batch["image"].to(device))
        maps = result.maps.detach().cpu().to(torch.float16).numpy()
        for head in parts:
            columns = [i for i, t in enumerate(result.targets) if t.head == head]
            parts[head].append(maps[:, columns])
            names[head] = tuple(result.targets[i].name for i in columns)
        stems += [dataset.items[i].key for i in batch["index"].tolist()]
    grid = parts["diagnosis"][0].shape[-2:] if stems else (0, 0)
    arrays = {head: np.concatenate(chunks) if chunks else np.zeros((0, len(names[head]), *grid), np.float16)
              for head, chunks in parts.items()}
    config = model.config
    return FoldMaps(tuple(stems), arrays["diagnosis"], names["diagnosis"], arrays["characteristic"],
                    names["characteristic"], engine.method.name, _size_label(size), config.cam_layer, config.kind,
                    tuple(config.input_size))


def save_fold_maps(maps: FoldMaps, path: str | Path) -> Path:
    """Write ``maps`` to ``path`` as one compressed ``.npz`` (atomically: a temporary file renamed
    into place, so an interrupted run never leaves a partial file behind)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "stems": np.array(maps.stems, dtype=str),
        "diagnosis": maps.diagnosis.astype(np.float16),
        "diagnosis_names": np.array(maps.diagnosis_names, dtype=str),
        "method": np.array(maps.method), "size": np.array(maps.size), "layer": np.array(maps.layer),
        "kind": np.array(maps.kind), "input_size": np.array(maps.input_size, dtype=np.int64),
    }
    if maps.kind != "dx-only":
        arrays["characteristic"] = maps.characteristic.astype(np.float16)
        arrays["characteristic_names"] = np.array(maps.characteristic_names, dtype=str)
    with atomic_write(path) as handle:
        np.savez_compressed(handle, allow_pickle=False, **arrays)
    return path


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no maps file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise FoldMapsError(f"{path}: not a readable .npz maps file ({error})") from error


def _check(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """FoldMapsError naming ``path`` unless the arrays are complete and their shapes agree."""
    with_characteristics = any(name in arrays for name in _CHAR) or (
        "kind" in arrays and str(arrays["kind"]) != "dx-only")
    required = [*_META, *(_CHAR if with_characteristics else ())]
    missing = [name for name in required if name not in arrays]
    if missing:
        raise FoldMapsError(f"{path}: missing array(s) {', '.join(missing)}")
    n = len(arrays["stems"])
    if arrays["stems"].ndim != 1 or len(set(arrays["stems"].tolist())) != n:
        raise FoldMapsError(f"{path}: 'stems' must be a 1-D array of distinct names")
    grid = None
    for head in ("diagnosis", "characteristic"):
        if head not in arrays:
            continue
        maps, names = arrays[head], arrays[f"{head}_names"]
        expected = f"({n}, {len(names)}, h, w)"
        if maps.ndim != 4 or maps.shape[:2] != (n, len(names)):
            raise FoldMapsError(f"{path}: '{head}' has shape {maps.shape}, expected {expected} "
                                f"(stems × {head}_names × map)")
        if grid is not None and maps.shape[2:] != grid:
            raise FoldMapsError(f"{path}: 'characteristic' maps are {maps.shape[2:]}, 'diagnosis' maps {grid}")
        grid = maps.shape[2:]
    if arrays["input_size"].shape != (2,):
        raise FoldMapsError(f"{path}: 'input_size' must be (height, width), got shape {arrays['input_size'].shape}")


def load_fold_maps(path: str | Path) -> FoldMaps:
    """Read a maps file written by :func:`save_fold_maps` (``dermx cv``'s ``fold_<k>/test_maps.npz``).

    FileNotFoundError when the file is missing; :class:`FoldMapsError` (a ValueError) naming the file
    when it is unreadable, lacks an array, or its shapes disagree.
    """
    path = Path(path)
    arrays = _read(path)
    _check(path, arrays)
    n, grid = len(arrays["stems"]), arrays["diagnosis"].shape[2:]
    characteristic = arrays.get("characteristic", np.zeros((n, 0, *grid), dtype=np.float16))
    return FoldMaps(
        stems=tuple(arrays["stems"].tolist()),
        diagnosis=arrays["diagnosis"],
        diagnosis_names=tuple(arrays["diagnosis_names"].tolist()),
        characteristic=characteristic,
        characteristic_names=tuple(arrays.get("characteristic_names", np.array([], dtype=str)).tolist()),
        method=str(arrays["method"]), size=str(arrays["size"]), layer=str(arrays["layer"]), kind=str(arrays["kind"]),
        input_size=(int(arrays["input_size"][0]), int(arrays["input_size"][1])),
        path=path,
    )


def has_fold_maps(path: str | Path, method: str, size: MapSize) -> bool:
    """Whether ``path`` holds readable maps of ``method`` at ``size`` (what ``--resume`` keeps)."""
    try:
        maps = load_fold_maps(path)
    except FileNotFoundError:
        return False
    except FoldMapsError as error:
        log.warning("%s; computing the maps again", error)
        return False
    return maps.method == method and maps.size == _size_label(size)


def concat_fold_maps(parts: Sequence[FoldMaps]) -> FoldMaps:
    """The maps of ``parts`` (of one model, method and size) one after the other."""
    first = parts[0]
    return replace(first, stems=tuple(s for part in parts for s in part.stems),
                   diagnosis=np.concatenate([part.diagnosis for part in parts]),
                   characteristic=np.concatenate([part.characteristic for part in parts]), path=None)


def write_test_maps(config: TrainConfig, checkpoint_dir: str | Path, *, method: str = "gradcam",
                    size: MapSize = "features", shards: Shards | None = None) -> Path:
    """Maps of the test part of ``config``'s fold from the checkpoint in ``checkpoint_dir``, written to
    ``<config.run.out>/test_maps.npz``. The test images are those of the run's data module (as in
    :func:`~dermx.train.predict_frame`); the model runs on the device of ``config.run.accelerator``
    (:class:`~dermx.compute.Compute`: ``auto`` an accelerator when there is one, ``gpu`` read as ``cuda``, an
    accelerator maps cannot use, such as ``tpu``, as ``cpu``), each process on its own. ``shards``: the
    processes that trained the fold (:meth:`Shards.joined <dermx.compute.shards.Shards.joined>`): each
    computes its share of the batches, and the main one writes the file (the path is returned to all)."""
    from dermx.compute import Compute
    from dermx.compute.shards import Shards
    from dermx.models import load_checkpoint
    from dermx.progress import track
    from dermx.train.datamodule import DermXDataModule

    shards = shards or Shards()
    model = load_checkpoint(checkpoint_dir)
    device = {"gpu": "cuda"}.get(config.run.accelerator, config.run.accelerator)
    local_rank = shards.compute.local_rank
    Compute(device if device in ("auto", "cpu", "cuda", "mps") else "cpu", local_rank=local_rank).place(model)
    data = DermXDataModule(config, model.config)
    data.setup()
    test = data.dataset("test", augment=False)
    fold = "" if config.dataset.fold is None else f"fold {config.dataset.fold}: "
    batch = config.optim.batch_size
    units = [range(i, min(i + batch, len(test))) for i in range(0, len(test), batch)]
    parts = shards.map("fold-maps", units, lambda unit: compute_fold_maps(
        model, test, method=method, size=size, batch_size=batch, indices=unit), key=(
        str(checkpoint_dir), Path(checkpoint_dir).stat().st_mtime, method, str(size), [t.key for t in test.items]),
        progress=(lambda it, label, total: track(it, label, total, disable=not (config.run.progress and
                                                                                 shards.is_main))),
        description=f"{fold}{method} maps")
    path = Path(config.run.out) / MAPS_FILE
    if shards.is_main:
        save_fold_maps(concat_fold_maps(parts) if parts else compute_fold_maps(
            model, test, method=method, size=size, batch_size=batch), path)
    shards.finish()
    return path
