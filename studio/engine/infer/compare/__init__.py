"""Compare: one prompt, two models (A and B), side by side; votes become data.

Why this module: the interesting question about GLM-4.1V-Thinking is what the
reasoning stage changed relative to its Base. Answering it fairly needs (1) honest
prompting — Base is a pretrained model, not a chat model, so it gets a completion-style
prompt without chat roles and no thinking switch; (2) identical sampling settings and
seed on both sides; (3) a memory plan so two 9B models do not OOM half way through
loading; (4) "base + my adapter" running on the *same* loaded weights with the LoRA
layers switched off/on, not a second copy.

Decisions:

* **Prompt styles.** ``"chat"``: the model's chat template (as Chat does), thinking
  budget applies. ``"base"``: ``[gMASK]<sop>`` + optional plain system text + optional
  few-shot ``Question:/Answer:`` pairs + media placeholders + ``Question: …\\nAnswer:``
  (:func:`render_base_prompt`), capped at ``base_max_new_tokens``; generation ends at the
  next ``\\nQuestion:`` (a pretrained model keeps writing Q/A pairs) — a logits processor
  forces end-of-text there and the stop text is cut from the output.
* **Sequential generation** (A, then B), each streamed, each seeded with the same seed
  before its ``generate`` — so a side's greedy output equals running that side alone.
* **Adapters on shared weights.** An adapter side uses the registry's plain model; the
  adapter is injected once with PEFT and its layers are *disabled* except while that
  side generates (``LoraModel.enable_adapter_layers`` / ``disable_adapter_layers`` in a
  ``try/finally``), so the Chat tab, sharing the same weights through the registry,
  never sees the adapter. Before injecting, the adapter's tensor shapes are checked
  against the loaded model: an adapter trained for another base gets a clear
  :class:`~studio.errors.ModelLoadError`.
* **Votes** append one JSON line per comparison to ``<runs>/compare-votes/<session>/
  votes.jsonl`` with the media copied into that folder (PDF pages as PNG images), in the
  row format :func:`studio.engine.train.data.load_rows` reads (the chosen side becomes the SFT
  target; ties and both-bad are skipped there).

Modules: :mod:`.settings` (sides, settings, prompts), :mod:`.adapters`, :mod:`.comparer`
(loading within the memory plan, streaming) and :mod:`.votes`. Everything is importable
from ``studio.engine.infer.compare`` as before.
"""

from __future__ import annotations

from studio.engine.infer import chat, reasoning  # noqa: F401 - module attributes, as when compare was one module
# The package's API, as when compare was one module:
from studio.engine.infer.compare.settings import (  # noqa: F401
    BASE_STOP_STRINGS,
    CompareSettings,
    DEFAULT_BASE_MAX_NEW_TOKENS,
    IMAGE_PLACEHOLDER,
    MODES,
    RANDOM_WEIGHTS_NOTE,
    SIDES,
    SideSpec,
    TOY_BASE,
    TOY_THINKING,
    VIDEO_PLACEHOLDER,
    VOTES,
    VOTE_LABELS,
    build_base_inputs,
    cut_at_stop,
    default_mode,
    default_pair,
    media_placeholders,
    render_base_prompt,
    render_chat_prompt,
    toy_available,
)
from studio.engine.infer.compare.adapters import (  # noqa: F401
    adapter_active,
    adapter_name,
    adapter_session,
    check_adapter,
    generation_lock,
    inject_adapter,
)
from studio.engine.infer.compare.comparer import (  # noqa: F401
    CompareDone,
    CompareResult,
    Comparer,
    SideEvent,
    SideResult,
    SideStart,
)
from studio.engine.infer.compare.votes import (  # noqa: F401
    VoteLog,
    votes_folder,
)

__all__ = [
    "SIDES", "MODES", "VOTES", "VOTE_LABELS", "SideSpec", "CompareSettings", "Comparer", "CompareResult",
    "SideResult", "SideStart", "SideEvent", "CompareDone", "VoteLog", "votes_folder", "render_base_prompt",
    "render_chat_prompt", "build_base_inputs", "check_adapter", "inject_adapter", "adapter_active",
    "adapter_session", "generation_lock",
    "default_pair", "default_mode", "toy_available", "cut_at_stop", "THINKING_ID",
]
