"""The folder of a run: what each file holds, with one writer and one reader per file.

An evaluation run folder (``dermx evaluate``, ``dermx demo``) and a rater-agreement folder
(``dermx interrater``) are read here, so the report reads runs without importing the code that made
them. Every JSON document carries ``schema`` (:data:`SCHEMA`); a folder written by an older dermx is
refused with a message saying so, never half read.

=======================  ====================================================================
file                     holds (writer / reader)
=======================  ====================================================================
``summary.json``         every figure of the run (:mod:`dermx.runs.summary`); layout of a
                         benchmark in :mod:`dermx.evaluate.benchmark.summary`, of rater
                         agreement in :mod:`dermx.evaluate.agreement.interrater`
``items.csv``            one row per scored (image, map kind, reference) pair of each model
``baselines.csv``        the baseline maps' scores on every pair a model row uses
``images.csv``           one row per (model, image): probabilities, prediction, strata
                         (:mod:`dermx.runs.tables`)
``examples.npz``         the report's example images with every map (:mod:`dermx.runs.examples`)
``leaderboard.json``     the method × model leaderboard, ``leaderboard.csv`` its finite rows,
                         ``leaderboard_examples.npz`` one image under every method
                         (:mod:`dermx.runs.leaderboard`)
``manifest.json``        versions, seeds, configuration, data identity, command line
                         (:mod:`dermx.runs.manifest`)
=======================  ====================================================================
"""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("SCHEMA", "RunFolderError"), ".layout"),
        **dict.fromkeys(("read_summary", "write_summary"), ".summary"),
        **dict.fromkeys(("read_tables", "write_tables"), ".tables"),
        **dict.fromkeys(("read_examples", "write_examples", "rater_masks"), ".examples"),
        **dict.fromkeys(("read_leaderboard", "write_leaderboard"), ".leaderboard"),
        **dict.fromkeys(("build_manifest", "read_manifest", "write_manifest"), ".manifest"),
    },
)
