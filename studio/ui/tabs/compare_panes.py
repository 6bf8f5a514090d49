"""What Compare's two panes show around the answers: the header above each pane (what the
side is and how it is prompted; whose answers the pane holds when the pickers moved on),
the stats line below it, and the question as the panes show it (the media the model got).

Plain functions of the tab (:mod:`studio.ui.tabs.compare`); no gradio here.
"""

from studio.engine.infer import chat as chat_engine
from studio.engine.infer import compare as engine
from studio.config import EMBEDDED
from studio.ui import public, render
from studio.ui.i18n import t, tr


def stats_line(stats: chat_engine.Stats) -> str:
    """Per-side numbers: TTFT, tokens/s, thinking vs answer tokens, forced answer."""
    parts = [f"TTFT {stats.ttft_s:.2f} s", stats.rate_text,
             render.token_counts(stats, always=True),
             tr("cmp.stat_forced", v=tr("cmp.yes" if stats.forced_answer else "cmp.no"))]
    if stats.truncated:
        parts.append(tr("cmp.stat_cut") if stats.cut_by == "max_new_tokens" else render.cut_note(stats))
    if stats.stopped:
        parts.append(tr("cmp.stat_stopped"))
    return " · ".join(parts)


def catalog_text(key: str, static: bool) -> str:
    """Catalog text: a marker the browser translates (``static``, build time) or the request's language."""
    return str(t(key)) if static else tr(key)


def pane_header(side: str, spec: engine.SideSpec, static: bool = False, shown: str | None = None) -> str:
    """The Markdown above pane ``side``: what ``spec`` is and how it is prompted; when the
    pane holds the answers of another pick (``shown``: that pick's label), a line says whose."""
    if spec.mode == "base":
        style = catalog_text("cmp.head_base", static)
    else:
        style = catalog_text("cmp.head_chat" if spec.thinking else "cmp.head_chat_off", static)
    head = f"### {side} · `{render.escape(spec.label())}`\n{style}"
    if shown and shown != spec.label():
        head += "\n\n" + tr("cmp.head_shown", label=render.escape(shown))
    return head


def picked_spec(model, adapter, mode, thinking=True) -> engine.SideSpec:
    """A side as its pickers hold it, for its header: nothing is checked or read (the plan
    and the comparison check), so the header follows every change at once.

    >>> picked_spec("toy-base", "none", "chat", False).label()
    'toy-base (thinking off)'
    >>> picked_spec("toy-base", "run1/adapter", "base", False).label()
    'toy-base + adapter run1'
    """
    mode = str(mode or "chat")
    a = "" if adapter is None else str(adapter).strip()
    return engine.SideSpec(model=str(model or EMBEDDED).strip() or EMBEDDED,
                           adapter=None if a.lower() in public.NO_ADAPTER_VALUES else a, mode=mode,
                           thinking=thinking is not False or mode == "base")


def user_turn(text: str, media) -> list[dict]:
    """The question as both panes show it: the media as the model gets them (a PDF as its
    first page and a page count), then the text (plain, never HTML)."""
    if media is None or media.kind == "none":
        return render.user_messages(text, [])
    if media.kind == "pdf":
        first = render.image_content(media.images[0]) if media.images else None
        msgs = [render.message("user", first)] if first else []
        n = len(media.images)
        msgs.append(render.message("user", tr("cmp.pdf_pages", n=n) if n != 1 else tr("cmp.pdf_page")))
        if text:
            msgs.append(render.message("user", render.plain_text(text)))
        return msgs
    msgs = render.media_messages(media)  # what the model gets (a GIF named .mp4 is an image)
    if text:
        msgs.append(render.message("user", render.plain_text(text)))
    return msgs
