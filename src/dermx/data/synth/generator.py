"""Generate a synthetic DermXDB: plan the cohort, then draw, rate and write each image.

Randomness: the cohort comes from ``default_rng([seed, 1])``; image i is drawn with
``default_rng([seed, i, 0])`` and rated by rater r with ``default_rng([seed, i, pass, r])`` (pass 1
first, 2 repeat), so every image is independent of the others and of the number of workers.
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dermx import vocab
from dermx.choices import ProfileSet
from dermx.data.synth import writer
from dermx.data.synth.cohort import ImagePlan, plan_cohort
from dermx.data.synth.config import RaterModel, SynthConfig, SynthSummary
from dermx.data.synth.geometry import Lesion, lesion_mask
from dermx.data.synth.layouts import Layout, load_layouts
from dermx.data.synth.lesions import Canvas, paint
from dermx.data.synth.profiles import plan_lesions
from dermx.data.synth.raters import RaterTraits, rate
from dermx.data.synth.skin import finish, render_skin
from dermx.data.synth.watermark import stamp, watermark_box


@dataclass(frozen=True)
class _Job:
    out: Path
    config: SynthConfig
    layouts: tuple[Layout, ...]
    traits: dict[int, RaterTraits]


@dataclass(frozen=True)
class _Result:
    entry: dict[str, Any]
    instance_rows: list[list[str]]
    n_masks: int


def _draw(job: _Job, plan: ImagePlan, rng: np.random.Generator) -> tuple[list[Lesion], np.ndarray, Image.Image,
                                                                          tuple[int, int, int, int] | None]:
    """The lesions, their (16, H, W) ground truth and the rendered image of one planned image."""
    size = job.config.size
    layout = job.layouts[plan.layout].lesions if plan.layout is not None else None
    lesions = plan_lesions(rng, plan.diagnosis, size, job.config.profiles) if layout is None else list(layout)
    regions = [lesion_mask([lesion], *size) for lesion in lesions]
    truth = np.zeros((len(vocab.CHARACTERISTICS), *size), dtype=bool)
    for lesion, region in zip(lesions, regions, strict=True):
        truth[vocab.CHARACTERISTICS.index(lesion.characteristic)] |= region
    skin = render_skin(rng, size, plan.patient.skin_tone, hair=bool(rng.random() < job.config.hair_rate))
    angle = rng.uniform(0, 2 * np.pi)
    canvas = Canvas(skin.copy(), skin.reshape(-1, 3).mean(axis=0), np.array([np.cos(angle), np.sin(angle)]), rng)
    paint(canvas, lesions, regions)
    contrast = job.config.tone_contrast.get(plan.patient.skin_tone, 1.0)
    if contrast != 1.0:  # the skin-tone effect (SynthConfig): lesions fainter on this skin
        canvas.image = skin + np.float32(contrast) * (canvas.image - skin)
    image = Image.fromarray(np.round(finish(canvas.image, rng) * 255).astype(np.uint8), mode="RGB")
    box = watermark_box(rng, size) if plan.watermark else None
    if box is not None:
        image = stamp(image, box)
    return lesions, truth, image, box


def _render(job: _Job, plan: ImagePlan) -> _Result:
    """Draw, rate and write one image; return its manifest entry and instance-CSV rows."""
    config, out = job.config, job.out
    lesions, truth, image, box = _draw(job, plan, np.random.default_rng([config.seed, plan.index, 0]))
    image.save(out / writer.IMAGES_DIR / plan.current_filename, quality=config.jpeg_quality)
    writer.save_ground_truth(out / writer.GROUND_TRUTH_DIR / f"{plan.stem}.npz", truth)
    passes = [(1, "")] + ([(2, "2")] if plan.repeat else [])
    rows: list[list[str]] = []
    n_masks = 0
    diagnoses: dict[str, list[str]] = {}
    for pass_number, suffix in passes:
        for annotator in plan.annotators:
            rater = int(annotator.removeprefix("labeller"))
            rng = np.random.default_rng([config.seed, plan.index, pass_number, rater])
            draft = rate(rng, f"{annotator}{suffix}", lesions, plan.diagnosis, plan.patient, job.traits[rater],
                         config.raters, config.size)
            rows += writer.write_rating(out, draft, plan.stem, config.size)
            n_masks += len({o.characteristic for o in draft.outlines})
            diagnoses[draft.annotator] = list(draft.diagnoses)
    entry = {
        "stem": plan.stem, "diagnosis": plan.diagnosis, "patient_id": plan.patient_id,
        "skin_tone": plan.patient.skin_tone, "age": plan.patient.age, "sex": plan.patient.sex,
        "dataset": plan.dataset, "fold": plan.fold, "annotators": list(plan.annotators), "repeat": plan.repeat,
        "rater_diagnoses": diagnoses, "watermark": list(box) if box else None,
        "layout": job.layouts[plan.layout].stem if plan.layout is not None else None,
        "lesions": [{"characteristic": x.characteristic, "style": x.style,
                     "bbox": [round(v, 2) for v in x.bbox()]} for x in lesions],
    }
    return _Result(entry, rows, n_masks)


_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _render_in_worker(plan: ImagePlan) -> _Result:
    assert _WORKER_JOB is not None
    return _render(_WORKER_JOB, plan)


def _results(job: _Job, plans: list[ImagePlan], workers: int) -> Iterator[_Result]:
    """Render every plan, in order, in this process or in a pool of ``workers`` processes."""
    if workers <= 1:
        yield from (_render(job, plan) for plan in plans)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        yield from pool.imap(_render_in_worker, plans, chunksize=4)


def generate_from_config(config: SynthConfig, out: str | Path, *, workers: int = 1,
                         on_image: Callable[[int, int], None] | None = None) -> SynthSummary:
    """Write the synthetic dataset of ``config`` to ``out`` (emptied first if it holds a previous one).

    ``on_image(done, total)`` is called after each image (for progress bars).
    """
    out = Path(out)
    if (out / writer.MANIFEST).is_file():
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no synthetic dataset: refusing to overwrite")
    writer.make_dirs(out)
    layouts = tuple(load_layouts(config.layouts, config.size)) if config.layouts else ()
    plans = plan_cohort(config, [x.diagnosis for x in layouts] or None)
    traits = {r: RaterTraits.draw(config.seed, r, config.raters) for r in range(1, config.n_raters + 1)}
    job = _Job(out, config, layouts, traits)
    entries: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    n_masks = 0
    for done, result in enumerate(_results(job, plans, workers), start=1):
        entries.append(result.entry)
        rows += result.instance_rows
        n_masks += result.n_masks
        if on_image is not None:
            on_image(done, len(plans))
    writer.write_instance_csv(out, rows)
    writer.write_metadata(out, plans)
    writer.write_folds(out, plans, config.n_folds)
    writer.write_synth_manifest(out, {"generator": "dermx.data.synth", "format_version": 1,
                                "config": config.to_json(), "images": entries})
    n_repeat = sum(len(p.annotators) for p in plans if p.repeat)
    return SynthSummary(
        out=out, n_images=len(plans), n_ratings=sum(len(p.annotators) for p in plans),
        n_repeat_ratings=n_repeat, n_masks=n_masks, n_lesions=sum(len(e["lesions"]) for e in entries),
        n_watermarked=sum(e["watermark"] is not None for e in entries),
        diagnoses=Counter(p.diagnosis for p in plans),
        characteristics=Counter(x["characteristic"] for e in entries for x in e["lesions"]))


def generate(
    out: str | Path,
    *,
    n_images: int = 300,
    n_raters: int = 8,
    min_raters: int = 3,
    seed: int = 0,
    size: tuple[int, int] = (192, 256),
    shortcut: str | None = None,
    repeat_fraction: float = 0.1,
    jitter: float = RaterModel.jitter,
    miss_rate: float = RaterModel.miss_rate,
    raters: RaterModel | None = None,
    layouts: str | Path | None = None,
    tone_contrast: dict[str, float] | None = None,
    tone_probabilities: dict[str, float] | None = None,
    profiles: ProfileSet = "overlapping",
    workers: int = 1,
    progress: bool = True,
) -> SynthSummary:
    """Generate a synthetic DermXDB in ``out`` (see :mod:`dermx.data.synth.writer` for the layout).

    ``size`` is (height, width). ``jitter`` and ``miss_rate`` override those of ``raters`` (default
    :class:`RaterModel`). ``progress`` shows a rich progress bar. The output depends only on the
    arguments other than ``workers`` and ``progress``. ``tone_contrast`` and ``tone_probabilities``: the
    skin-tone effect of :class:`SynthConfig` (off by default). ``profiles``: which characteristics each class
    shows (:data:`~dermx.data.synth.profiles.PROFILE_SETS`).
    """
    model = replace(raters or RaterModel(), jitter=jitter, miss_rate=miss_rate)
    height, width = size
    config = SynthConfig(n_images=n_images, n_raters=n_raters, min_raters=min_raters, seed=seed,
                         size=(height, width), shortcut=shortcut, repeat_fraction=repeat_fraction, raters=model,
                         layouts=Path(layouts) if layouts else None, tone_contrast=dict(tone_contrast or {}),
                         tone_probabilities=tone_probabilities, profiles=profiles)
    if not progress:
        return generate_from_config(config, out, workers=workers)
    from dermx.progress import progress as shown

    with shown() as bar:
        task = bar.add_task("synthesising", total=n_images)
        return generate_from_config(config, out, workers=workers,
                                    on_image=lambda done, _total: bar.update(task, completed=done))
