"""What every ``dermx`` command shares: the option vocabulary, one error path, renamed spellings.

Vocabulary (docs/design.md section 10). A flag means one thing in every command:

================  =====================================================================
``--images DIR``  a folder of images (searched recursively); never a count
``--n-images N``  a count of images (``--n-raters``, ``--n-folds``, ``--n-boot`` likewise)
``--input-size``  the model's input size, ``N`` or ``HxW`` (height × width)
``--resolution``  how an image fits the input size: ``pad``, ``crop`` or ``squash``
``--map-size``    where maps are compared or stored: ``features``, ``input`` or ``native``
``--method``      a CAM method of the engine (``--methods`` for a comma-separated list)
``--batch-size``  images per model pass
================  =====================================================================

Commands declare a shared flag with :func:`option` (``Annotated[Path, option("--images")]``), so its
spelling, type and help are the same everywhere; ``tests/test_cli.py`` walks every command to check.

Errors (:func:`guarded`): a failure prints one line ``error: ...`` on stderr and exits with 1; a usage
error (bad flag or value) exits with 2 through Click; ``dermx --debug`` shows the traceback instead.
Renamed flags (:func:`renamed`) still work for one release, with a note on stderr.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import Any, Literal, NoReturn, TypeVar, get_args, get_origin

import typer
from typer.core import TyperCommand

from dermx.choices import CamMethod, ResolutionPolicy, method_name
from dermx.text import shorten_words

__all__ = [
    "SHARED",
    "SizeArg",
    "choice",
    "fail",
    "guarded",
    "only_with",
    "option",
    "parse_input_size",
    "renamed",
    "set_debug",
]

F = TypeVar("F", bound=Callable[..., Any])

_DEBUG = False


def set_debug(on: bool) -> None:
    """Show tracebacks instead of one-line errors (``dermx --debug``)."""
    global _DEBUG
    _DEBUG = on


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line of stderr and exit with ``code`` (1: failure, 2: usage); a name
    in the message longer than :data:`dermx.text.NAME_LIMIT` is shortened (:func:`~dermx.text.shorten_words`)."""
    typer.secho(f"error: {shorten_words(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


#: Exceptions that carry a message meant for the user (every dermx error class derives from ValueError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError)


def guarded(command: F) -> F:
    """Wrap a command so a user-facing failure ends as one ``error:`` line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:  # Click's own exits and usage errors are none of these: they pass
            if _DEBUG:
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            fail(str(message) or type(error).__name__)

    return wrapper  # type: ignore[return-value]


def parse_input_size(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"224"`` → ``(224, 224)``; ``"256x192"`` → ``(256, 192)`` as (height, width)."""
    if text is None or isinstance(text, tuple):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", str(text))
    if not match or int(match.group(1)) < 1 or int(match.group(2) or 1) < 1:
        raise typer.BadParameter(f"expected N or HxW (positive integers, height x width), got {text!r}")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


#: Annotation of an ``N|HxW`` option: Click gets the text, :func:`parse_input_size` makes it
#: ``(height, width)`` (a ``tuple`` annotation would make Click ask for two arguments).
SizeArg = Any

def choice(values: Any, normalise: Callable[[str], str] | None = None) -> Callable[[Any], Any]:
    """The parser of a closed choice, checked before any work starts: ``values`` is a ``Literal`` type
    (its one spelling of each value) or a sequence of strings; ``normalise`` maps other accepted spellings
    onto that one (raising :class:`ValueError` for an unknown name). An unknown value is a usage error
    (exit 2) that lists the allowed ones; :func:`metavar` gives ``a|b|c`` for the help."""
    allowed = tuple(get_args(values)) if get_origin(values) is Literal else tuple(values)

    def parse(text: Any) -> Any:
        if text is None or text in allowed:
            return text
        try:
            value = normalise(str(text)) if normalise is not None else None
        except ValueError:
            value = None
        if value in allowed:
            return value
        raise typer.BadParameter(f"expected one of {', '.join(allowed)}; got {text!r}")

    parse.allowed = allowed  # type: ignore[attr-defined]
    return parse


def metavar(parser: Callable[[Any], Any]) -> str:
    """``a|b|c``: the values a :func:`choice` parser accepts."""
    return "|".join(parser.allowed)  # type: ignore[attr-defined]


def only_with(ctx: typer.Context, needed: str, given: bool, flags: dict[str, str]) -> None:
    """A usage error (exit 2) when a flag of ``flags`` (parameter name → flag) was given on the command
    line while ``needed`` was not (``given`` false): a flag that would have no effect is never silently
    ignored."""
    if given:
        return
    from click.core import ParameterSource

    useless = [flag for name, flag in flags.items() if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if useless:
        raise typer.BadParameter(f"{', '.join(useless)} {'has' if len(useless) == 1 else 'have'} an effect only "
                                 f"with {needed}", ctx=ctx)


_RESOLUTION = choice(ResolutionPolicy)
_METHOD = choice(CamMethod, method_name)


#: The flags several commands share: their one spelling, type and help text (:func:`option`).
SHARED: dict[str, dict[str, Any]] = {
    "--images": {"exists": True, "file_okay": False, "help": "Folder of images (searched recursively)."},
    "--n-images": {"min": 1, "help": "Number of images."},
    "--input-size": {"parser": parse_input_size, "metavar": "N|HxW",
                     "help": "Model input size, N or HxW (height x width); default: the model's own."},
    "--resolution": {"parser": _RESOLUTION, "metavar": metavar(_RESOLUTION),
                     "help": "How an image fits the input size: pad, crop or squash; default: the model's own."},
    "--map-size": {"help": "Where maps are compared or stored: 'features' (the CAM grid), 'input' (the model's "
                           "input size) or 'native' (the image's own pixels); the values shown are those the "
                           "command takes."},
    "--method": {"parser": _METHOD, "metavar": metavar(_METHOD),
                 "help": "CAM method (papers' spellings such as Grad-CAM++ are accepted)."},
    "--batch-size": {"min": 1, "help": "Images per model pass."},
    "--seed": {"help": "Random seed: same seed, same result."},
    "--out": {"file_okay": False, "help": "Output folder (created)."},
    "--data": {"exists": True, "file_okay": False, "help": "DermXDB folder (annotations/, masks/, metadata.csv)."},
    "--threshold": {"min": 0.0, "max": 1.0, "help": "Probability from which a characteristic is present."},
    "--aliases": {"exists": True, "dir_okay": False,
                  "help": "CSV alias,name mapping your class and characteristic names onto DermXDB's."},
}


def option(flag: str, *short: str, **narrower: Any) -> Any:
    """The ``typer.Option`` of a shared ``flag`` (:data:`SHARED`), optionally with short aliases (``-m``).
    ``narrower``: settings :data:`SHARED` leaves to each command (the ``parser`` and ``metavar`` of
    ``--map-size``, whose values differ by command); a setting :data:`SHARED` fixes cannot be changed."""
    fixed = set(narrower) & set(SHARED[flag])
    if fixed:
        raise ValueError(f"{flag}: {sorted(fixed)} are fixed by cli_common.SHARED")
    return typer.Option(flag, *short, **SHARED[flag], **narrower)


def renamed(aliases: dict[str, str]) -> type[TyperCommand]:
    """A command class that accepts the old spelling of renamed flags with a deprecation note.

    ``app.command("synth", cls=renamed({"--images": "--n-images"}))``: ``--images 300`` and
    ``--images=300`` are read as ``--n-images 300``. Old spellings are kept for one release.
    """

    class RenamedFlagsCommand(TyperCommand):
        def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
            return super().parse_args(ctx, _rename(args, aliases, ctx.command_path))

    return RenamedFlagsCommand


def _rename(args: list[str], aliases: dict[str, str], where: str) -> list[str]:
    out: list[str] = []
    for arg in args:
        if arg == "--":
            out.extend(args[len(out):])
            break
        flag, eq, value = arg.partition("=")
        if flag in aliases:
            new = aliases[flag]
            print(f"note: `{where} {flag}` is deprecated and will be removed; use {new}", file=sys.stderr)
            arg = f"{new}{eq}{value}"
        out.append(arg)
    return out
