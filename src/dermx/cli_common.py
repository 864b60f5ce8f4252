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
``--model``       a dermx checkpoint, or a timm model name whose whole classifier ``--weights FILE`` holds
``--epochs``      training epochs per model (``--backbone-weights FILE``: a backbone's starting weights)
================  =====================================================================

Commands declare a shared flag with :func:`option` (``Annotated[Path, option("--images")]``), so its
spelling, type and help are the same everywhere; ``tests/test_cli.py`` walks every command to check,
and checks that any flag name two commands share means the same in both. A flag that has no effect in
the combination given is a usage error naming it (:func:`refuse_flags`, :func:`is_checkpoint`).

Errors (:func:`guarded`): any failure prints one line ``error: ...`` on stderr and exits with 1 (an
unexpected exception type is named, with the hint to rerun with ``--debug``); a usage error (bad flag
or value) exits with 2 through Click; ``dermx --debug`` shows the traceback instead.
Renamed flags (:func:`renamed`) still work for one release, with a note on stderr.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, get_args, get_origin

import typer
from typer.core import TyperCommand
from typer.exceptions import TyperException

from dermx.choices import CamMethod, FusionRule, ProfileSet, ResolutionPolicy, method_name
from dermx.text import shorten_words

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # the click typer vendors; typer.Context subclasses it


__all__ = [
    "CLASSIFIER_FLAGS",
    "SHARED",
    "SizeArg",
    "choice",
    "fail",
    "guarded",
    "is_checkpoint",
    "meaning",
    "metavar",
    "only_with",
    "option",
    "parse_input_size",
    "refuse_flags",
    "refuse_option",
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
#: Typer's own ways out of a command (``Exit``, ``Abort``, usage errors such as ``BadParameter``): they
#: end the command as Typer says (exit code, usage message) and pass through :func:`guarded`.
TYPER_EXITS: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, TyperException)


def guarded(command: F) -> F:
    """Wrap a command so that any failure ends as one ``error:`` line and exit code 1.

    A user error (:data:`USER_ERRORS`) shows its message; any other exception (a bug, or a failure
    deep inside a library) shows its type and message with the hint to rerun with ``dermx --debug``,
    which re-raises instead, to show the traceback. :data:`TYPER_EXITS` and ``KeyboardInterrupt``
    pass through."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TYPER_EXITS:
            raise
        except USER_ERRORS as error:
            if _DEBUG:
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            fail(str(message) or type(error).__name__)
        except Exception as error:  # the one place every unexpected failure ends
            if _DEBUG:
                raise
            fail(f"unexpected {type(error).__name__}: {_one_line(str(error)) or 'no message'} "
                 "(rerun as `dermx --debug COMMAND ...` for the traceback)")

    return wrapper  # type: ignore[return-value]


def _one_line(text: str) -> str:
    """``text`` with its lines joined by ``; `` (a message from a library may span several)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


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
    # by name: Typer vendors its own Click (typer._click), whose ParameterSource is not click.core's
    useless = [flag for name, flag in flags.items()
               if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
    if useless:
        raise typer.BadParameter(f"{', '.join(useless)} {'has' if len(useless) == 1 else 'have'} an effect only "
                                 f"with {needed}", ctx=ctx)


_RESOLUTION = choice(ResolutionPolicy)
_METHOD = choice(CamMethod, method_name)
_FUSION = choice(FusionRule)
_PROFILES = choice(ProfileSet)


#: The flags several commands share: their one spelling, type and help text (:func:`option`).
SHARED: dict[str, dict[str, Any]] = {
    "--images": {"exists": True, "file_okay": False, "help": "Folder of images (searched recursively)."},
    "--n-images": {"min": 1, "help": "Number of images."},
    "--input-size": {"parser": parse_input_size, "metavar": "N|HxW",
                     "help": "Model input size, N or HxW (height x width); default: the model's own."},
    "--resolution": {"parser": _RESOLUTION, "metavar": metavar(_RESOLUTION),
                     "help": "How an image fits the input size: pad, crop or squash; default: the model's own."},
    "--map-size": {"help": "Where maps are compared or stored: 'features' (the CAM grid), 'input' (the model's "
                           "input size) or 'native' (the image's own pixels)."},
    "--method": {"parser": _METHOD, "metavar": metavar(_METHOD),
                 "help": "CAM method (papers' spellings such as Grad-CAM++ are accepted)."},
    "--batch-size": {"min": 1, "help": "Images per model pass."},
    "--seed": {"help": "Random seed: same seed, same result."},
    "--profiles": {"parser": _PROFILES, "metavar": metavar(_PROFILES),
                   "help": "Findings of each synthetic class: overlapping (classes share characteristics) or "
                           "distinct (each class always shows one of its own, so the characteristics name the "
                           "class)."},
    "--interventions": {"names": ("--interventions/--no-interventions",),
                        "help": "Also measure each model's intervention curve (diagnosis macro F1 after correcting "
                                "k characteristics to the raters' majority, most uncertain first and in random "
                                "orders) and how much its diagnosis relies on its characteristics."},
    "--device": {"help": "Where the model runs: auto (a GPU when present, else the CPU), cpu, cuda, cuda:N or mps."},
    "--precision": {"help": "Lightning precision: 32 (32-true), bf16-mixed or 16-mixed (autocast around the model "
                            "passes), ..."},
    "--devices": {"help": "Lightning devices, one process each: N, auto (every GPU) or comma-separated GPU ids."},
    "--num-nodes": {"min": 1, "help": "Machines (Lightning), each running --devices processes."},
    "--strategy": {"help": "Lightning strategy: auto | ddp | ddp_spawn | ..."},
    "--n-workers": {"min": 0, "help": "Worker processes."},
    "--resume": {"names": ("--resume/--no-resume",),
                 "help": "Continue an interrupted run in the same output folder, redoing only what had not finished."},
    "--out": {"file_okay": False, "help": "Output folder (created)."},
    "--data": {"exists": True, "file_okay": False, "help": "DermXDB folder (annotations/, masks/, metadata.csv)."},
    "--threshold": {"min": 0.0, "max": 1.0, "help": "Probability from which a characteristic is present."},
    "--abstain-risk": {"min": 0.0, "max": 1.0,
                       "help": "Abstain (answer the diagnosis set, not the top class) when the calibrated top "
                               "probability is below the confidence whose error rate on the validation images was "
                               "at most this; needs a calibrated checkpoint."},
    "--aliases": {"exists": True, "dir_okay": False,
                  "help": "CSV alias,name mapping your class and characteristic names onto DermXDB's."},
    "--raters": {"help": "Comma-separated raters (numbers or labellerN) whose outlines are used; default: every "
                         "first-pass rater."},
    "--epochs": {"min": 1, "help": "Training epochs per model."},
    "--fusion": {"parser": _FUSION, "metavar": metavar(_FUSION), "help": "Fusion rule of the raters' maps."},
    "--require-all-images": {"help": "Fail when the image folder lacks any DermXDB image (default: go on with "
                                     "the images found, list the missing ones in the run folder)."},
    "--model": {"help": "A dermx checkpoint (folder, or a file in it), or a timm model name with --weights FILE."},
    "--weights": {"exists": True, "dir_okay": False,
                  "help": "With --model NAME: the weights of the whole timm classifier (state dict, .safetensors "
                          "or torch file)."},
    "--n-classes": {"min": 1, "help": "With --model NAME: the classifier's outputs (default: from the --weights "
                                        "file)."},
    "--class-names": {"exists": True, "dir_okay": False,
                      "help": "With --model NAME: text file of the classifier's class names, one a line (default: "
                              "from the --weights file, if it has them)."},
}

#: The default of ``--threshold`` in ``predict`` and ``serve`` (given as ``None`` there, so that a value given
#: with a model without characteristics is refused).
PRESENT_FROM = 0.5
#: The flags of :data:`SHARED` that describe a plain timm classifier named by ``--model NAME``; a dermx
#: checkpoint carries all of this itself.
CLASSIFIER_FLAGS: tuple[str, ...] = ("--weights", "--n-classes", "--class-names")
#: How :func:`option` appends the values one command takes to a shared flag's help.
TAKES = " This command takes: {}."


def option(flag: str, *short: str, choices: Any = None, default: str | None = None) -> Any:
    """The ``typer.Option`` of a shared ``flag`` (:data:`SHARED`), optionally with short aliases (``-m``).

    ``choices``: the values of the flag this command takes, a ``Literal`` type or a sequence (e.g.
    ``--map-size`` in a command that takes ``features`` and ``input`` only): they are checked
    (:func:`choice`), shown as the metavar and named after the shared help (:data:`TAKES`), which stays
    the flag's one meaning. ``default``: the value ``-h`` shows for an
    option whose Python default is ``None`` (so that the command can tell a value given from none)."""
    declared = dict(SHARED[flag])
    names = declared.pop("names", (flag,))  # an on/off switch declares both spellings
    if choices is not None:
        parser = choice(choices)
        declared.update(parser=parser, metavar=metavar(parser),
                        help=declared["help"] + TAKES.format(", ".join(parser.allowed)))  # type: ignore[attr-defined]
    if default is not None:
        declared["show_default"] = default
    return typer.Option(*names, *short, **declared)


def meaning(help_text: str | None) -> str:
    """A flag's help without the values one command takes (:func:`option`'s ``choices``): what the flag
    means, the same in every command."""
    return (help_text or "").split(TAKES.split("{}")[0], 1)[0]


def is_checkpoint(model: str, *, weights: object = None, num_classes: object = None, class_names: object = None,
                  weights_required: bool = False) -> bool:
    """Whether ``--model`` names a dermx checkpoint (an existing path) rather than a timm model name. A
    classifier flag (:data:`CLASSIFIER_FLAGS`) given with a checkpoint is a usage error naming it, and so
    is a timm name without ``--weights`` where ``weights_required`` (random weights predict nothing)."""
    if Path(model).exists():
        refuse_flags(dict(zip(CLASSIFIER_FLAGS, (weights, num_classes, class_names), strict=True)),
                     "applies to a timm model name (--model NAME) only: a dermx checkpoint carries its own "
                     "weights, outputs and class names")
        return True
    if weights_required and weights is None:
        raise typer.BadParameter(f"{model!r} is neither a checkpoint folder or file nor, without --weights FILE, "
                                 "a usable timm classifier: give the weights of the timm model with --weights",
                                 param_hint="'--model'")
    return False


def refuse_option(option: str, why: str) -> NoReturn:
    """``typer.BadParameter`` naming the flag of a Python ``option`` (``abstain_risk`` → ``--abstain-risk``)
    that the command's model cannot use, and ``why`` (e.g. a :class:`~dermx.predict.UncalibratedError`)."""
    raise typer.BadParameter(why, param_hint=f"'--{option.replace('_', '-')}'")


def refuse_flags(given: dict[str, object], why: str) -> None:
    """``typer.BadParameter`` naming the first flag of ``given`` (flag → value; ``None``: not given) that
    was given, and ``why`` it has no effect: a flag that does nothing in a combination is an error."""
    for flag, value in given.items():
        if value is not None:
            raise typer.BadParameter(why, param_hint=f"'{flag}'")


def renamed(aliases: dict[str, str]) -> type[TyperCommand]:
    """A command class that accepts the old spelling of renamed flags with a deprecation note.

    ``app.command("synth", cls=renamed({"--images": "--n-images"}))``: ``--images 300`` and
    ``--images=300`` are read as ``--n-images 300``. Old spellings are kept for one release.
    """

    class RenamedFlagsCommand(TyperCommand):
        def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
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
