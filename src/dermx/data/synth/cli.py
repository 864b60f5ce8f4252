"""``dermx synth``: write a synthetic DermXDB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dermx.cli_common import SizeArg, guarded, option, parse_input_size, renamed


def parse_tone_values(text: str | dict[str, float] | None) -> dict[str, float] | None:
    """``"dark=0.4,medium=0.8"`` → ``{"dark": 0.4, "medium": 0.8}``; a usage error naming the bad item."""
    if text is None or isinstance(text, dict):
        return text
    values: dict[str, float] = {}
    for item in (part.strip() for part in str(text).split(",") if part.strip()):
        tone, sep, number = item.partition("=")
        try:
            values[tone.strip()] = float(number)
        except ValueError:
            raise typer.BadParameter(f"expected TONE=NUMBER items separated by commas; got {item!r}") from None
        if not sep:
            raise typer.BadParameter(f"expected TONE=NUMBER items separated by commas; got {item!r}")
    return values


@guarded
def synth_command(
    out: Annotated[Path, option("--out")],
    n_images: Annotated[int, option("--n-images")] = 300,
    n_raters: Annotated[int, typer.Option("--n-raters", min=1,
                                          help="Number of raters (each image gets 3..R of them).")] = 8,
    seed: Annotated[int, option("--seed")] = 0,
    shortcut: Annotated[str | None, typer.Option(help="Class that gets a watermark shortcut.")] = None,
    image_size: Annotated[SizeArg, typer.Option(
        "--image-size", parser=parse_input_size, metavar="N|HxW",
        help="Size of the generated images, N or HxW (height x width).")] = "192x256",
    layouts: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                 help="Real DermXDB folder to take layouts from.")] = None,
    workers: Annotated[int, option("--n-workers")] = 1,
    tone_contrast: Annotated[Any, typer.Option(
        "--tone-contrast", parser=parse_tone_values, metavar="TONE=F,...",
        help="Skin-tone effect: lesions on these tones drawn at this fraction of their contrast (e.g. dark=0.4).")
    ] = None,
    tone_share: Annotated[Any, typer.Option(
        "--tone-share", parser=parse_tone_values, metavar="TONE=W,...",
        help="Relative share of patients of each skin tone (e.g. light=0.6,medium=0.35,dark=0.05).")] = None,
    profiles: Annotated[str, option("--profiles")] = "overlapping",
) -> None:
    """Generate a synthetic DermXDB with known lesion masks and simulated raters."""
    import time

    from rich.console import Console

    from dermx.data.synth import generate

    start = time.perf_counter()
    summary = generate(out, n_images=n_images, n_raters=n_raters, min_raters=min(3, n_raters), seed=seed,
                       size=image_size, shortcut=shortcut, layouts=layouts, workers=workers,
                       tone_contrast=tone_contrast, tone_probabilities=tone_share,
                       profiles=profiles)
    console = Console()
    for line in summary.lines():
        console.print(line)
    console.print(f"time:        {time.perf_counter() - start:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to the ``dermx`` app."""
    app.command("synth", cls=renamed({"--images": "--n-images", "--raters": "--n-raters",
                                       "--size": "--image-size",
                                       "--workers": "--n-workers"}))(synth_command)
