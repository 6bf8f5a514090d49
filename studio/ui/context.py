"""AppContext: what every tab receives. No module-level globals hold models or jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import EMBEDDED, ModelSpec
from studio.engine.infer.models import ModelRegistry
from studio.ui.public import PUBLIC_MODELS  # noqa: F401 - importable from here as before


@dataclass
class AppContext:
    """Shared state of one app process, passed to each tab's ``build(ctx)``.

    Attributes:
        model: the spec of the model the Chat tab starts with (``--model``).
        registry: loaded models, shared across tabs and users (weights are read-only).
        runs_dir: where SFT/RL run folders go (``runs/`` by default).
        public: public mode (:mod:`studio.ui.public`: Chat and Compare only, allow-listed
            models, adapters from ``runs_dir`` only, capped uploads).
        auth: gradio logins ``[(user, password), …]`` (None: no login); passed to
            ``launch`` by :func:`studio.ui.app.launch_kwargs`.
        language: UI language: ``en``, ``zh`` or ``auto`` (the browser's); the header
            switch changes it per visitor.
        extra: free slots for tabs to hand things to each other (e.g. "try it" adapter).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    registry: ModelRegistry = field(default_factory=ModelRegistry)
    runs_dir: Path = field(default_factory=lambda: Path(os.environ.get("STUDIO_RUNS", "runs")))
    public: bool = False
    auth: list | None = None
    language: str = "auto"
    extra: dict = field(default_factory=dict)

    @property
    def is_embedded(self) -> bool:
        """True when the chat model is the embedded tiny model (random weights)."""
        return self.model.name_or_path in (EMBEDDED, "")

    def check_model_choice(self, name: str) -> str:
        """Return ``name`` if this app may load it; in public mode only the allow-list
        (:func:`studio.ui.public.check_model`).

        Raises:
            InputError: public mode and ``name`` is not allowed.
        """
        from studio.ui.public import check_model

        return check_model(self, name)
