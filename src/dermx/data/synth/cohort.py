"""Who is in the synthetic cohort: diagnoses, patients, demographics, raters and folds.

Classes are balanced (image i of a random permutation gets class i mod 6). Within a class, each image
after the first starts a new patient with probability 0.7 and otherwise belongs to the previous
image's patient (so about 30 % of images share a patient with another image). A patient has one
skin tone, age group, sex and source dataset. Folds are patient-grouped and class-stratified: within
each class, patients (largest first, ties in random order) go to the fold holding the fewest images of
that class, then the fewest images overall, then the lowest index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermx import vocab
from dermx.data.synth.config import SynthConfig
from dermx.data.synth.raters import Patient
from dermx.data.synth.skin import TONE_PROBABILITIES

#: P(age group) of a patient (DermXDB: adult 59 %, elderly 26 %, young 15 %).
AGE_PROBABILITIES: dict[str, float] = {"young": 0.2, "adult": 0.55, "elderly": 0.25}
DATASETS: tuple[str, ...] = ("Synthetic-A", "Synthetic-B")
NEW_PATIENT_RATE = 0.7


@dataclass(frozen=True)
class ImagePlan:
    """Everything decided about an image before it is drawn."""

    index: int
    stem: str
    diagnosis: str
    patient_id: int
    patient: Patient
    dataset: str
    annotators: tuple[str, ...]
    repeat: bool
    watermark: bool
    fold: int
    layout: int | None

    @property
    def current_filename(self) -> str:
        return f"{self.stem}.jpeg"

    @property
    def original_filename(self) -> str:
        return f"{self.stem}.jpg"


def _choice(rng: np.random.Generator, probabilities: dict[str, float]) -> str:
    return str(rng.choice(list(probabilities), p=list(probabilities.values())))


def assign_folds(rng: np.random.Generator, diagnoses: list[str], patients: list[int], n_folds: int) -> list[int]:
    """Fold of each image: patient-grouped, class-stratified (see the module docstring)."""
    per_class = np.zeros((len(vocab.DIAGNOSES), n_folds), dtype=int)
    totals = np.zeros(n_folds, dtype=int)
    members: dict[int, list[int]] = {}
    for i, patient in enumerate(patients):
        members.setdefault(patient, []).append(i)
    order = sorted(members, key=lambda p: (-len(members[p]), rng.random()))
    fold_of = [0] * len(patients)
    for patient in order:
        images = members[patient]
        c = vocab.DIAGNOSES.index(diagnoses[images[0]])
        fold = min(range(n_folds), key=lambda f: (per_class[c, f], totals[f], f))
        per_class[c, fold] += len(images)
        totals[fold] += len(images)
        for i in images:
            fold_of[i] = fold
    return fold_of


def plan_cohort(config: SynthConfig, layout_diagnoses: list[str] | None = None) -> list[ImagePlan]:
    """Plan all images; with layouts, image i takes layout π(i mod L) of a random permutation π of the
    L layouts, and its diagnosis."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.n_images
    if layout_diagnoses:
        order = rng.permutation(len(layout_diagnoses))
        layouts: list[int | None] = [int(order[i % len(order)]) for i in range(n)]
        diagnoses = [layout_diagnoses[k] for k in layouts if k is not None]
    else:
        layouts = [None] * n
        diagnoses = [vocab.DIAGNOSES[k % len(vocab.DIAGNOSES)] for k in rng.permutation(n)]
    patient_ids: list[int] = []
    last_of_class: dict[str, int] = {}
    for diagnosis in diagnoses:
        if diagnosis not in last_of_class or rng.random() < NEW_PATIENT_RATE:
            last_of_class[diagnosis] = max(patient_ids, default=-1) + 1
        patient_ids.append(last_of_class[diagnosis])
    shares = config.tone_probabilities
    tones = {t: w / sum(shares.values()) for t, w in shares.items()} if shares else TONE_PROBABILITIES
    people = {p: (Patient(_choice(rng, tones), _choice(rng, AGE_PROBABILITIES),
                          str(rng.choice(["female", "male"]))), str(rng.choice(DATASETS)))
              for p in dict.fromkeys(patient_ids)}
    folds = assign_folds(rng, diagnoses, patient_ids, config.n_folds)
    repeats = set(rng.choice(n, size=round(config.repeat_fraction * n), replace=False).tolist())
    plans = []
    for i, diagnosis in enumerate(diagnoses):
        k = int(rng.integers(config.min_raters, config.n_raters + 1))
        chosen = np.sort(rng.choice(np.arange(1, config.n_raters + 1), size=k, replace=False))
        rate = config.shortcut_rate[0] if diagnosis == config.shortcut else config.shortcut_rate[1]
        watermark = config.shortcut is not None and bool(rng.random() < rate)
        patient, dataset = people[patient_ids[i]]
        plans.append(ImagePlan(
            index=i, stem=f"synth_{i + 1:05d}", diagnosis=diagnosis, patient_id=patient_ids[i],
            patient=patient, dataset=dataset, annotators=tuple(f"labeller{r}" for r in chosen),
            repeat=i in repeats, watermark=watermark, fold=folds[i], layout=layouts[i]))
    return plans
