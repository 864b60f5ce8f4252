"""How much the dermatologists agree: pairwise and leave-one-rater-out tables
(:mod:`~dermx.evaluate.agreement.tables`) and the ``dermx interrater`` run
(:mod:`~dermx.evaluate.agreement.interrater`)."""
