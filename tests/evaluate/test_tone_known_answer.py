"""A known answer for trust per skin tone: the synthetic generator fades lesions on dark skin
(``tone_contrast``), and a stand-in model that can only name what it sees loses dark skin, only then.

The stand-in (:func:`reader`) measures how visible the lesions are (the spread of the pixels' distance
to the image's median colour) and gives the true class a logit that grows with it: a diagnosis that
rests on seeing the lesion, as a CNN's does. Nothing about skin tone is coded in it. On the same data
drawn with and without the effect (same seed, same patients and raters), the report's verdict must name
a dark-skin accuracy gap on the first and no diagnosis gap on the second; and with a calibration fitted
on held-out patients, the marginal diagnosis sets must under-cover dark skin where the Mondrian ones
(a threshold per skin tone) restore the promised coverage (design notes, "Trust per skin tone")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from dermx import vocab
from dermx.data import DermXDB, load_dermxdb
from dermx.data.synth.generator import generate
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.run import run_benchmark
from dermx.evaluate.candidates import Candidate, Explanation
from dermx.report.verdict import group_gaps
from dermx.trust.fitted import fit_model_calibration
from report.oracle import GRID, SPEC, N

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

ALPHA = 0.1
#: Visibility at which the stand-in is half sure, how sharply it turns, and the spread of its logit noise.
#: Measured on these 240 images: without the effect the 5th percentile of visibility is 0.12 (light),
#: 0.11 (medium), 0.06 (dark), the medians 0.16–0.20; with it, dark skin's median is 0.06 and its 98th
#: percentile 0.10. On all 240 images the stand-in is then right on 94 / 93 / 92 % of light / medium /
#: dark images without the effect, and on 65 % of dark ones with it.
MIDPOINT, SHARPNESS, NOISE = 0.06, 0.004, 2.0


def visibility(image: torch.Tensor) -> torch.Tensor:
    """``(B,)``: on the de-normalised photograph (the black letterbox padding cropped), averaged over 4 × 4
    blocks (the skin's pixel noise averages out, lesions stay), the largest mean absolute distance of a
    block's colour to the median block colour."""
    mean, std = torch.tensor(SPEC.mean)[:, None, None], torch.tensor(SPEC.std)[:, None, None]
    out = []
    for x in image * std + mean:
        rows, cols = torch.nonzero(x.amax(dim=0) > 1e-3, as_tuple=True)
        photo = x[:, int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
        blocks = torch.nn.functional.avg_pool2d(photo[None], 4)[0].flatten(1)
        out.append((blocks - blocks.median(dim=1, keepdim=True).values).abs().mean(dim=0).max())
    return torch.stack(out)


def reader_logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Noise (fixed per image, SD ``NOISE``) plus ``6 · σ((visibility − MIDPOINT) / SHARPNESS)`` on the true
    class."""
    noise = NOISE * torch.stack([torch.randn(6, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
                                 for i in batch["index"].tolist()])
    sure = torch.sigmoid((visibility(batch["image"]).double() - MIDPOINT) / SHARPNESS)
    return noise + 6.0 * sure[:, None] * torch.nn.functional.one_hot(batch["diagnosis"], 6).double()


def reader(batch: dict[str, torch.Tensor]) -> Explanation:
    logits = reader_logits(batch)
    maps = batch["maps"]
    return Explanation(logits.softmax(dim=1).float(), batch["characteristics"].float(), maps[:, :N],
                       maps[:, N:N + 1], logits.float())


def _data(root: Path, effect: bool) -> DermXDB:
    generate(root, n_images=240, size=(48, 56), seed=3, progress=False, repeat_fraction=0.0, n_raters=3,
             tone_contrast={"dark": 0.0} if effect else None,
             tone_probabilities={"light": 0.35, "medium": 0.3, "dark": 0.35})
    return load_dermxdb(root, image_dir=root / "images", check_mask_sizes=False)


def _run(root: Path, effect: bool) -> BenchmarkResult:
    """Half the patients calibrate the stand-in (its logits there, skin tone groups), the other half are
    the benchmark's test images."""
    db = _data(root, effect)
    stems = db.stems()
    patients = sorted({str(db.images[s].patient) for s in stems})
    validation = [s for s in stems if patients.index(str(db.images[s].patient)) % 2 == 0]
    test = [s for s in stems if s not in set(validation)]
    probe = Candidate.stand_in("reader", reader, validation, SPEC, GRID)
    logits, labels = [], []
    for _, batch in probe.batches(db, validation, batch_size=64):
        logits.append(reader_logits(batch))
        labels.append(batch["diagnosis"])
    tones = [str(db.images[s].skin_tone) for s in validation]
    calibration = fit_model_calibration(torch.cat(logits), torch.cat(labels), tones,
                                        patients=[str(db.images[s].patient) for s in validation], alpha=ALPHA)
    assert calibration.group_counts["dark"] >= 1 / ALPHA - 1  # enough dark validation images for a threshold
    candidate = Candidate.stand_in("reader", reader, test, SPEC, GRID, calibration=calibration)
    config = BenchmarkConfig(n_boot=300, batch_size=64, agreement=False, shortcut_test=False, examples=False)
    return run_benchmark(db, [candidate], config)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, BenchmarkResult]:
    return {effect: _run(tmp_path_factory.mktemp(f"effect-{effect}"), effect) for effect in (False, True)}


def _diagnosis_gaps(summary: dict[str, Any]) -> list[str]:
    return [s for s in group_gaps(summary) if "diagnos" in s.lower() or "accuracy" in s.lower()]


def test_the_gap_flag_fires_with_the_effect_and_not_without(runs: dict[bool, BenchmarkResult]) -> None:
    with_effect, without = runs[True].summary, runs[False].summary
    dark = with_effect["groups"]["models"]["reader"]["groups"]["dark"]
    assert dark["gap"]["accuracy"]["high"] < 0, dark["gap"]["accuracy"]
    assert any("dark" in sentence for sentence in _diagnosis_gaps(with_effect)), group_gaps(with_effect)
    assert _diagnosis_gaps(without) == [], group_gaps(without)
    plain = without["groups"]["models"]["reader"]["groups"]["dark"]
    assert plain["accuracy"]["mean"] > dark["accuracy"]["mean"] + 0.15


def test_mondrian_sets_restore_coverage_where_marginal_sets_do_not(runs: dict[bool, BenchmarkResult]) -> None:
    """On the 40 dark-skin test images (when written): marginal sets cover 0.75 [0.60, 0.86] with 1.25
    classes on average, Mondrian sets 0.90 [0.77, 0.96] with 2.98."""
    sets = runs[True].summary["conformal"]["reader"]
    marginal, mondrian = sets["marginal"]["groups"]["dark"], sets["mondrian"]["groups"]["dark"]
    assert marginal["coverage"]["high"] < 1 - ALPHA, marginal["coverage"]  # under-covers, beyond its CI
    assert mondrian["coverage"]["mean"] >= 1 - ALPHA - 0.02, mondrian["coverage"]
    assert mondrian["coverage"]["high"] >= 1 - ALPHA
    assert sets["marginal"]["worst_group"] == "dark"
    assert "dark" not in sets["mondrian"]["fallback"]
    assert mondrian["mean_size"]["mean"] < len(vocab.DIAGNOSES)  # not every class: a threshold of its own
