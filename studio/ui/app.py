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
#: Tabs that train; in public-Space mode they show the command and a "duplicate" note.
TRAINING_TABS = ("studio.ui.tabs.sft", "studio.ui.tabs.rl")
#: Upload cap per file in public-Space mode.
PUBLIC_MAX_FILE_SIZE = "25mb"


def launch_kwargs(ctx: AppContext) -> dict:
    """Extra ``demo.launch`` arguments for this context (upload cap in public mode)."""
    return {"max_file_size": PUBLIC_MAX_FILE_SIZE} if ctx.public else {}


def _public_training_notice(label: str) -> None:
    import gradio as gr

    kind = label.lower()
    gr.Markdown(
        f"### {label} is off on this public Space\n"
        f"Training needs a GPU of your own. **Duplicate this Space** to a private GPU Space "
        f"(⋮ menu → *Duplicate this Space*), or run it anywhere with:\n\n"
        f"```bash\npip install -e . && studio {kind} --data your_data.jsonl --model zai-org/GLM-4.1V-9B-Base\n```"
    )


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
                if ctx.public and module in TRAINING_TABS:
                    _public_training_notice(label)
                else:
                    mod.build(ctx)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo
