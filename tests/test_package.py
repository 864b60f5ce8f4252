"""The package root: lazy public API, version, command-line entry points."""

import subprocess
import sys

import pytest

import dermx


def test_every_public_name_resolves() -> None:
    for name in dermx.__all__:
        assert getattr(dermx, name) is not None, name


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        dermx.no_such_thing  # noqa: B018


def test_import_and_command_line_do_not_load_torch() -> None:
    code = "import sys, dermx, dermx.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_module_entry_point_lists_commands() -> None:
    help_text = subprocess.run([sys.executable, "-m", "dermx", "--help"], capture_output=True, text=True, check=True)
    for command in ("data", "synth", "interrater"):
        assert command in help_text.stdout


def test_exported_names_are_not_shadowed_by_submodules() -> None:
    """A submodule named like an export would replace it once imported (``from pkg import fit``)."""
    import importlib
    import pkgutil

    for package in ("dermx", "dermx.data", "dermx.data.synth", "dermx.metrics", "dermx.evaluate", "dermx.explain",
                    "dermx.models", "dermx.train", "dermx.predict", "dermx.serve", "dermx.report", "dermx.demo"):
        module = importlib.import_module(package)
        submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
        clashes = [name for name in module.__all__ if name in submodules and name != "vocab"]
        assert not clashes, f"{package}: {clashes}"
