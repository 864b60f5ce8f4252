"""The import direction of docs/design.md §9, checked on the source with ``ast``: no package imports
from one below it (inside functions too), and no two modules import each other, directly or round a
longer cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import dermx

PACKAGE = Path(dermx.__file__).parent

#: Layer of each top-level part of the package (docs/design.md §9); lower numbers are imported by higher.
LAYERS: dict[str, int] = {
    **dict.fromkeys(("vocab", "vocab_map", "jsonio", "atomic", "text", "_lazy", "geometry", "cli_common",
                     "progress", "choices", "version", "plotting", "compute"), 0),
    **dict.fromkeys(("data", "metrics", "models", "runs", "trust"), 1),
    "explain": 2,
    "train": 3,
    **dict.fromkeys(("evaluate", "predict"), 4),
    **dict.fromkeys(("demo", "serve", "report"), 5),
}
#: The wiring of the ``dermx`` command and package: above every layer.
TOP = {"dermx", "dermx.cli", "dermx.__main__"}


def _is_command(module: str) -> bool:
    """A stage's command module (``<stage>/cli.py``, ``<stage>/<name>_cli.py``): the application layer,
    which composes stages (``dermx evaluate`` renders the report)."""
    last = module.rsplit(".", 1)[-1]
    return last == "cli" or last.endswith("_cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every ``dermx`` module ``path`` imports, at any depth; ``from a import b`` counts as ``a.b`` when
    that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "dermx" or m.startswith("dermx.")}


SOURCES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = set(SOURCES)
GRAPH = {name: _imports(path, name) - {name} for name, path in SOURCES.items()}


def _layer(module: str) -> int | None:
    if module in TOP or _is_command(module):
        return None
    return LAYERS[module.split(".")[1]]


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {m.split(".")[1] for m in MODULES if m not in TOP}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS and to docs/design.md §9"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    upward = sorted(f"{source} imports {target}" for source, targets in GRAPH.items()
                    for target in targets
                    if target in MODULES and _layer(source) is not None
                    and (_layer(target) is None or _layer(target) > _layer(source)))  # type: ignore[operator]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules() -> None:
    """Depth-first search for a back edge; packages' ``__init__`` re-exports are lazy strings, not imports."""
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" → ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt in GRAPH and nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_report_reads_run_folders_without_the_code_that_made_them() -> None:
    """``report`` reads runs through ``dermx.runs`` and never imports ``evaluate``; ``evaluate`` renders the
    report only from its command modules (the application layer)."""
    into_evaluate = sorted(f"{s} imports {t}" for s, targets in GRAPH.items() if s.startswith("dermx.report")
                           for t in targets if t.startswith("dermx.evaluate"))
    into_report = sorted(f"{s} imports {t}" for s, targets in GRAPH.items()
                         if s.startswith("dermx.evaluate") and not _is_command(s)
                         for t in targets if t.startswith("dermx.report"))
    assert not into_evaluate and not into_report, "\n".join(into_evaluate + into_report)


def test_the_command_line_loads_no_torch_to_parse_its_choices() -> None:
    """``dermx --help`` and the closed choices the commands parse (``dermx.choices``, ``dermx.cli_common``)
    import nothing heavy."""
    for module in ("dermx.choices", "dermx.cli_common"):
        assert {t for t in GRAPH[module] if t in MODULES} <= {"dermx.choices", "dermx.text", "dermx"}, module


def test_the_checker_sees_imports_inside_functions() -> None:
    """Guard against a checker that passes because it sees nothing."""
    assert "dermx.report" in {t.rpartition(".")[0] if t.count(".") > 1 else t
                              for t in GRAPH["dermx.evaluate.benchmark_cli"]}
    assert "dermx.geometry" in GRAPH["dermx.explain.images"]
