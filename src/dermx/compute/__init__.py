"""Where maps are computed: one device and precision story for every command (:mod:`.device`), and
the images sharded across processes and machines with Lightning (:mod:`.shards`)."""

from dermx.compute.device import (
    BF16_MAP_TOLERANCE,
    DEVICE_MAP_TOLERANCE,
    PRECISIONS,
    Compute,
    ComputeError,
    full_precision,
    model_device,
)

__all__ = ["BF16_MAP_TOLERANCE", "DEVICE_MAP_TOLERANCE", "PRECISIONS", "Compute", "ComputeError", "full_precision",
           "model_device"]
