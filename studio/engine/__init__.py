"""Headless engine, in three rooms and one shared library (docs/ARCHITECTURE.md draws them):

* :mod:`studio.engine.infer` — families, the embedded model, loading, media, chat, Compare, memory plans;
* :mod:`studio.engine.workshop` — the toy world: synthetic tasks, the toy models' trainer, evaluation;
* :mod:`studio.engine.train` — data, SFT, RL, curriculum, metrics, runs, jobs, export;
* :mod:`studio.engine.rewards` — the answer verifiers (of the engine, imports only infer's tag parser);
* :mod:`studio.engine.fileperm` — file permissions shared by everything that writes weights.

Imports run one way: infer ← rewards ← workshop ← train (``tests/test_layout.py`` enforces it).
Nothing under this package imports gradio or :mod:`studio.ui`.

The modules used to sit flat in this folder; ``studio.engine.<old name>`` (e.g.
``studio.engine.rl``, ``python -m studio.engine.jobs``) still resolves to the module's new
home, as the very same module object, so older scripts and recorded commands keep working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Old flat module name → its room (``studio.engine.<name>`` → ``studio.engine.<room>.<name>``).
MOVED = {
    **dict.fromkeys(("chat", "compare", "family", "media", "memplan", "models", "reasoning", "tiny"), "infer"),
    **dict.fromkeys(("evaluate", "tasks", "toy_train", "workshop_data"), "workshop"),
    **dict.fromkeys(("curriculum", "data", "export", "jobs", "metrics", "reporting", "rl", "runs", "scale",
                     "sft", "skill_eval"), "train"),
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``studio.engine.<old>[.<sub>]`` to the module already at its new path."""

    def __init__(self) -> None:
        self._specs: dict[str, object] = {}

    @staticmethod
    def _new(fullname: str) -> str | None:
        head, _, rest = fullname.partition(".")
        if head != "studio" or not rest.startswith("engine."):
            return None
        parts = rest.split(".")[1:]
        room = MOVED.get(parts[0])
        return ".".join(["studio.engine", room, *parts]) if room else None

    def find_spec(self, fullname, path=None, target=None):
        new = self._new(fullname)
        real = importlib.util.find_spec(new) if new else None
        if real is None:
            return None  # a package keeps its __path__: the import machinery only sets a missing one
        return importlib.util.spec_from_loader(fullname, self, is_package=real.submodule_search_locations is not None)

    def create_module(self, spec):
        module = importlib.import_module(self._new(spec.name))
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._specs[module.__name__]  # the import machinery set the alias's spec

    def get_code(self, fullname):  # ``python -m studio.engine.<old>`` runs the new module's code
        new = self._new(fullname)
        return importlib.util.find_spec(new).loader.get_code(new)


if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
    sys.meta_path.append(_OldPaths())
