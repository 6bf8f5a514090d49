"""AppContext: what every tab receives. No module-level globals hold models or jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import BASE_ID, EMBEDDED, FLASH_ID, THINKING_ID, ModelSpec
from studio.errors import InputError
from studio.engine.infer.models import ModelRegistry

#: Models a visitor may pick on a public Space (no server paths, no arbitrary hub ids).
PUBLIC_MODELS = (EMBEDDED, "toy-base", "toy-thinking", THINKING_ID, BASE_ID, FLASH_ID)


@dataclass
class AppContext:
    """Shared state of one app process, passed to each tab's ``build(ctx)``.

    Attributes:
        model: the spec of the model the Chat tab starts with (``--model``).
        registry: loaded models, shared across tabs and users (weights are read-only).
        runs_dir: where SFT/RL run folders go (``runs/`` by default).
        public: public-Space mode (allow-listed models, no training, capped uploads).
        language: UI language: ``en``, ``zh`` or ``auto`` (the browser's); the header
            switch changes it per visitor.
        extra: free slots for tabs to hand things to each other (e.g. "try it" adapter).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    registry: ModelRegistry = field(default_factory=ModelRegistry)
    runs_dir: Path = field(default_factory=lambda: Path(os.environ.get("STUDIO_RUNS", "runs")))
    public: bool = False
    language: str = "auto"
    extra: dict = field(default_factory=dict)

    @property
    def is_embedded(self) -> bool:
        """True when the chat model is the embedded tiny model (random weights)."""
        return self.model.name_or_path in (EMBEDDED, "")

    def check_model_choice(self, name: str) -> str:
        """Return ``name`` if this app may load it; in public mode only the allow-list.

        Raises:
            InputError: public mode and ``name`` is not in :data:`PUBLIC_MODELS`.
        """
        name = (name or EMBEDDED).strip()
        if self.public and name not in PUBLIC_MODELS:
            raise InputError(
                f"This public Space only loads {', '.join(PUBLIC_MODELS)}. "
                f"Duplicate the Space to load other models or local folders."
            )
        return name
