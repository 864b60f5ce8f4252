"""The text of a rater-agreement folder (``dermx interrater``): its tables as Markdown (``tables.md``,
printed by the command and rendered by ``dermx report``), from its ``summary.json``
(layout in :mod:`dermx.evaluate.agreement.interrater`)."""

from __future__ import annotations

from typing import Any

from dermx import vocab

#: The localization scores of an agreement table, in column order.
LOCALIZATION_SCORES: tuple[str, ...] = ("sensitivity", "specificity", "dice", "iou")

#: What a "–" cell means in :func:`markdown_tables`.
UNDEFINED_NOTE = ("– marks an undefined value: F1 and kappa where no pair has a positive answer (no rater marked "
                  "the finding on those images), a standard deviation over a single pair.")


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"  # None (SD of one pair) and NaN: –


def _block_markdown(block: dict[str, Any], title: str) -> list[str]:
    """Diagnosis, identification (characteristics, then tags) and localization tables of one block."""
    lines = ["", f"| diagnosis, {title} | rater pairs | F1 | kappa |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['pairs']} | {_fmt(v['f1'])} | {_fmt(v['kappa'])} |"
              for k, v in block["diagnosis"]["pairwise"].items()]
    for group, names in (("characteristic", vocab.CHARACTERISTICS), ("tag (not outlined)", vocab.TAGS)):
        rows = {k: v for k, v in block["identification"].items() if k in names}
        if rows:
            lines += ["", f"| {group}: identification, {title} | rater pairs | F1 | kappa |", "|---|---:|---:|---:|"]
            lines += [f"| {k} | {v['pairs']} | {_fmt(v['f1'])} | {_fmt(v['kappa'])} |" for k, v in rows.items()]
    for name, key in (("", "localization"), (", leave-one-rater-out", "leave_one_out")):
        if key not in block:
            continue
        lines += ["", f"| localization, {title}{name} | rater pairs | sensitivity | specificity | Dice | IoU |",
                  "|---|---:|---:|---:|---:|---:|"]
        rows = {**block[key]["per_characteristic"], "**overall**": block[key]["overall"]}
        for label, v in rows.items():
            cells = " | ".join(f"{_fmt(v[s])} ± {_fmt(v['sd'][s])}" for s in LOCALIZATION_SCORES)
            lines.append(f"| {label} | {v['pairs']} | {cells} |")
    return lines


def markdown_tables(summary: dict[str, Any]) -> str:
    """The tables as Markdown: diagnosis, identification (the 16 characteristics apart from the tags such
    as "Female" or "Dark skin") and localization, between raters (pairwise and leave-one-rater-out),
    then the same for the repeat pass (each rater against their own earlier answer) when computed."""
    lines = [f"Raters: {', '.join(summary['raters'])}; images: {summary['images']}; size: {summary['size']}",
             "", summary["note"], "", UNDEFINED_NOTE, ""]
    ref = summary["diagnosis"]["rater_vs_reference"]["macro_f1"]
    lines += [f"**Diagnosis, rater vs reference**: macro F1 {_fmt(ref['mean'])} ± {_fmt(ref['sd'])} "
              f"over {ref['n']} raters"]
    lines += _block_markdown(summary, "between raters")
    intra = summary.get("intra_rater")
    if intra is not None and not intra["pairs"]:
        lines += ["", "**Intra-rater (repeat pass)**: no repeat-pass ratings among these raters."]
    elif intra:
        raters, images = len(intra["pairs"]), intra["images"]
        lines += ["", f"**Intra-rater (repeat pass)**: {raters} rater{'s' * (raters != 1)}, each against their "
                      f"own first answer, on {images} image{'s' * (images != 1)} rated twice."]
        lines += _block_markdown(intra, "repeat pass")
    return "\n".join(lines)
