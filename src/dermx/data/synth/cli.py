"""``dermx synth``: write a synthetic DermXDB."""

from __future__ import annotations

from pathlib import Path

import typer


def _parse_size(text: str) -> tuple[int, int]:
    """``"192x256"`` → (192, 256) as (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise typer.BadParameter(f"size must be HEIGHTxWIDTH, e.g. 192x256, got {text!r}") from error
    return height, width


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to the ``dermx`` app."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Output folder (created; a previous synthetic set is replaced)."),
        images: int = typer.Option(300, "--images", help="Number of images."),
        raters: int = typer.Option(8, "--raters", help="Number of raters (each image gets 3..R of them)."),
        seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
        shortcut: str | None = typer.Option(None, "--shortcut", help="Class that gets a watermark shortcut."),
        size: str = typer.Option("192x256", "--size", help="Image size HEIGHTxWIDTH."),
        layouts: Path | None = typer.Option(None, "--layouts", help="Real DermXDB folder to take layouts from."),
        workers: int = typer.Option(1, "--workers", help="Processes (output does not depend on it)."),
    ) -> None:
        """Generate a synthetic DermXDB with known lesion masks and simulated raters."""
        import time

        from rich.console import Console

        from dermx.data.synth import generate

        start = time.perf_counter()
        summary = generate(out, n_images=images, n_raters=raters, min_raters=min(3, raters), seed=seed,
                           size=_parse_size(size), shortcut=shortcut, layouts=layouts, workers=workers)
        console = Console()
        for line in summary.lines():
            console.print(line)
        console.print(f"time:        {time.perf_counter() - start:.1f} s")
