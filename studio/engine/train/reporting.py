"""Where training runs report besides ``metrics.jsonl``: the ecosystem's trackers.

``report_to`` in a run config is a list of ``tensorboard`` (the default; its viewer
reads ``<run>/tb``), ``trackio``, ``wandb`` or ``none``. TensorBoard ships with the
Studio; trackio and wandb are used only when installed — naming one that is not
installed is a config error that says how to install it, rather than a crash deep
inside the Trainer. Source: transformers ``TrainingArguments.report_to`` integrations.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from studio.errors import ConfigError

#: Integration name → the Python package it needs.
REPORT_TO = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}


def available() -> list[str]:
    """Integrations whose package is importable here (tensorboard first)."""
    return [name for name, pkg in REPORT_TO.items() if importlib.util.find_spec(pkg) is not None]


def resolve(names: list[str] | str | None, run_dir: str | Path) -> list[str]:
    """Validate ``report_to`` and point each integration's files at the run folder.

    Returns the list for ``TrainingArguments.report_to`` (``[]`` for none).

    Raises:
        ConfigError: an unknown name, or a known one whose package is not installed.
    """
    if names is None or names == "none":
        return []
    names = [names] if isinstance(names, str) else list(names)
    out = []
    for n in names:
        n = n.strip().lower()
        if n in ("", "none"):
            continue
        if n not in REPORT_TO:
            raise ConfigError(f"`report_to` {n!r} is unknown; choose from {', '.join([*REPORT_TO, 'none'])}.")
        if importlib.util.find_spec(REPORT_TO[n]) is None:
            raise ConfigError(f"`report_to` {n!r} needs the {REPORT_TO[n]} package: pip install {REPORT_TO[n]}, "
                              f"or choose tensorboard / none.")
        out.append(n)
    run = Path(run_dir)
    if "tensorboard" in out:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run / "tb")
    if "wandb" in out:
        os.environ.setdefault("WANDB_DIR", str(run))
        os.environ.setdefault("WANDB_PROJECT", "glm4v-studio")
    if "trackio" in out:
        os.environ.setdefault("TRACKIO_PROJECT", "glm4v-studio")
    return out
