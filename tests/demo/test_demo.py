from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from dermx.demo.cli import register


def test_demo_quick_end_to_end(tmp_path: Path) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """dermx"""

    register(app)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "DermX+" in result.output
    assert (out / "report.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"DermX", "DermX+"}
    assert 0 <= summary["diagnosis"]["DermX"]["accuracy"]["mean"] <= 1
    assert summary["shortcut"]["class"] == "Psoriasis"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["data"]["files"] > 0
