"""Evaluation: rater agreement on DermXDB and the model-against-experts benchmark."""

from dermx.evaluate.agreement import (
    LocalizationTables,
    all_ordered_pairs,
    confusion_from_overlap,
    diagnosis_pairwise,
    diagnosis_vs_reference,
    identification_pairwise,
    localization_agreement,
    repeat_pairs,
)
from dermx.evaluate.interrater import AgreementResult, markdown_tables, rater_agreement, write_agreement

__all__ = [
    "AgreementResult",
    "LocalizationTables",
    "all_ordered_pairs",
    "confusion_from_overlap",
    "diagnosis_pairwise",
    "diagnosis_vs_reference",
    "identification_pairwise",
    "localization_agreement",
    "markdown_tables",
    "rater_agreement",
    "repeat_pairs",
    "write_agreement",
]
