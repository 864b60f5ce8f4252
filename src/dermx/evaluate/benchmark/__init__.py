"""The explainability benchmark: models' diagnoses, characteristics and maps against the experts
(:mod:`~dermx.evaluate.benchmark.run`)."""
