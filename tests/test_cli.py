"""Every ``dermx`` command speaks one vocabulary (dermx.cli_common): a shared flag has the same
spelling, type and help everywhere, renamed spellings are gone from the help, every command has
``-h``, and failures end in one ``error:`` line with exit code 1."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from dermx.cli import app
from dermx.cli_common import SHARED, guarded, meaning
from support import plain

#: Spellings replaced by the shared vocabulary; none may be a visible option of any command.
RETIRED = {"--size", "--max-batch", "--maps-method", "--maps-size"}

def _commands() -> Iterator[tuple[str, typer.core.TyperCommand]]:
    def walk(command: typer.core.TyperCommand, path: str) -> Iterator[tuple[str, typer.core.TyperCommand]]:
        if isinstance(command, TyperGroup):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), "dermx")


COMMANDS = dict(_commands())


def _options(command: typer.core.TyperCommand) -> Iterator[TyperOption]:
    return (p for p in command.params if isinstance(p, TyperOption) and not p.hidden)


def _declared(option: TyperOption) -> typer.models.OptionInfo:
    """How the option was declared (Typer's ``OptionInfo``: help, file_okay, min, parser, ...)."""
    return option.type_descriptor.parameter_info  # type: ignore[attr-defined]


def _is_folder(option: TyperOption) -> bool:
    return option.type_descriptor.annotation is Path and _declared(option).file_okay is False  # type: ignore[attr-defined]


def test_every_stage_has_its_commands() -> None:
    names = {path.split(" ", 1)[1] for path in COMMANDS}
    assert names >= {"synth", "data summary", "interrater", "evaluate", "explain", "train", "cv", "predict",
                     "serve", "report", "demo"}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_runs_with_h_and_shows_no_retired_spelling(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split()[1:], "-h"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for option in _options(COMMANDS[path]):
        for flag in (o for o in option.opts if o.startswith("--")):
            assert flag not in RETIRED, f"{path}: {flag} is a retired spelling"


def _shared_uses() -> Iterator[Any]:
    """Every (command, flag of :data:`~dermx.cli_common.SHARED`) that ``-h`` lists."""
    for path in sorted(COMMANDS):
        for option in _options(COMMANDS[path]):
            for flag in (o for o in option.opts if o in SHARED):
                yield pytest.param(path, flag, id=f"{path[6:]}:{flag}")


@pytest.mark.parametrize(("path", "flag"), list(_shared_uses()))
def test_a_shared_flag_has_the_shared_help_bounds_and_parser(path: str, flag: str) -> None:
    (option,) = [o for o in _options(COMMANDS[path]) if flag in o.opts]
    expected = SHARED[flag]
    assert meaning(option.help) == expected["help"], f"{path} {flag}: help differs from cli_common.SHARED"
    if expected.get("file_okay") is False:
        assert _is_folder(option), f"{path} {flag} is not a folder"
    for key in ("min", "max", "parser", "exists"):
        if key in expected:
            assert getattr(_declared(option), key) == expected[key], f"{path} {flag}: {key} differs"


def _meaning(option: TyperOption) -> tuple[str, str, bool, bool]:
    """What a flag means: its help without the values one command takes (:func:`dermx.cli_common.meaning`),
    its value type, whether it is an on/off flag, whether it repeats."""
    annotation = option.type_descriptor.annotation  # type: ignore[attr-defined]
    return meaning(option.help), getattr(annotation, "__name__", str(annotation)), option.is_flag, option.multiple


def _flag_pairs() -> Iterator[tuple[str, str, str]]:
    """Every visible long flag name shared by two commands, with each pair of those commands."""
    uses: dict[str, list[str]] = {}
    for path, command in COMMANDS.items():
        for option in _options(command):
            for flag in {o for o in (*option.opts, *option.secondary_opts) if o.startswith("--")}:
                uses.setdefault(flag, []).append(path)
    for flag, paths in sorted(uses.items()):
        for first, second in itertools.combinations(sorted(paths), 2):
            yield flag, first, second


def _flag_pair_params() -> Iterator[Any]:
    for flag, first, second in _flag_pairs():
        yield pytest.param(flag, first, second,
                           id=f"{flag}:{first[6:]}~{second[6:]}")


@pytest.mark.parametrize(("flag", "first", "second"), list(_flag_pair_params()))
def test_a_flag_name_means_one_thing_in_every_command(flag: str, first: str, second: str) -> None:
    """The same flag name has the same help meaning and type wherever ``-h`` lists it."""
    def meaning_of(path: str) -> tuple[str, str, bool, bool]:
        (option,) = [o for o in _options(COMMANDS[path]) if flag in (*o.opts, *o.secondary_opts)]
        return _meaning(option)

    assert meaning_of(first) == meaning_of(second), f"{flag} means different things in {first} and {second}"


def test_the_flag_walk_sees_every_command_and_the_flags_shared_across_them() -> None:
    """Guard against a walk that passes because it sees nothing."""
    pairs = {(flag, first, second) for flag, first, second in _flag_pairs()}
    seen = {path for _, first, second in pairs for path in (first, second)}
    assert seen >= set(COMMANDS) - {"dermx leaderboard", "dermx report"}
    assert ("--weights", "dermx explain", "dermx predict") in pairs
    assert not any(flag == "--weights" and "dermx train" in (first, second) for flag, first, second in pairs)
    assert len(pairs) > 100


#: Integer options that are not counts of things, with what they are; every other integer option is a count
#: and is spelled ``--n-...``. ``--epochs`` and ``--num-nodes`` keep the names every trainer and Lightning use.
NOT_COUNTS: dict[str, str] = {
    "--batch-size": "a size", "--figure-size": "a size in pixels", "--seed": "a seed", "--port": "a port",
    "--fold": "a fold's number", "--early-stopping": "a patience in epochs", "--output-stride": "a ratio",
    "--top-k": "a rank", "--keep-alive": "seconds", "--max-decodes": "a limit", "--max-pixels": "a limit",
    "--max-queue": "a limit", "--t0": "a period in epochs", "--t-mult": "a ratio",
    "--epochs": "the trainers' name", "--num-nodes": "Lightning's name", "--log-every-n-steps": "Lightning's name",
}


def _visible_options() -> Iterator[tuple[str, TyperOption]]:
    for path in sorted(COMMANDS):
        for option in _options(COMMANDS[path]):
            yield path, option


def test_counts_are_n_flags_and_images_is_always_a_folder() -> None:
    """Over every option of every command: an integer option is a ``--n-...`` count unless it is one
    of :data:`NOT_COUNTS`; a ``--n-...`` option is an integer (or parsed: a count or ``all``);
    ``--images`` is a folder wherever it appears; ``--raters`` names raters (a count is ``--n-raters``)."""
    checked = {"int": 0, "--images": 0, "--raters": 0}
    for path, option in _visible_options():
        flag = next(o for o in option.opts if o.startswith("--"))
        annotation = option.type_descriptor.annotation  # type: ignore[attr-defined]
        is_int = annotation in (int, int | None)
        if is_int:
            checked["int"] += 1
            assert flag.startswith("--n-") or flag in NOT_COUNTS, (
                f"{path} {flag}: an integer option is a count, spelled --n-..., or listed in NOT_COUNTS")
        if flag.startswith("--n-"):
            assert is_int or _declared(option).parser is not None, (  # a parser: a count or 'all'
                f"{path} {flag}: a --n-... option is a count (an integer)")
        if flag == "--images":
            checked["--images"] += 1
            assert _is_folder(option), f"{path} --images is not a folder"
        if flag == "--raters":
            checked["--raters"] += 1
            assert annotation in (str, str | None), f"{path} --raters is not a list of names"
    assert checked["int"] > 20 and checked["--images"] >= 4 and checked["--raters"] >= 2, checked


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_reports_failures_through_the_one_error_path(path: str) -> None:
    callback = COMMANDS[path].callback
    assert callback is not None
    wrapped = [callback]
    while hasattr(wrapped[-1], "__wrapped__"):
        wrapped.append(wrapped[-1].__wrapped__)
    assert any(getattr(f, "__code__", None) is guarded(lambda: None).__code__ for f in wrapped), (
        f"{path}: declare the command with @guarded (dermx.cli_common)")


def test_a_failure_is_one_line_exit_1_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert plain(result.output).strip().startswith("error:") and "no summary.json" in result.output
    failing = CliRunner().invoke(app, ["interrater", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert failing.exit_code == 1 and "Traceback" not in failing.output
    assert len([line for line in failing.output.splitlines() if line.startswith("error:")]) == 1
    debug = CliRunner().invoke(app, ["--debug", "interrater", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert debug.exit_code == 1 and debug.exception is not None and not isinstance(debug.exception, SystemExit)
    CliRunner().invoke(app, ["--version"])  # leaves debug off again for later tests
    from dermx.cli_common import set_debug

    set_debug(False)


def test_usage_errors_exit_2_and_version_prints() -> None:
    assert CliRunner().invoke(app, ["synth", "--out", "x", "--n-images", "0"]).exit_code == 2
    assert CliRunner().invoke(app, ["explain", "--no-such-flag"]).exit_code == 2
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("dermx ")


def test_a_long_name_in_an_error_is_shortened(capsys: pytest.CaptureFixture[str]) -> None:
    @guarded
    def command() -> None:
        raise ValueError(f"{'d' * 1_000_000}/file.json: unreadable")

    with pytest.raises(typer.Exit):
        command()
    error = capsys.readouterr().err
    assert len(error) < 400 and "dd/file.json: (1,000,011 characters) unreadable" in error


#: For every command: its arguments (``{tmp}`` is a scratch folder) and a function it calls, which the
#: test replaces by a stand-in raising an exception no command expects.
STAND_INS: dict[str, tuple[list[str], str]] = {
    "dermx cv": (["cv", "--out", "{tmp}/cv"], "dermx.train.cv.run_cv"),
    "dermx data summary": (["data", "summary", "--data", "{tmp}"], "dermx.data.dataset.load_dermxdb"),
    "dermx demo": (["demo", "--out", "{tmp}/demo"], "dermx.demo.pipeline.run_demo"),
    "dermx evaluate": (["evaluate", "--data", "{tmp}", "--images", "{tmp}", "--candidate", "m={tmp}", "--out",
                        "{tmp}/bench"], "dermx.data.load_dermxdb"),
    "dermx explain": (["explain", "--model", "resnet18", "--images", "{tmp}", "--out", "{tmp}/maps"],
                      "dermx.explain.cli.load_model"),
    "dermx interrater": (["interrater", "--data", "{tmp}", "--out", "{tmp}/agree"], "dermx.data.dataset.load_dermxdb"),
    "dermx leaderboard": (["leaderboard", "{tmp}"], "dermx.runs.leaderboard.read_leaderboard"),
    "dermx predict": (["predict", "--model", "{tmp}", "{tmp}"], "dermx.predict.run.run_predict"),
    "dermx report": (["report", "{tmp}"], "dermx.runs.summary.read_summary"),
    "dermx serve": (["serve", "--model", "{tmp}"], "dermx.serve.app.create_app"),
    "dermx synth": (["synth", "--out", "{tmp}/synth", "--n-images", "1"], "dermx.data.synth.generate"),
    "dermx train": (["train", "--out", "{tmp}/run"], "dermx.train.fitting.fit"),
}
#: Exceptions no command handles itself; the last spans two lines.
UNEXPECTED: tuple[BaseException, ...] = (TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'"),
                                         AttributeError("'NoneType' object has no attribute 'shape'"),
                                         ZeroDivisionError("division by zero"), AssertionError(),
                                         RuntimeError("first line\nsecond line"))


def test_the_error_walk_covers_every_command() -> None:
    assert set(STAND_INS) == set(COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "error"), list(zip(sorted(STAND_INS), itertools.cycle(UNEXPECTED))),
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_any_exception_in_a_command_is_one_error_line_and_debug_shows_it(
        path: str, error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermx.cli_common import set_debug

    arguments, target = STAND_INS[path]
    (tmp_path / "summary.json").write_text("{}")
    calls: list[object] = []

    def stand_in(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise error

    monkeypatch.setattr(target, stand_in)
    args = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    result = CliRunner().invoke(app, args)
    assert calls, f"{path}: the stand-in for {target} was not reached: {result.output}"
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and type(error).__name__ in errors[0] and "--debug" in errors[0], result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, type(error))
    try:
        debug = CliRunner().invoke(app, ["--debug", *args])
    finally:
        set_debug(False)
    assert isinstance(debug.exception, type(error)) and debug.exit_code == 1
