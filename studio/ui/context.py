"""AppContext: what every tab receives. No module-level globals hold models or jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import EMBEDDED, ModelSpec
from studio.engine.models import ModelRegistry


@dataclass
class AppContext:
    """Shared state of one app process, passed to each tab's ``build(ctx)``.

    Attributes:
        model: the spec of the model the Chat tab starts with (``--model``).
        registry: loaded models, shared across tabs and users (weights are read-only).
        runs_dir: where SFT/RL run folders go (``runs/`` by default).
        public: public-Space mode (allow-listed models, no training, capped uploads).
        language: UI language code ("en" or "zh").
        extra: free slots for tabs to hand things to each other (e.g. "try it" adapter).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    registry: ModelRegistry = field(default_factory=ModelRegistry)
    runs_dir: Path = field(default_factory=lambda: Path(os.environ.get("STUDIO_RUNS", "runs")))
    public: bool = False
    language: str = "en"
    extra: dict = field(default_factory=dict)

    @property
    def is_embedded(self) -> bool:
        """True when the chat model is the embedded tiny model (random weights)."""
        return self.model.name_or_path in (EMBEDDED, "")
