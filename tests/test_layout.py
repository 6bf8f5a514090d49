"""The layout is the architecture: imports run one way and no file or function grows past a page count.

Reads the source with :mod:`ast` (nothing is imported), so it is fast and cannot be fooled
by lazy imports inside functions: every ``import`` statement anywhere in a file counts.
See docs/ARCHITECTURE.md for the picture these rules enforce.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STUDIO = Path(__file__).resolve().parents[1] / "studio"
ENGINE = STUDIO / "engine"

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 150
MAX_ENGINE_MODULES = 6  # plain modules directly in studio/engine/ (subpackages' __init__ do not count)

#: room → the engine rooms it must never import (infer ← rewards ← workshop ← train).
FORBIDDEN = {
    "infer": ("studio.engine.train", "studio.engine.workshop", "studio.engine.rewards"),
    "rewards": ("studio.engine.workshop", "studio.engine.train"),
    "workshop": ("studio.engine.train",),
}
#: Old flat module names, resolvable for old scripts only: code in studio/ uses the new paths.
OLD_FLAT = ("chat", "compare", "curriculum", "data", "evaluate", "export", "family", "jobs", "media",
            "memplan", "metrics", "models", "reasoning", "reporting", "rl", "runs", "scale", "sft",
            "skill_eval", "tasks", "tiny", "toy_train", "workshop_data")


def _py_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(STUDIO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import statement in ``path`` (``from a import b``
    yields ``a.b`` as well as ``a``, since ``b`` may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_engine_rooms_import_one_way():
    bad = []
    for room, banned in FORBIDDEN.items():
        for path in _py_files(ENGINE / room):
            for line, name in _imports(path):
                if any(_within(name, b) for b in banned):
                    bad.append(f"{path.relative_to(STUDIO.parent)}:{line} imports {name}")
    assert not bad, "imports against the layering (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


def test_engine_never_imports_the_ui():
    bad = [f"{p.relative_to(STUDIO.parent)}:{line} imports {name}"
           for p in _py_files(ENGINE) for line, name in _imports(p)
           if _within(name, "gradio") or _within(name, "studio.ui")]
    assert not bad, "\n".join(bad)


def test_studio_uses_the_new_module_paths():
    old = tuple(f"studio.engine.{m}" for m in OLD_FLAT)
    bad = [f"{p.relative_to(STUDIO.parent)}:{line} imports {name}"
           for p in _py_files(STUDIO) for line, name in _imports(p)
           if any(_within(name, o) for o in old)]
    assert not bad, "use studio.engine.<room>.<module>:\n" + "\n".join(bad)


def test_engine_top_level_stays_small():
    modules = [p.name for p in ENGINE.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_ENGINE_MODULES, modules


@pytest.mark.parametrize("path", _py_files(STUDIO), ids=lambda p: str(p.relative_to(STUDIO)))
def test_file_and_function_sizes(path):
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(STUDIO.parent)} has {lines} lines; split it by idea"
    is_tab = path.parent == STUDIO / "ui" / "tabs"
    long = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES and not (is_tab and node.name == "build"):
                long.append(f"{node.name} (line {node.lineno}): {n} lines")
    assert not long, f"{path.relative_to(STUDIO.parent)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_old_module_paths_still_resolve():
    import importlib

    import studio.engine.rewards.verify  # noqa: F401 - rewards never moved
    for m in OLD_FLAT:
        old = importlib.import_module(f"studio.engine.{m}")
        assert old is importlib.import_module(old.__name__), m
        assert old.__name__ != f"studio.engine.{m}" and old.__spec__.name == old.__name__
