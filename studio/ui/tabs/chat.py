"""Chat tab: talk to a GLM-4.1V model about images, a video or a PDF, reasoning shown.

Thin by design: the form becomes a :class:`~studio.config.GenerationConfig`, files become
a :class:`~studio.engine.infer.media.TurnMedia`, and :func:`studio.engine.infer.chat.stream` events
become chat messages through :class:`studio.ui.render.TurnView`.

Per-user state lives in a ``gr.State`` (:class:`ChatState`: the conversation, with each
turn's attachments as *file paths*; every request decodes them again within the media
budgets, so nothing decoded outlives a request). Stop is a ``threading.Event`` per request, registered under
the browser session's ``session_hash`` in a dict owned by this tab instance (not a
module global, not ``cancels=``): the engine's stopping criterion checks it after every
token. Every handler that runs the model shares ``GPU_CONCURRENCY_ID``; the estimate and
the check before a send share ``MEDIA_CONCURRENCY_ID``. The adapter value goes through
:func:`studio.ui.public.resolve_adapter` (public mode: only adapters inside the runs
folder), and it is injected and switched on only under the model's generation lock
(:func:`studio.engine.infer.compare.adapter_session`). On a ZeroGPU Space the send and
regenerate handlers are wrapped with ``spaces.GPU`` (:mod:`studio.ui.zerogpu`).

API names (for ``gradio_client``): ``/chat`` (send a message, streams), ``/stop``,
``/regenerate``, ``/clear``, ``/estimate``.
"""

# No `from __future__ import annotations` here: gradio finds the `gr.Request` parameter by
# its evaluated annotation.
import logging
import threading
import time
from pathlib import Path

from studio.config import GenerationConfig, ModelSpec
from studio.engine.infer import chat as engine
from studio.engine.infer import family as family_mod
from studio.engine.infer import media as media_mod
from studio.errors import InputError, StudioError
from studio.ui import public, render, zerogpu
from studio.ui.context import AppContext
from studio.ui.tabs.chat_examples import examples as _examples
from studio.ui.tabs.chat_state import (  # noqa: F401 - the tab's helpers, importable from here as before
    MAX_NEW_SLIDER, ChatState, Round, _files_of, _user_display, _text_of, follow_checkpoint, gen_config, model_status,
    duration_of_regenerate, duration_of_send, prepare_media, sampling_defaults, thinking_arg, thinking_switch)
from studio.ui.i18n import error_text, gr_error, t, tr, user_error

log = logging.getLogger(__name__)

