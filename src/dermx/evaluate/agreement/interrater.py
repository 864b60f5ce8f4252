"""The rater-agreement benchmark: run every table of :mod:`dermx.evaluate.agreement`, summarise,
and write CSV tables, ``summary.json``, Markdown tables and a figure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dermx import vocab
from dermx.data.dataset import DermXDB
from dermx.data.masks import Size
from dermx.evaluate.agreement.tables import (
    LOCALIZATION_SCORES,
    NO_DIAGNOSIS,
    Pair,
    all_ordered_pairs,
    diagnosis_pairwise,
    diagnosis_vs_reference,
    identification_pairwise,
    localization_agreement,
    repeat_pairs,
)
from dermx.metrics import summarize
from dermx.runs.interrater import markdown_tables
from dermx.runs.summary import write_summary

NOTE = (f"Rater diagnosis = the first diagnosis tag of the file; files without one count as wrong "
        f"('{NO_DIAGNOSIS}'). Pairs are ordered (a, b), a != b, with b as the reference.")


@dataclass(frozen=True)
class AgreementResult:
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]


INTER_LABEL = "inter-rater: scoring rater masks"
INTRA_LABEL = "intra-rater (repeat pass): scoring rater masks"


def _stat(values: pd.Series) -> dict[str, float | int]:
    s = summarize(values.to_numpy(dtype=float, copy=True))
    return {"mean": s.mean, "sd": s.sd, "n": s.n, "undefined": s.n_undefined}


def _per_key(table: pd.DataFrame, key: str, scores: Sequence[str], order: Sequence[str]) -> dict[str, Any]:
    """Mean of each score per key value (vocabulary order), with pair counts, SDs and undefined counts."""
    out: dict[str, Any] = {}
    for name in order:
        rows = table[table[key] == name]
        if rows.empty:
            continue
        stats = {score: _stat(rows[score]) for score in scores}
        out[name] = {"pairs": len(rows), **{s: v["mean"] for s, v in stats.items()},
                     "sd": {s: v["sd"] for s, v in stats.items()},
                     "undefined": {s: v["undefined"] for s, v in stats.items()}}
    return out


def _localization_summary(table: pd.DataFrame, characteristics: Sequence[str]) -> dict[str, Any]:
    overall = {score: _stat(table[score]) for score in LOCALIZATION_SCORES}
    return {
        "per_characteristic": _per_key(table, "characteristic", LOCALIZATION_SCORES, characteristics),
        "overall": {"pairs": len(table), **{s: v["mean"] for s, v in overall.items()},
                    "sd": {s: v["sd"] for s, v in overall.items()},
                    "undefined": {s: v["undefined"] for s, v in overall.items()}},
    }


def _agreement_block(db: DermXDB, stems: Sequence[str], pairs: Sequence[Pair], size: Size | None,
                     characteristics: Sequence[str], leave_one_out: bool,
                     progress: Callable[[Iterable[str]], Iterable[str]]
                     ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    diag = diagnosis_pairwise(db, stems, pairs)
    ident = identification_pairwise(db, stems, pairs)
    loc = localization_agreement(db, stems, pairs, characteristics=characteristics, size=size,
                                 leave_one_out=leave_one_out, progress=progress)
    block = {
        "diagnosis": {"pairwise": _per_key(diag, "class", ("f1", "kappa"), vocab.RATER_DIAGNOSES)},
        "identification": _per_key(ident, "characteristic", ("f1", "kappa"), (*vocab.CHARACTERISTICS, *vocab.TAGS)),
        "localization": _localization_summary(loc.pairs, characteristics),
    }
    tables = {"diagnosis_pairwise": diag, "identification_pairwise": ident, "localization_pairs": loc.pairs}
    if leave_one_out:
        block["leave_one_out"] = _localization_summary(loc.leave_one_out, characteristics)
        tables["localization_leave_one_out"] = loc.leave_one_out
    return block, tables


def rater_agreement(
    db: DermXDB,
    *,
    annotators: Sequence[str] | None = None,
    stems: Sequence[str] | None = None,
    size: Size | None = None,
    characteristics: Sequence[str] = vocab.CHARACTERISTICS,
    intra: bool = True,
    progress: Callable[[Iterable[str], str], Iterable[str]] = lambda stems, _label: stems,
) -> AgreementResult:
    """Inter-rater (and, with ``intra``, repeat-pass) agreement on a rater subset.

    Defaults: the first-pass raters, on the images with metadata, at native resolution.
    ``progress(stems, label)`` wraps each pass over the images; ``label`` names the pass
    (:data:`INTER_LABEL`, :data:`INTRA_LABEL`).
    """
    chosen = list(annotators) if annotators is not None else db.annotators()
    images = list(stems) if stems is not None else db.stems()
    vs_reference = diagnosis_vs_reference(db, images, chosen)
    block, tables = _agreement_block(db, images, all_ordered_pairs(chosen), size, characteristics, True,
                                     lambda stems: progress(stems, INTER_LABEL))
    summary: dict[str, Any] = {
        "raters": chosen,
        "images": len(images),
        "size": list(size) if size else "native",
        "note": NOTE,
        **block,
    }
    summary["diagnosis"]["rater_vs_reference"] = {
        "macro_f1": _stat(vs_reference["macro_f1"]),
        "per_rater": vs_reference.set_index("rater")["macro_f1"].to_dict(),
        "no_diagnosis_files": int(vs_reference["no_diagnosis"].sum()),
    }
    tables["diagnosis_vs_reference"] = vs_reference
    if intra:
        pairs = [p for p in repeat_pairs(db) if p[1] in chosen]
        repeat_stems = sorted({r.stem for r in db.ratings if r.annotator in {a for a, _ in pairs}} & set(images))
        intra_block, intra_tables = _agreement_block(db, repeat_stems, pairs, size, characteristics, False,
                                                     lambda stems: progress(stems, INTRA_LABEL))
        summary["intra_rater"] = {"pairs": [list(p) for p in pairs], "images": len(repeat_stems), **intra_block}
        tables.update({f"intra_{k}": v for k, v in intra_tables.items()})
    return AgreementResult(summary, tables)


def localization_figure(summary: dict[str, Any], path: Path) -> Path:
    """Per-characteristic bars of localization sensitivity, specificity and Dice (± SD), pairwise."""
    from dermx.plotting import pyplot

    plt = pyplot()
    import numpy as np

    per = summary["localization"]["per_characteristic"]
    names = list(per)
    scores = ("sensitivity", "specificity", "dice")
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 4.6), layout="constrained")
    for i, score in enumerate(scores):
        means = [per[n][score] for n in names]
        sds = [per[n]["sd"][score] for n in names]
        m, sd = np.nan_to_num(means), np.nan_to_num(sds)
        # whiskers stop at the scores' bounds (0 and 1): mean ± SD, clipped to [0, 1]
        whiskers = np.stack([np.minimum(sd, m), np.minimum(sd, 1 - m)])
        ax.bar(x + (i - 1) * 0.27, means, 0.27, yerr=whiskers, capsize=2, label=score)
    ax.set_xticks(x, [f"{n}\n({per[n]['pairs']} rater pairs)" for n in names], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fuzzy score, mean ± SD over rater pairs\n(SD whiskers clipped to [0, 1])")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncol=3, fontsize=8, frameon=False,
               title=f"Localization agreement between raters ({summary['images']} images)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_agreement(result: AgreementResult, out: Path) -> list[Path]:
    """Write ``summary.json``, one CSV per table, ``tables.md`` and ``localization.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_summary(out, result.summary, "interrater")]
    for name, table in result.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    (out / "tables.md").write_text(markdown_tables(result.summary) + "\n")
    written += [out / "tables.md", localization_figure(result.summary, out / "localization.png")]
    return written
