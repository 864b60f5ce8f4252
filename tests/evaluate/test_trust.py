"""Which explanation to trust: methods giving the same maps merged, methods ranked by paired tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dermx.evaluate.leaderboard.trust import map_differences, near_pairs, rank, same_groups, sentence, verdict


def test_methods_with_the_same_maps_share_a_row_and_near_ones_are_named() -> None:
    base = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = {"gradcam": base, "xgradcam": base + 1e-6, "cam": base.clone(), "gradcam++": base + 0.01,
            "eigencam": torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))}
    differences = [map_differences(maps)]
    groups = same_groups(list(maps), differences)
    assert groups == [["gradcam", "xgradcam", "cam"], ["gradcam++"], ["eigencam"]]
    near = near_pairs(groups, differences)
    assert [(a, b) for a, b, _ in near] == [("gradcam", "gradcam++")] and abs(near[0][2] - 0.01) < 1e-6
    # equal on one fold only is not the same map
    other_fold = {**maps, "cam": base + 0.5}
    assert same_groups(list(maps), [*differences, map_differences(other_fold)])[0] == ["gradcam", "xgradcam"]


def _values(means: dict[str, float], noise: float, n: int = 50) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(4)
    spread = rng.uniform(0, 0.4, size=n)  # images differ a lot; methods differ by a constant
    stems = [f"img{i}" for i in range(n)]
    return {m: pd.DataFrame({"stem": stems, "value": spread + mean + rng.normal(0, noise, size=n)})
            for m, mean in means.items()}


def test_ranking_ties_what_paired_tests_cannot_tell_apart() -> None:
    agreement = rank(_values({"gradcam": 0.30, "gradcam++": 0.299, "eigencam": 0.25}, 0.005), "higher", None,
                     1000, 0)
    assert set(agreement["tied"]) == {"gradcam", "gradcam++"}  # 0.001 apart: the paired CI includes 0
    assert agreement["worse"] == ["eigencam"] and agreement["level"] == 1 - 0.05 / 2
    faithfulness = rank(_values({"gradcam": 0.20, "gradcam++": 0.30, "eigencam": 0.21}, 0.02), "lower", None,
                        1000, 0)
    assert faithfulness["best"] == "gradcam" and "gradcam++" in faithfulness["worse"]
    sanity = rank(_values({"gradcam": 0.1, "gradcam++": 0.1, "eigencam": 0.6}, 0.01), "lower", None, 1000, 0)
    result = verdict({"agreement": agreement, "faithfulness": faithfulness, "sanity": sanity})
    assert result["trusted"] == ["gradcam"]
    said = sentence("DermX+", result, {"gradcam": "gradcam = cam"})
    assert said.startswith("DermX+: trust gradcam = cam, among the best on all three criteria.")
    assert "below: eigencam" in said
    nobody = verdict({"agreement": agreement, "faithfulness": rank(_values({"eigencam": 0.1, "gradcam": 0.4,
                                                                             "gradcam++": 0.4}, 0.01), "lower",
                                                                    None, 1000, 0), "sanity": sanity})
    assert nobody["trusted"] == [] and "no method is among the best on all three" in sentence("M", nobody, {})
