"""Where maps are computed: one device and precision story for every command (:mod:`.device`), and
the images sharded across processes and machines with Lightning (:mod:`.shards`)."""

from dermx.compute.device import PRECISIONS, Compute, ComputeError

__all__ = ["PRECISIONS", "Compute", "ComputeError"]