#: The embedded-model notice as the page carries it: a catalog marker (``chat.embedded_notice``)
#: the browser shows in the user's language.
EMBEDDED_NOTICE = str(t("chat.embedded_notice"))
#: File suffixes the upload box accepts (from the media module's rules).
FILE_TYPES = list(media_mod.IMAGE_EXTS + media_mod.VIDEO_EXTS + media_mod.PDF_EXTS)
#: An empty MultimodalTextbox value (None would leave the component in a broken state).
EMPTY_BOX = {"text": "", "files": []}
#: Dropdown value meaning "the base model, no adapter".
NO_ADAPTER = "none (base model)"
#: Seconds between UI refreshes while tokens stream (fewer, larger updates are cheaper).
REFRESH_S = 0.05
SAMPLE_DATA = Path(__file__).resolve().parents[3] / "sample_data"
#: The chat's height follows the window (CSS), so that on a laptop screen (1280×720) the
#: whole first view — chat, input box, buttons — fits without scrolling, and the input's
#: autofocus does not scroll the page (and the examples beside the chat) away; 38 px of it
#: go to the model/adapter status line above the chat (one line and the column's gap).
CHAT_HEIGHT = "clamp(300px, calc(100vh - 418px), 640px)"
#: Page CSS this tab needs (collected by ``studio.commands.ui.launch``): keep media in the
#: chat small enough that a question, its thinking, answer and boxed image fit on screen; a
#: boxed image in a reply is at most the chat's height less ~120 px (the icon rows, the bubble), so when the chat scrolls to
#: its bottom after a reply the whole image — a box near its top too — is in view (1280×720).
#: The chat's trash/copy icons get a row of their own above the messages: drawn over them
#: (gradio's absolute position) they covered the top message once the chat had scrolled.
#: Page-wide: a disabled Start (primary) or Stop button reads grey, not a faded orange/pink
#: that looks clickable (the SFT/RL job panels, Compare, Chat).
CSS = """
#chatbot .user-row img, #chatbot .user-row video { max-height: 220px; width: auto; }
#chatbot .bot-row img { max-height: clamp(160px, calc(100vh - 540px), 420px); width: auto; }
#chat-examples img, #chat-examples video { max-height: 72px; width: auto; }
#chat-model-status .html-container { padding: 0 2px; }
#chat-model-status .chat-model-status { font-size: var(--text-md); color: var(--body-text-color-subdued);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; line-height: 1.5; }
#chat-model-status b { color: var(--body-text-color); }
#chatbot .bubble-wrap { padding-top: 40px; }
#chatbot .icon-button-wrapper.top-panel { position: static; margin: 2px 4px 2px auto; width: fit-content; }
#model-loading p::before { content: ""; display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.45em;
  vertical-align: -0.12em; border: 2px solid currentColor; border-right-color: transparent; border-radius: 50%;
  animation: studio-spin 0.8s linear infinite; }
@keyframes studio-spin { to { transform: rotate(360deg); } }
button.stop:disabled, button.stop[disabled], button.primary:disabled, button.primary[disabled] {
  background: var(--button-secondary-background-fill); color: var(--body-text-color-subdued);
  border-color: var(--button-secondary-border-color); opacity: 0.7; cursor: not-allowed; }
"""


def adapter_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """The adapter dropdown's choices: "none", then run names (values relative to the runs
    folder; no server path reaches the page)."""
    return [(t("chat.no_adapter"), NO_ADAPTER)] + public.adapter_choices(ctx, ctx.extra.get("chat_adapter"))


