"""build_app(ctx) → gr.Blocks with one tab per module in ``TABS``; launch helpers."""

from __future__ import annotations

import importlib
import logging

from studio.ui.context import AppContext

log = logging.getLogger(__name__)

#: (tab module, label). A module that is not there yet is skipped.
TABS: list[tuple[str, str]] = [
    ("studio.ui.tabs.chat", "Chat"),
    ("studio.ui.tabs.compare", "Compare"),
    ("studio.ui.tabs.sft", "SFT"),
    ("studio.ui.tabs.rl", "RL"),
    ("studio.ui.tabs.runs", "Runs"),
]

#: Every GPU-using handler shares this concurrency id: one GPU, one job at a time.
GPU_CONCURRENCY_ID = "gpu"


def build_app(ctx: AppContext | None = None):
    """Build the Gradio Blocks app for ``ctx`` (a default context if None)."""
    import gradio as gr

    ctx = ctx or AppContext()
    with gr.Blocks(title="GLM-4.1V Studio") as demo:
        gr.Markdown("# GLM-4.1V Studio")
        for module, label in TABS:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name == module:
                    continue
                raise
            with gr.Tab(label, id=label.lower()):
                mod.build(ctx)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo
