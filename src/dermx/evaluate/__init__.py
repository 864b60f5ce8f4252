"""Evaluation: how much the experts agree, the models against them, and which explanation to trust.

Sub-packages by job: :mod:`~dermx.evaluate.agreement` (rater agreement, ``dermx interrater``),
:mod:`~dermx.evaluate.benchmark` (models' diagnoses, characteristics and maps against the experts)
and :mod:`~dermx.evaluate.leaderboard` (every CAM method on every model). Shared by the last two:
:mod:`~dermx.evaluate.candidates` (the model under test), :mod:`~dermx.evaluate.eval_sets` (its test
images), :mod:`~dermx.evaluate.image_groups` (each image's group: skin tone, or a groups file's
attribute) and :mod:`~dermx.evaluate.stats`. :func:`run_evaluation` runs ``dermx evaluate`` as a library
function.
"""

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
            ".agreement.tables",
        ),
        **dict.fromkeys(("AgreementResult", "rater_agreement", "write_agreement"), ".agreement.interrater"),
        **dict.fromkeys(("BenchmarkConfig", "BenchmarkResult"), ".benchmark.config"),
        **dict.fromkeys(("run_benchmark", "write_benchmark"), ".benchmark.run"),
        **dict.fromkeys(("Leaderboard", "LeaderboardConfig", "parse_methods"), ".leaderboard.config"),
        **dict.fromkeys(("run_leaderboard", "write_leaderboard"), ".leaderboard.run"),
        **dict.fromkeys(("CamExplainer", "Candidate", "Explanation", "ModelNames", "find_checkpoints",
                         "load_candidates"), ".candidates"),
        **dict.fromkeys(("EvalSet", "EvalSetError", "choose_eval_set"), ".eval_sets"),
        **dict.fromkeys(("ImageGroups", "read_groups"), ".image_groups"),
        **dict.fromkeys(("Evaluation", "run_evaluation"), ".pipeline"),
    },
)
