"""A bounded, seeded mutation fuzz of the loader: damage one file of a small synthetic release at a
time (JSON values and structure, CSV cells and columns, raw bytes, mask PNGs) and check that loading
either succeeds with report entries naming files of the release or raises :class:`DermXDBError`
naming one, never a raw exception, and that what loads can be summarised and rasterised."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dermx.data import DermXDBError, load_dermxdb
from dermx.data.summary import summarize

ITERATIONS = 200
TIME_LIMIT_S = 12.0  # a wall-time cap for busy machines: the same seeded mutations, fewer of them
JUNK: tuple[Any, ...] = (None, True, False, 0, -1, 7, 2**40, 1e308, -1e308, float("nan"), float("inf"), "",
                         "x", "Plaque", [], {}, [1], {"x": 1}, [{"x": 1, "y": 2}])
CELL_JUNK: tuple[str, ...] = ("", " ", "x", "-1", "1.5", "NaN", "a;b", "a,b", '"', "\u00e9")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dermx.data.synth import generate

    root = tmp_path_factory.mktemp("fuzz") / "db"
    generate(root, n_images=5, n_raters=3, min_raters=3, size=(40, 48), repeat_fraction=0.4, progress=False)
    assert load_dermxdb(root, strict=True).report.ok
    return root


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Replace, delete or add one value anywhere in the document, or damage its bytes."""
    choice = rng.random()
    if choice < 0.15:
        return _mutate_bytes(data, rng)
    document = json.loads(data)
    node = rng.choice(_containers(document, []))
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if not keys or choice < 0.25:
        key = rng.choice(["name", "tag", "x", "path", "bounding_box", "attributes", "width", "polygon"])
        if isinstance(node, dict):
            node[key] = rng.choice(JUNK)
        else:
            node.append(rng.choice(JUNK))
    elif choice < 0.45:
        del node[rng.choice(keys)]
    else:
        node[rng.choice(keys)] = rng.choice(JUNK)
    return json.dumps(document).encode()


def mutate_csv(data: bytes, rng: random.Random) -> bytes:
    """Blank, replace, drop or add a cell, drop a column, or damage the bytes."""
    choice = rng.random()
    if choice < 0.2:
        return _mutate_bytes(data, rng)
    delimiter = ";" if b";" in data.splitlines()[0] else ","
    rows = [line.split(delimiter) for line in data.decode().splitlines()]
    if choice < 0.35:
        column = rng.randrange(len(rows[0]))
        rows = [r[:column] + r[column + 1:] for r in rows]
    else:
        row = rng.choice(rows)
        cell = rng.randrange(len(row))
        if choice < 0.55:
            del row[cell]
        elif choice < 0.65:
            row.append(rng.choice(CELL_JUNK))
        else:
            row[cell] = rng.choice(CELL_JUNK)
    return ("\n".join(delimiter.join(r) for r in rows) + "\n").encode()


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    choice = rng.random()
    if choice < 0.4:
        return data[:at]
    if choice < 0.8:
        return data[:at] + bytes([rng.choice([0x00, 0x80, 0xC3, 0xE9, 0xFF])]) + data[at:]
    return b""


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    ".json": mutate_json, ".csv": mutate_csv, ".png": _mutate_bytes}


def check_load(root: Path, changed: Path) -> None:
    try:
        db = load_dermxdb(root)
    except DermXDBError as error:  # only unrecoverable input may raise without strict
        assert changed.name in str(error)
        return
    for issue in db.report.issues:
        assert issue.path == root or root in issue.path.parents, issue
    summarize(db)
    for stem in db.stems(with_metadata=False):
        db.rater_stack(stem, size=(8, 8))
    try:
        load_dermxdb(root, strict=True)
    except DermXDBError as error:
        assert not db.report.ok and str(root) in str(error), error
    else:
        assert db.report.ok


def test_mutated_files_give_report_entries_or_the_loaders_error(release: Path) -> None:
    rng = random.Random(15)
    files = sorted([*release.glob("annotations/*.json"), *release.glob("masks/masks/*.png"),
                    *release.glob("folds/*.csv"), release / "metadata.csv"])
    by_kind = {suffix: [p for p in files if p.suffix == suffix] for suffix in MUTATORS}
    weights = {".json": 0.6, ".csv": 0.3, ".png": 0.1}
    start = time.perf_counter()
    done = 0
    while done < ITERATIONS and time.perf_counter() - start < TIME_LIMIT_S:
        suffix = rng.choices(list(weights), list(weights.values()))[0]
        path = rng.choice(by_kind[suffix])
        original = path.read_bytes()
        path.write_bytes(MUTATORS[suffix](original, rng))
        try:
            check_load(release, path)
        except BaseException as error:
            raise AssertionError(f"mutation {done} of {path.name} ({path.read_bytes()[:300]!r}): {error!r}") from error
        finally:
            path.write_bytes(original)
        done += 1
    print(f"{done} mutations in {time.perf_counter() - start:.1f} s")
    assert done > 0
