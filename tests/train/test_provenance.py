"""Issue 14, honest provenance: what a training run records about its weights, data and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dermx.cli import app
from support import plain


@pytest.fixture(scope="module")
def run(tiny_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``dermx train`` offline with --pretrained (the default) and --random-fallback: the hub is
    unreachable, and the user asked for random weights then."""
    out = tmp_path_factory.mktemp("prov") / "run"
    args = ["train", "--data", str(tiny_db[0]), "--images", str(tiny_db[1]), "--kind", "dx-only",
            "--preset", "tiny", "--input-size", "32", "--epochs", "4", "--batch-size", "8", "--fold", "0",
            "--random-fallback", "--out", str(out), "--cache-dir", str(out.parent / "cache"), "--lr", "0.05"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_offline_training_records_random_weights(run: tuple[Path, str]) -> None:
    """Old code: config.json said "pretrained": true although the weights were random."""
    out, _ = run
    assert json.loads((out / "config.json").read_text())["model"]["pretrained"] is False
    record = json.loads((out / "model" / "config.json").read_text())["training_data"]
    assert record["initial_weights"] == {"source": "random"}
    assert record["source"] == "dermxdb"  # the folder's name, not the training machine's path
    assert not any(str(v).startswith("/") for v in record.values() if isinstance(v, str))


def test_printed_and_carded_figures_are_the_exported_epochs(run: tuple[Path, str]) -> None:
    """Old code printed the last epoch's metrics next to the best epoch's checkpoint, and numbered the
    exported epoch from 0 where the training log (``epoch k/N done``) numbers from 1."""
    out, output = run
    log = pd.read_csv(out / "logs" / "metrics.csv")
    per_epoch = log.dropna(subset=["val/loss"]).groupby("epoch")["val/loss"].last()
    best = int(per_epoch.idxmin())
    assert best != per_epoch.index.max()  # the scenario: the last epoch is not the exported one
    logged = {int(k): float(v) for k, v in re.findall(r"epoch (\d+)/4 done: .*?val/loss ([\d.]+)", plain(output))}
    shown = next(k for k, v in logged.items() if f"{v:.4g}" == f"{per_epoch[best]:.4g}")
    assert sorted(logged) == [1, 2, 3, 4] and shown == best + 1
    assert f"(epoch {shown})" in output
    assert f"val/loss = {per_epoch[best]:.4f}" in output
    card = (out / "model" / "README.md").read_text()
    assert f"epoch {shown}, the exported one" in card
    assert f"| val/loss | {per_epoch[best]:.4f} |" in card
    for needle in ("resnet10t", "dx-only", "Psoriasis", "random initialisation", "resolution policy `pad`",
                   "map grid", "Intended use and limits", "held-out fold: 0"):
        assert needle in card, needle
