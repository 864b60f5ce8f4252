"""The ``dermx`` command: one sub-command per stage, each registered by its own package.

Each stage keeps its command in ``dermx/<stage>/cli.py`` with a ``register(app)`` function, so that
this file only wires them together and ``dermx --help`` stays fast (heavy imports live inside the
commands).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="dermx",
    help="Explainable dermatological diagnosis: data, models, explanations, expert benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from dermx.version import __version__

        typer.echo(f"dermx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback instead of a one-line error."),
) -> None:
    """Explainable dermatological diagnosis: data, models, explanations, expert benchmarks."""
    from dermx.cli_common import set_debug

    set_debug(debug)

#: Stage packages whose ``cli.register(app)`` adds commands, in help order.
STAGES: tuple[str, ...] = (
    "dermx.data",
    "dermx.data.synth",
    "dermx.evaluate",
    "dermx.explain",
    "dermx.train",
    "dermx.predict",
    "dermx.serve",
    "dermx.report",
    "dermx.demo",
)

for _stage in STAGES:
    importlib.import_module(f"{_stage}.cli").register(app)


def main() -> None:
    """Entry point for ``python -m dermx``."""
    app()
