"""Evaluation: rater agreement on DermXDB and the model-against-experts benchmark."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            (
                "LocalizationTables",
                "all_ordered_pairs",
                "confusion_from_overlap",
                "diagnosis_pairwise",
                "diagnosis_vs_reference",
                "identification_pairwise",
                "localization_agreement",
                "repeat_pairs",
            ),
            ".agreement",
        ),
        **dict.fromkeys(("AgreementResult", "markdown_tables", "rater_agreement", "write_agreement"), ".interrater"),
        **dict.fromkeys(("BenchmarkConfig", "BenchmarkResult"), ".bench_types"),
        **dict.fromkeys(("CamExplainer", "Candidate", "find_checkpoints", "load_candidates"), ".candidates"),
        **dict.fromkeys(("run_benchmark", "write_benchmark"), ".benchmark"),
    },
)