def build(ctx: AppContext) -> None:
    """Add the Chat tab's components and events to the current ``gr.Blocks``."""
    import gradio as gr

    from studio.engine.infer.compare import adapter_session, check_adapter
    from studio.engine.infer.media import trim
    from studio.engine.infer.models import is_embedded, resolve
    from studio.ui.app import GPU_CONCURRENCY_ID, MEDIA_CONCURRENCY_ID, MEDIA_CONCURRENCY_LIMIT

    stops: dict[str, threading.Event] = {}     # session_hash → stop event of its running request
    queued: dict[str, threading.Event] = {}    # session_hash → stop event of a request not started yet
    stops_lock = threading.Lock()
    from studio.ui.epochs import Epochs, guarded

    epochs = Epochs()  # session_hash → its Clear count: a request from before a Clear never redraws the chat

    def _err(e: BaseException | str):
        """gr.Error for a refusal; in public mode the runs folder's path becomes ``runs``."""
        return gr_error(public.scrub(ctx, str(e)))

    def base_model():
        """(model, processor) of the app's model from the shared registry. An adapter is
        injected into these *shared* weights (as Compare does) and switched on only inside
        :func:`adapter_session` while a request generates — never a second base copy."""
        spec = ModelSpec.from_dict(ctx.model.to_dict())
        spec.adapter = None
        try:
            return ctx.registry.get(spec)
        except StudioError as e:
            raise _err(e) from None

    from studio.engine.infer.models import checkpoint_family, is_workshop

    try:
        embedded = ctx.is_embedded or is_embedded(resolve(ctx.model.name_or_path))
        workshop = is_workshop(resolve(ctx.model.name_or_path))
    except StudioError:
        embedded, workshop = ctx.is_embedded, False
    # read from the checkpoint's files now (no weights); a hub id not downloaded yet is
    # read when its load finishes (loading_state)
    built_family = checkpoint_family(ctx.model.name_or_path)

    def loading_state():
        """(banner update, timer update, *slider and switch updates): the model's load
        progress until it is ready; then the checkpoint's defaults (:func:`follow_checkpoint`)."""
        spec = ModelSpec.from_dict(ctx.model.to_dict())
        spec.adapter = None
        st = ctx.registry.status(spec)
        unchanged = [gr.skip()] * 6
        if st is None or st.ready:
            item = ctx.registry.peek(spec)
            follow = unchanged if item is None else follow_checkpoint(built_family, family_mod.of(item[1], item[0]))
            return gr.update(value="", visible=False), gr.Timer(active=False), *follow
        name = render.escape(st.name)
        if st.phase == "failed":
            return (gr.update(value=tr("chat.load_failed", name=name, error=render.escape(st.error)), visible=True),
                    gr.Timer(active=False), *unchanged)
        return (gr.update(value=tr("chat.loading", name=name, phase=render.escape(st.phase), s=f"{st.seconds:.0f}"),
                          visible=True), gr.Timer(active=True), *unchanged)

    # ---------------------------------------------------------------- layout
    loading_md = gr.Markdown("", visible=False, elem_id="model-loading")
    loading_timer = gr.Timer(0.5, active=True)
    if embedded:
        gr.Markdown(f"> ⚠️ **{EMBEDDED_NOTICE}**", elem_id="embedded-notice")
    elif workshop:
        gr.Markdown(t("chat.workshop_notice"), elem_id="embedded-notice")
    with gr.Row():
        with gr.Column(scale=4):
            # which model and adapter the next message runs with, without opening *Model*
            handed = ctx.extra.get("chat_adapter")
            first = public.adapter_key(ctx, handed) if handed and not ctx.public else NO_ADAPTER
            status_html = gr.HTML(model_status(ctx, first), elem_id="chat-model-status", padding=False)
            chatbot = gr.Chatbot(
                label=t("tab.chat"), height=CHAT_HEIGHT, sanitize_html=True, render_markdown=True,
                allow_tags=False, group_consecutive_messages=False, elem_id="chatbot",
                feedback_options=None, buttons=["copy", "copy_all"],
                placeholder=t("chat.placeholder"),
            )
            box = gr.MultimodalTextbox(
                file_types=FILE_TYPES, file_count="multiple", sources=["upload"], elem_id="chat-input",
                placeholder=t("chat.box_placeholder"),
                show_label=False, autofocus=True,
            )
            estimate_md = gr.Markdown("", elem_id="visual-estimate")
            with gr.Row():
                # grey and disabled while nothing runs; red while a request is queued or running
                stop_btn = gr.Button(t("common.stop"), variant="secondary", interactive=False, elem_id="stop-btn",
                                     scale=1, size="md")
                regen_btn = gr.Button(t("chat.regenerate"), elem_id="regen-btn", scale=1, size="md")
                clear_btn = gr.Button(t("chat.clear"), elem_id="clear-btn", scale=1, size="md")
            stats_md = gr.Markdown("", elem_id="chat-stats")
        with gr.Column(scale=2, min_width=260):
            # First in the side column: a newcomer sees what to try without scrolling.
            examples = _examples(workshop)
            if examples:
                gr.Examples(examples=examples, inputs=[box], label=t("chat.examples"), elem_id="chat-examples")
            system = gr.Textbox("", label=t("chat.system"), lines=2, placeholder=t("chat.optional"))
            with gr.Accordion(t("cmp.model"), open=False):
                gr.Markdown(t("chat.model_md") + f" `{render.escape(public.model_label(ctx, ctx.model.name_or_path))}`")
                adapter = gr.Dropdown(
                    choices=adapter_choices(ctx), value=first,
                    label=t("cmp.adapter"), allow_custom_value=True, info=t("chat.adapter_info"),
                )
                refresh_btn = gr.Button(t("chat.find_adapters"), size="sm")
            d = sampling_defaults(built_family)
            with gr.Accordion(t("chat.sampling"), open=False, elem_id="sampling"):
                temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label=t("common.temperature"))
                top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.05, label=t("common.top_p"))
                top_k = gr.Slider(0, 100, value=d.top_k, step=1, label=t("common.top_k"))
                rep = gr.Slider(0.5, 2, value=d.repetition_penalty, step=0.05, label=t("chat.rep"))
                max_new = gr.Slider(1, max(MAX_NEW_SLIDER, d.max_new_tokens), value=d.max_new_tokens, step=1,
                                    label=t("chat.max_new"), elem_id="max-new-tokens")
            with gr.Accordion(t("chat.thinking_acc"), open=False, elem_id="chat-thinking-acc"):
                thinking = gr.Checkbox(label=t("chat.thinking"), elem_id="chat-thinking",
                                       **thinking_switch(built_family))
                think_budget = gr.Number(value=d.thinking_budget, precision=0, minimum=0,
                                         label=t("chat.think_budget"), info=t("chat.think_budget_info"))
                answer_budget = gr.Number(value=d.answer_budget, precision=0, minimum=1,
                                          label=t("chat.answer_budget"))
            with gr.Accordion(t("chat.video"), open=False):
                fps = gr.Slider(0.5, 10, value=d.video_fps, step=0.5, label=t("chat.fps"))
                max_frames = gr.Slider(2, 64, value=d.max_frames, step=2, label=t("chat.max_frames"))
    state = gr.State(None)
    loading_timer.tick(loading_state, None, [loading_md, loading_timer, temperature, top_p, top_k, rep, max_new,
                                             thinking], queue=False, show_progress="hidden")
    settings = [system, temperature, top_p, top_k, rep, max_new, think_budget, answer_budget,
                fps, max_frames, adapter, thinking]

    # ---------------------------------------------------------------- handlers
    def _key(request) -> str:
        return getattr(request, "session_hash", None) or f"anon-{id(request)}"

    def _queue_stop(request) -> None:
        """A page request passed its checks and waits for the GPU: give it its stop event
        now, so Stop works while it is still queued behind another user's request."""
        from studio.ui.components import queue_stop

        key = _key(request)
        queue_stop(key, queued, stops_lock).epoch = epochs.current(key)  # type: ignore[attr-defined]

    def _take_stop(request) -> threading.Event:
        """The stop event of the request that starts now (set: Stop or Clear came while it
        waited). It carries the session's epoch from when the request was accepted (the
        check step; now, for an API call), so :func:`_guard` knows about a Clear since."""
        key = _key(request)
        with stops_lock:
            ev = queued.pop(key, None)
        if ev is None:
            ev = threading.Event()
            ev.epoch = epochs.current(key)  # type: ignore[attr-defined]
        return ev

    def _guard(request, ev: threading.Event, updates):
        """``updates`` (a handler's generator) while no Clear came after ``ev``'s request was
        accepted; nothing after one (:func:`studio.ui.epochs.guarded`)."""
        return guarded(updates, epochs, _key(request), getattr(ev, "epoch", 0))

    def _register(request, ev: threading.Event) -> tuple[str, threading.Event]:
        key = _key(request)
        with stops_lock:
            old = stops.get(key)
            if old is not None and old is not ev:
                old.set()
            stops[key] = ev
        return key, ev

    def _unregister(key: str, ev: threading.Event) -> None:
        with stops_lock:
            if stops.get(key) is ev:
                del stops[key]
        ev.finished = True  # type: ignore[attr-defined]

    def _run(st: ChatState, idx: int, system_, gen: GenerationConfig, folder: str | None, thinking_, request,
             restore, ev: threading.Event, media=None):
        """Generate the reply of round ``idx``; yields (chatbot, box, state, stats). ``folder``
        is the adapter (resolved by the boundary) or None; ``ev`` this request's stop event;
        ``thinking_`` the Thinking switch; ``media`` round ``idx``'s attachments if the
        caller decoded them already (the others are decoded from their paths here)."""
        rnd = st.rounds[idx]
        model, processor = base_model()
        try:
            history = st.history(idx + 1, decoded={idx: media} if media is not None else None)
            if history[-1].role == "assistant":  # regenerate: the reply being replaced is not context
                history.pop()
            think = thinking_arg(family_mod.of(processor, model), thinking_ is not False)
            inputs = engine.build_inputs(processor, history, system_, thinking=think)
            limit = engine.context_limit(model)
            n = int(inputs["input_ids"].shape[1])
            if n >= limit:
                raise InputError(tr("chat.too_long", n=f"{n:,}", limit=f"{limit:,}"))
        except StudioError as e:
            raise _err(e) from None
        last_media = history[-1].media
        image = last_media.images[0] if last_media is not None and last_media.images else None
        del media, last_media
        view = render.TurnView(image=image)
        previous = (rnd.reply, rnd.reply_msgs)
        rnd.reply, rnd.reply_msgs = None, []

        def undo():
            if restore is None:  # regenerate: keep the round and its earlier reply
                rnd.reply, rnd.reply_msgs = previous
            else:
                del st.rounds[idx:]
        del history  # the decoded attachments live on in ``inputs`` only
        key, ev = _register(request, ev)
        # The adapter is injected and switched on under the model's generation lock, and
        # off again when the stream ends (the with-block exits after events.close() has
        # joined the worker thread): no other request can change it meanwhile.
        try:
            session = adapter_session(model, folder)
            session.__enter__()
        except StudioError as e:
            _unregister(key, ev)
            undo()
            raise _err(e) from None
        try:
            yield from _stream(st, rnd, view, model, processor, gen, system_, ev, inputs, think, restore, undo)
        finally:
            session.__exit__(None, None, None)  # adapter off, lock released
            _unregister(key, ev)

    def _stream(st, rnd, view, model, processor, gen, system_, ev, inputs, think, restore, undo):
        """The streaming part of :func:`_run` (inside the adapter session)."""
        events = engine.stream(model, processor, [], gen, system=system_, stop=ev,
                               inputs=inputs, logits_processor=_extra_processors(), thinking=think)
        last = 0.0
        try:
            # send: the message left the box; regenerate: leave whatever the user is typing
            yield st.chatbot(), EMPTY_BOX if restore is not None else gr.skip(), st, tr("cmp.generating")
            for event in events:
                view.apply(event)
                now = time.perf_counter()
                if isinstance(event, engine.Done) or now - last >= REFRESH_S:
                    last = now
                    rnd.reply_msgs = view.messages()
                    stats = render.stats_line(event.stats) if isinstance(event, engine.Done) else tr("cmp.generating")
                    if isinstance(event, engine.Done):
                        rnd.reply, rnd.stats = event.text, event.stats
                    yield st.chatbot(), gr.skip(), st, stats
        except StudioError as e:
            undo()
            yield st.chatbot(), gr.skip() if restore is None else restore, st, ""
            raise _err(e) from None
        except gr.Error:
            raise
        except Exception as e:  # a bug, not user input: log it, show one line, keep the app alive
            log.exception("chat generation failed")
            undo()
            yield st.chatbot(), gr.skip() if restore is None else restore, st, ""
            raise user_error(tr("chat.failed", kind=type(e).__name__, msg=str(e).splitlines()[0] if str(e) else "")) from None
        finally:
            events.close()  # a closed browser tab / cancelled event stops the worker thread too

    def _extra_processors():
        factory = ctx.extra.get("chat_logits_processors")
        return list(factory()) if callable(factory) else None

    def _validated(text, files, st, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_, fps_,
                   max_frames_, adapter_):
        """(GenerationConfig, TurnMedia | None, adapter folder | None) for a message, or a
        StudioError saying what to change. The adapter goes through the public-mode
        boundary (:func:`studio.ui.public.resolve_adapter`) before the media are decoded."""
        gen = gen_config(temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_, fps_, max_frames_)
        if not text.strip() and not files:
            raise InputError(tr("chat.need_message"))
        if st.missing_files():
            raise InputError(tr("chat.media_expired"))
        if len(text) > engine.MAX_PROMPT_CHARS:
            raise InputError(tr("chat.too_many_chars", n=f"{len(text):,}", limit=f"{engine.MAX_PROMPT_CHARS:,}"))
        folder = public.resolve_adapter(ctx, adapter_)
        media = prepare_media(st, files, gen.video_fps, gen.max_frames) if files else None
        return gen, media, folder

    def check(message, st, system_, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_,
              fps_, max_frames_, adapter_, thinking_, request: gr.Request):
        """First step of a send from the page: the same checks as ``send`` plus the context
        length, with no visible output, so a refusal is a toast and never covers the chat
        or the user's draft (an error on an event's outputs would). A message that passes
        gets its stop event here, before it waits for the GPU.

        The adapter is only *read* here (:func:`check_adapter`: its shapes against the
        model); injecting it changes the shared weights, which happens under the
        generation lock when the message is sent."""
        st = st if isinstance(st, ChatState) else ChatState()
        text, files = _text_of(message), _files_of(message)
        try:
            _, media, folder = _validated(text, files, st, temperature_, top_p_, top_k_, rep_, max_new_, think_,
                                          answer_, fps_, max_frames_, adapter_)
            model, processor = base_model()
            if folder:
                check_adapter(model, folder)
            think = thinking_arg(family_mod.of(processor, model), thinking_ is not False)
            history = st.history(len(st.rounds), extra=1 if files else 0) + [engine.ChatTurn("user", text, media)]
            n = int(engine.build_inputs(processor, history, system_, thinking=think)["input_ids"].shape[1])
            del media, history
            limit = engine.context_limit(model)
            if n >= limit:
                raise InputError(tr("chat.too_long", n=f"{n:,}", limit=f"{limit:,}"))
        except StudioError as e:
            raise _err(e) from None
        finally:
            trim()
        _queue_stop(request)
        return st

    def send(message, st, system_, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_,
             fps_, max_frames_, adapter_, thinking_, request: gr.Request):
        """Send the box's text + files; stream the reply."""
        ev = _take_stop(request)
        yield from _guard(request, ev, _send(message, st, system_, temperature_, top_p_, top_k_, rep_, max_new_,
                                             think_, answer_, fps_, max_frames_, adapter_, thinking_, request, ev))

    def _send(message, st, system_, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_,
              fps_, max_frames_, adapter_, thinking_, request, ev):
        """The body of :func:`send` (under its Clear guard)."""
        st = st if isinstance(st, ChatState) else ChatState()
        if ev.is_set():  # stopped while queued: nothing generated, the draft stays in the box
            yield st.chatbot(), gr.skip(), st, tr("chat.stopped_queued")
            return
        text, files = _text_of(message), _files_of(message)
        try:
            gen, media, folder = _validated(text, files, st, temperature_, top_p_, top_k_, rep_, max_new_, think_,
                                            answer_, fps_, max_frames_, adapter_)
        except StudioError as e:
            raise _err(e) from None
        turn = engine.ChatTurn("user", text, None)
        st.rounds.append(Round(user=turn, user_msgs=_user_display(text, media), files=list(files),
                               fps=gen.video_fps, max_frames=gen.max_frames))
        restore = {"text": text, "files": files}
        try:
            yield from _run(st, len(st.rounds) - 1, system_, gen, folder, thinking_, request, restore, ev, media)
        except gr.Error:
            if st.rounds and st.rounds[-1].user is turn and st.rounds[-1].reply is None:
                st.rounds.pop()
            raise
        finally:
            trim()

    def regenerate(st, system_, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_,
                   fps_, max_frames_, adapter_, thinking_, request: gr.Request):
        """Drop the last reply and generate it again (same user message)."""
        ev = _take_stop(request)
        yield from _guard(request, ev, _regenerate(st, system_, temperature_, top_p_, top_k_, rep_, max_new_,
                                                   think_, answer_, fps_, max_frames_, adapter_, thinking_,
                                                   request, ev))

    def _regenerate(st, system_, temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_,
                    fps_, max_frames_, adapter_, thinking_, request, ev):
        """The body of :func:`regenerate` (under its Clear guard)."""
        if ev.is_set():
            yield gr.skip(), gr.skip(), st, tr("chat.stopped_queued")
            return
        if not isinstance(st, ChatState) or not st.rounds:
            raise user_error(tr("chat.nothing_to_regenerate"))
        try:
            gen = gen_config(temperature_, top_p_, top_k_, rep_, max_new_, think_, answer_, fps_, max_frames_)
            folder = public.resolve_adapter(ctx, adapter_)
            if st.missing_files():
                raise InputError(tr("chat.media_expired"))
        except StudioError as e:
            raise _err(e) from None
        try:
            yield from _run(st, len(st.rounds) - 1, system_, gen, folder, thinking_, request, None, ev)
        finally:
            trim()

    def stop(request: gr.Request):
        """Stop this session's request: a running one ends within one token, a queued one
        will not start. Waits (≤ 3 s) for the running one to finish, so the status line is
        the generator's last word ("… · stopped"), never a late "Stopping…" over it."""
        from studio.ui.components import stop_request

        msg = stop_request(_key(request), stops, queued, stops_lock)
        return gr.skip() if msg is None else msg

    def clear(request: gr.Request):
        """Empty the chat and stop this session's generation.

        First the session's epoch moves on: from then on its running or queued request
        yields nothing (:func:`_guard`), so no update of the old conversation can arrive
        after the empty chat, however the two are timed. Then its stop event is set and
        the request waited for (≤ 3 s): gradio asks a generator for its next update only
        after sending the previous one, so once it has finished, every update it made
        before the Clear is already out, ahead of this reply."""
        from studio.ui.components import wait_finished

        key = _key(request)
        epochs.bump(key)
        with stops_lock:  # a queued request's event stays in `queued`: it must start, see it set, and end
            ev, waiting = stops.get(key), queued.get(key)
        if waiting is not None:
            waiting.set()
        if ev is not None:
            ev.set()
            wait_finished(ev)
        return [], EMPTY_BOX, ChatState(), "", ""

    def estimate(message, st, fps_, max_frames_):
        """Decode the attached files and show the visual-token estimate before sending.

        Reads the chat state (the turn's share of the media budget) but never writes it: an
        estimate still running when Clear empties the chat (it runs on every change of the
        box, Clear's included) once wrote its old copy of the conversation back, and the next
        message brought the cleared turns back."""
        st = st if isinstance(st, ChatState) else ChatState()
        files = _files_of(message)
        if not files:
            return ""
        try:
            media = prepare_media(st, files, fps_, max_frames_)
            _, processor = base_model()
            n = media_mod.estimate_visual_tokens(media, processor)
            k = len(media.images)
            if media.kind == "image":
                what = tr("chat.what_images" if k != 1 else "chat.what_image", n=k)
            elif media.kind == "pdf":
                what = tr("chat.what_pdf_pages" if k != 1 else "chat.what_pdf_page", n=k)
            elif media.kind == "video":
                what = (tr("chat.what_video_frames", n=media.video.frames.shape[0]) if media.video is not None
                        else tr("chat.what_video"))
            else:
                what = media.kind
            del media
        except StudioError as e:  # shown inline only: this runs on every keystroke
            return f"⚠️ {render.escape(error_text(public.scrub(ctx, str(e))))}"
        finally:
            trim()
        return tr("chat.visual_tokens" if n != 1 else "chat.visual_token", n=f"{n:,}", what=what)

    def refresh_adapters(current):
        choices = adapter_choices(ctx)
        values = [v for _, v in choices]
        value = current if current in values else NO_ADAPTER
        tried = ctx.extra.get("chat_adapter")
        if tried and not ctx.public and ctx.extra.get("_chat_adapter_seen") != tried:
            ctx.extra["_chat_adapter_seen"] = tried
            value = public.adapter_key(ctx, tried)
        return gr.update(choices=choices, value=value)

    # ---------------------------------------------------------------- events
    outs = [chatbot, box, state, stats_md]
    # The page checks first (refusals are toasts, the chat and the draft stay usable), then
    # streams; API clients call /chat directly, which runs the same checks itself.
    # Stop turns red (and clickable) once a request is accepted, grey when it has ended.
    def stop_active():
        return gr.update(variant="stop", interactive=True)

    def stop_idle():
        return gr.update(variant="secondary", interactive=False)

    def queue_regen(request: gr.Request):
        _queue_stop(request)
        return stop_active()

    # ZeroGPU: the GPU handlers ask for a GPU for as long as their max new tokens need
    send_gpu = zerogpu.gpu(send, duration=duration_of_send)
    regen_gpu = zerogpu.gpu(regenerate, duration=duration_of_regenerate)
    send_ev = box.submit(check, [box, state] + settings, [state], api_name=False,
                         concurrency_id=MEDIA_CONCURRENCY_ID, concurrency_limit=MEDIA_CONCURRENCY_LIMIT,
                         show_progress="hidden").success(
        stop_active, None, [stop_btn], api_name=False, queue=False).success(
        send_gpu, [box, state] + settings, outs, api_name="chat",
        concurrency_id=GPU_CONCURRENCY_ID, concurrency_limit=1)
    send_ev.then(stop_idle, None, [stop_btn], api_name=False, queue=False)
    regen_ev = regen_btn.click(queue_regen, None, [stop_btn], api_name=False, queue=False).success(
        regen_gpu, [state] + settings, outs, api_name="regenerate",
        concurrency_id=GPU_CONCURRENCY_ID, concurrency_limit=1)
    regen_ev.then(stop_idle, None, [stop_btn], api_name=False, queue=False)
    stop_btn.click(stop, None, [stats_md], api_name="stop", concurrency_limit=None, queue=False)

    def retranslate(st):
        """After a language switch: the chat's Thinking titles and the stats line in the new language."""
        if not isinstance(st, ChatState) or not st.rounds:
            return gr.skip(), gr.skip(), gr.skip()
        for r in st.rounds:
            r.reply_msgs = render.retitle(r.reply_msgs)
        last = st.rounds[-1].stats
        return st.chatbot(), st, render.stats_line(last) if last is not None else gr.skip()

    ctx.extra.setdefault("retranslate", []).append((retranslate, [state], [chatbot, state, stats_md]))
    # Clear also cancels the streaming event (gradio closes the generator); the epoch (see
    # `clear`) is what makes sure that none of its updates comes after the empty chat.
    clear_btn.click(clear, None, [chatbot, box, state, stats_md, estimate_md], api_name="clear",
                    concurrency_limit=None, cancels=[send_ev, regen_ev])
    box.change(estimate, [box, state, fps, max_frames], [estimate_md], api_name="estimate",
               concurrency_id=MEDIA_CONCURRENCY_ID, concurrency_limit=MEDIA_CONCURRENCY_LIMIT,
               show_progress="hidden", trigger_mode="always_last")
    refresh_btn.click(refresh_adapters, [adapter], [adapter], api_name=False, queue=False)
    # a pick in the accordion, "Try it in Chat" (refresh_adapters on tab select) and Find adapters
    # all change the dropdown's value; the status line above the chat follows it
    show_status = lambda value: model_status(ctx, value)  # noqa: E731
    adapter.change(show_status, [adapter], [status_html], api_name=False, queue=False, show_progress="hidden")
    ctx.extra["retranslate"].append((show_status, [adapter], [status_html]))
    from gradio.context import Context

    if Context.root_block is not None:  # the first line in the visitor's language, with the handed-over adapter
        Context.root_block.load(show_status, [adapter], [status_html], api_name=False, queue=False,
                                show_progress="hidden")
    adapter.focus(refresh_adapters, [adapter], [adapter], api_name=False, queue=False)
    from studio.ui.components import on_tab_shown

    on_tab_shown([(refresh_adapters, [adapter], [adapter])])  # "Try it" from SFT/RL lands here
