"""Lightning's chatter kept out of the user's way during training (``dermx train``, ``dermx cv``, the demo)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Lightning loggers whose INFO lines (seed, "GPU available", tips, "stopped: max_epochs") training hides
QUIET_LOGGERS: tuple[str, ...] = ("lightning.pytorch", "lightning.fabric")


@contextmanager
def quiet_training() -> Iterator[None]:
    """Hide Lightning's INFO banners and two known harmless warnings, restoring everything afterwards:
    Lightning 2.6's use of torch's deprecated ``LeafSpec`` (a FutureWarning per fit) and torch's
    "NumPy array is not writable" note. Progress bars and warnings/errors are untouched."""
    import lightning  # noqa: F401  (configures its loggers on import: quiet them after that)

    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"The given NumPy array is not writable", category=UserWarning)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
