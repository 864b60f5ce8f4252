"""ReferenceMaps: the one provider of the experts' reference maps for training and the benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dermx import vocab
from dermx.data import DRAWN_CHANNELS, REFERENCE_CHANNELS, DermXDB, ReferenceMaps, fuse, load_dermxdb, resize_mask
from dermx.data.synth import generate, load_ground_truth, watermark_mask

SIZE = (40, 52)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> DermXDB:
    out = tmp_path_factory.mktemp("synth") / "db"
    generate(out, n_images=10, seed=4, size=SIZE, shortcut="Psoriasis", progress=False, repeat_fraction=0.0)
    return load_dermxdb(out, check_mask_sizes=False)


def test_fused_channels_are_the_training_targets(synth: DermXDB) -> None:
    stem = synth.stems()[0]
    chars = vocab.PAPER_CHARACTERISTICS
    maps = ReferenceMaps(synth, "relative", chars)
    assert maps.names == chars
    torch.testing.assert_close(maps(stem, (24, 32)), synth.fused_maps(stem, "relative", size=(24, 32),
                                                                      characteristics=chars))


def test_benchmark_channels_of_a_synthetic_image(synth: DermXDB) -> None:
    references = ReferenceMaps.for_benchmark(synth)
    assert references.names == REFERENCE_CHANNELS + DRAWN_CHANNELS
    marked = [s for s in synth.stems() if watermark_mask(synth.root, s).any()]
    assert marked
    for stem, size in ((marked[0], (20, 26)), (marked[0], None), (synth.stems()[-1], (20, 26))):
        maps = references(stem, size)
        grid = size or SIZE
        assert maps.shape == (len(references.names), *grid) and maps.dtype == torch.float32
        n = len(vocab.CHARACTERISTICS)
        stack = synth.rater_stack(stem, size=size)
        torch.testing.assert_close(maps[:n], fuse(stack))
        torch.testing.assert_close(maps[n], synth.union_map(stem, size=size))
        assert torch.equal(maps[n + 1].bool(), stack.any(dim=(0, 1)))
        mark = resize_mask(watermark_mask(synth.root, stem).numpy(), size)
        assert torch.equal(maps[n + 2].bool(), torch.from_numpy(np.ascontiguousarray(mark)))
        truth = np.stack([resize_mask(m, size) for m in load_ground_truth(synth.root, stem).numpy()])
        assert torch.equal(maps[n + 3:].bool(), torch.from_numpy(truth))


def test_a_release_without_synth_files_has_empty_watermarks_and_no_drawn_channels(synth: DermXDB,
                                                                                  tmp_path: Path) -> None:
    root = tmp_path / "release"
    shutil.copytree(synth.root, root, ignore=shutil.ignore_patterns("ground_truth", "synth.json", "images"))
    db = load_dermxdb(root, check_mask_sizes=False)
    references = ReferenceMaps.for_benchmark(db)
    assert references.names == REFERENCE_CHANNELS and references.drawn is None and not references.watermarks
    maps = references(db.stems()[0], (20, 26))
    assert maps.shape == (len(REFERENCE_CHANNELS), 20, 26) and not maps[-1].any()


def test_inconsistent_choices_are_refused(synth: DermXDB) -> None:
    with pytest.raises(ValueError, match="16 characteristics"):
        ReferenceMaps(synth, characteristics=vocab.PAPER_CHARACTERISTICS, channels="benchmark")
    with pytest.raises(ValueError, match="benchmark channels"):
        ReferenceMaps(synth, drawn=synth.root)
    with pytest.raises(ValueError, match="channels must be"):
        ReferenceMaps(synth, channels="all")  # type: ignore[arg-type]
