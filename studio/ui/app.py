"""build_app(ctx) → gr.Blocks with one tab per module in ``TABS``; launch helpers."""

from __future__ import annotations

import functools
import importlib
import logging
from pathlib import Path

from studio.ui import public as public_mod
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
#: Handlers that decode media without the GPU (Chat's estimate and the checks before a
#: send or a comparison) share this id and :data:`MEDIA_CONCURRENCY_LIMIT`; the decoding
#: itself also takes the process-wide slot of :mod:`studio.engine.infer.media.memory`.
MEDIA_CONCURRENCY_ID = "media"
MEDIA_CONCURRENCY_LIMIT = 2
#: Tabs that train; in public mode they show the command and a "duplicate" note.
TRAINING_TABS = public_mod.TRAINING_TABS
#: Upload cap per file in public mode.
PUBLIC_MAX_FILE_SIZE = "25mb"
#: Uploads (and files the app hands out) are deleted every hour once older than 6 hours
#: (gradio's ``delete_cache=(frequency, age)`` in seconds); a chat that still refers to a
#: deleted upload asks to be cleared.
DELETE_CACHE = (3600, 6 * 3600)
#: The whole queue (all visitors); one session may hold :data:`studio.ui.fairness.PER_SESSION`.
QUEUE_MAX_SIZE = 64


#: Folder of the bundled example files (served to the browser for the examples).
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


#: gradio 6.31 ships a ``SourceSansPro-SemiBold.woff2`` of 5 KB that holds only "A", "B" and
#: the space (``IBMPlexMono-SemiBold.woff2``: "a", "b", space); the Regular and Bold files are
#: complete. Every semibold text (buttons, block titles) drew those glyphs in Source Sans and
#: the rest in the fallback font (DejaVu Sans Bold here): Compare's "A is better", "B is
#: better", "Both are bad" read with an odd first letter. Weight 600 takes gradio's complete
#: Bold file instead (the later ``@font-face`` of the same family, weight and style wins). The
#: URLs are relative, like gradio's own ``theme.css``'s, so they hold under a mount path too.
#: Drop this once gradio's files are whole (tests/test_browser_stop_compare.py checks the page).
FONT_CSS = "\n".join(
    f'@font-face {{ font-family: "{family}"; font-weight: 600; font-style: normal; '
    f'src: url("static/fonts/{folder}/{folder}-Bold.woff2") format("woff2"); }}'
    for family, folder in (("Source Sans Pro", "SourceSansPro"), ("IBM Plex Mono", "IBMPlexMono")))


def page_css() -> str:
    """CSS of the page: :data:`FONT_CSS`, then the CSS the tabs ask for (each tab module may
    define a ``CSS`` string; gradio 6 takes CSS in ``launch``)."""
    parts = [FONT_CSS]
    for module, _ in TABS:
        try:
            parts.append(getattr(importlib.import_module(module), "CSS", ""))
        except ModuleNotFoundError:
            continue
    return "\n".join(p for p in parts if p)


def launch_kwargs(ctx: AppContext) -> dict:
    """``demo.launch`` arguments every launcher passes (``studio ui``, Spaces ``app.py``,
    tests): the tabs' CSS, the example files, the upload cap in public mode, and the
    logins (``ctx.auth``) when there are any."""
    kw: dict = {"css": page_css(), "allowed_paths": [str(SAMPLE_DATA)]}
    if ctx.public:
        kw["max_file_size"] = PUBLIC_MAX_FILE_SIZE
    if ctx.auth:
        kw["auth"] = [tuple(a) for a in ctx.auth]
    return kw


def _public_training_notice(label: str) -> None:
    import gradio as gr

    from studio.ui.i18n import t

    kind = label.lower()
    gr.Markdown(t(f"app.public_off_{kind}"))
    # The Hugging Face menu item and the command are the same in every UI language.
    gr.Markdown(
        f"⋮ → *Duplicate this Space*\n\n"
        f"```bash\npip install -e . && studio {kind} --data your_data.jsonl --model zai-org/GLM-4.1V-9B-Base\n```"
    )


@functools.lru_cache(maxsize=1)
def _studio_blocks_class():
    """``gr.Blocks`` whose ``launch`` defaults ``i18n=`` to the studio catalog.

    ``Blocks.launch`` replaces the app's translations with its ``i18n`` argument (None
    when omitted), so every launcher — ``studio ui``, the Spaces ``app.py``, tests calling
    ``demo.launch()`` — gets both languages without passing anything.
    ``gr.mount_gradio_app(app, demo, path)`` keeps the ones set in :func:`build_app`.
    """
    import gradio as gr

    from studio.ui.i18n import gradio_i18n

    class StudioBlocks(gr.Blocks):
        def launch(self, *args, **kwargs):
            if kwargs.get("i18n") is None:
                kwargs["i18n"] = gradio_i18n()
            return super().launch(*args, **kwargs)

    return StudioBlocks


def build_app(ctx: AppContext | None = None):
    """Build the Gradio Blocks app for ``ctx`` (a default context if None).

    The header has the language switch (English / 简体中文, :mod:`studio.ui.i18n`);
    ``ctx.language`` (``"en"``, ``"zh"`` or ``"auto"`` = the browser's) is the default.
    In public mode (``ctx.public``) only Chat and Compare are built
    (:func:`studio.ui.public.built_tabs`). Uploads are deleted after :data:`DELETE_CACHE`;
    one browser session may hold at most :data:`studio.ui.fairness.PER_SESSION` places
    in the queue.
    """
    import gradio as gr

    from studio.ui import i18n

    ctx = ctx or AppContext()
    i18n.set_default(ctx.language)
    with _studio_blocks_class()(title="GLM-4.1V Studio", delete_cache=DELETE_CACHE) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("# GLM-4.1V Studio")
            switch = i18n.language_switch(ctx.language)
        tabs = []
        # public mode: the training tabs are a note and the Runs tab is not there at all —
        # not built, so none of their endpoints exists (studio.ui.public)
        for module, label, build in public_mod.built_tabs(ctx.public, TABS):
            key = f"tab.{label.lower()}"
            if not build:
                with gr.Tab(i18n.t(key), id=label.lower()) as tab:
                    tabs.append((tab, key))
                    _public_training_notice(label)
                continue
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name == module:
                    continue
                raise
            with gr.Tab(i18n.t(key), id=label.lower()) as tab:
                tabs.append((tab, key))
                mod.build(ctx)
        i18n.connect_switch(switch, ctx.language, relabel=tabs, retranslate=ctx.extra.get("retranslate", []))
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX_SIZE)
    from studio.ui.fairness import limit_per_session

    limit_per_session(demo)
    demo.i18n_instance = i18n.gradio_i18n()  # for gr.mount_gradio_app, which keeps it
    return demo
