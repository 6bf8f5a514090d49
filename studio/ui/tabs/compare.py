"""Compare tab: one multimodal prompt, two models side by side, votes that become data.

Thin by design: the form becomes :class:`~studio.engine.infer.compare.SideSpec` ×2 and a
:class:`~studio.engine.infer.compare.CompareSettings`; :meth:`Comparer.stream` events become two
chat panes through :class:`studio.ui.render.TurnView` (thinking collapsible, boxes drawn,
model text HTML-escaped). The memory plan is shown before anything loads (without this
machine's free memory in public mode). Votes append to
``<runs>/compare-votes/<date>-<voter id>/votes.jsonl``; the voter id is made on the server
and kept in the visitor's session state, so a visitor's votes and their download
(``votes.zip``, below the votes) hold that visitor's rows only.

Per-user state: the last :class:`~studio.engine.infer.compare.CompareResult` in a ``gr.State``
(its media as file paths only, no decoded pixels); Stop is a per-session
``threading.Event``. The compare handler shares ``GPU_CONCURRENCY_ID`` with every other GPU
handler (and is wrapped with ``spaces.GPU`` on a ZeroGPU Space); the check before it shares
``MEDIA_CONCURRENCY_ID``. Models and adapters go through :mod:`studio.ui.public`.

API names (for ``gradio_client``): ``/compare``, ``/compare_stop``, ``/compare_plan``,
``/vote_a``, ``/vote_b``, ``/vote_tie``, ``/vote_both_bad``.
"""

# No `from __future__ import annotations`: gradio finds `gr.Request` by its evaluated annotation.
import datetime
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from studio.config import BASE_ID, FLASH_ID, EMBEDDED, THINKING_ID, GenerationConfig
from studio.engine.infer import chat as chat_engine
from studio.engine.infer import compare as engine
from studio.errors import InputError, StudioError
from studio.ui import public, render, zerogpu
from studio.ui.context import AppContext
from studio.ui.i18n import error_text, gr_error, t, tr, user_error
from studio.ui.tabs import compare_thread as threads
from studio.ui.tabs.compare_panes import catalog_text, pane_header, picked_spec, stats_line, user_turn

log = logging.getLogger(__name__)

NO_ADAPTER = "none"
MODEL_CHOICES = [engine.TOY_BASE, engine.TOY_THINKING, EMBEDDED, BASE_ID, THINKING_ID, FLASH_ID]
#: (catalog key of the label, mode) of the prompt-style radio.
MODE_CHOICES = [("cmp.mode_base", "base"), ("cmp.mode_chat", "chat")]
REFRESH_S = 0.05


def _files_of(message: Any) -> list[str]:
    files = (message or {}).get("files") or [] if isinstance(message, dict) else []
    return [str(f.get("path") if isinstance(f, dict) else f) for f in files if f]


def _text_of(message: Any) -> str:
    return str(message.get("text") or "") if isinstance(message, dict) else str(message or "")


def parse_few_shot(text: str) -> list[dict]:
    """``"question => answer"`` per line → few-shot examples (InputError on a bad line, or on
    text over the prompt limit, refused before it is split)."""
    if len(text or "") > chat_engine.MAX_PROMPT_CHARS:
        raise InputError(tr("cmp.few_shot_long", n=f"{len(text):,}", limit=f"{chat_engine.MAX_PROMPT_CHARS:,}"))
    out = []
    for i, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        if "=>" not in line:
            raise InputError(tr("cmp.few_shot_form", i=i))
        q, a = line.split("=>", 1)
        if not q.strip() or not a.strip():
            raise InputError(tr("cmp.few_shot_empty", i=i))
        out.append({"question": q.strip(), "answer": a.strip()})
    return out


def _adapter_base(adapter: str) -> str:
    """The model an adapter was trained on (``base_model_name_or_path``); ``embedded``
    for the embedded tiny model's cache folder; ``embedded`` if unreadable."""
    import json

    from studio.engine.infer.models import is_embedded

    try:
        base = json.loads((Path(adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        return "embedded"
    return "embedded" if not base or is_embedded(base) else str(base)


def adapter_choices(ctx: AppContext) -> list:
    """The adapter dropdowns' choices: "none", then run names (values relative to the runs
    folder, resolved on the server by :func:`studio.ui.public.resolve_adapter`)."""
    return [NO_ADAPTER] + public.adapter_choices(ctx, ctx.extra.get("compare_adapter"))


def duration_of_compare(message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_,
                        top_k_, max_new_, think_, base_cap_, *rest, **kw) -> int:
    """ZeroGPU seconds for a comparison: both sides' token caps (a base-style side stops at
    its own cap), :func:`studio.ui.zerogpu.estimate_seconds`."""
    try:
        main, base = int(float(max_new_)), int(float(base_cap_))
    except (TypeError, ValueError):
        return zerogpu.MAX_DURATION_S
    caps = [base if str(mode) == "base" else main for mode in (a_mode, b_mode)]
    return zerogpu.estimate_seconds(sum(caps) // 2 or 1, sides=2)


def check_thinking(letter: str, spec: engine.SideSpec) -> None:
    """Refuse thinking off on side ``letter`` when its checkpoint has no thinking switch
    (GLM-4.1V), read from the checkpoint's files before anything loads. A checkpoint whose
    files are not here yet (a hub id not downloaded) passes; the engine refuses it after
    loading.

    Raises:
        InputError: what to change (switch Thinking back on, or another model).
    """
    from studio.engine.infer.models import checkpoint_family

    if spec.thinking:
        return
    fam = checkpoint_family(spec.model)
    if fam is not None and not fam.thinking_switch:
        raise InputError(tr("cmp.no_switch", side=letter, model=spec.model, family=fam.label))


def parse_seed(value: Any) -> int | None:
    """The Seed box's text as an int; empty means random (``None``).

    >>> parse_seed(""), parse_seed(" 7 "), parse_seed(None)
    (None, 7, None)

    Raises:
        InputError: not a whole number.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        f = float(text)
        if f != int(f):
            raise ValueError
        return int(f)
    except (ValueError, OverflowError):
        raise InputError(tr("cmp.bad_seed", value=text[:40])) from None


def build(ctx: AppContext) -> None:
    """Add the Compare tab's components and events to the current ``gr.Blocks``."""
    import gradio as gr

    from studio.ui.app import GPU_CONCURRENCY_ID
    from studio.ui.tabs.chat import FILE_TYPES

    from studio.engine.infer.media import trim
    from studio.ui.app import MEDIA_CONCURRENCY_ID, MEDIA_CONCURRENCY_LIMIT

    comparer = engine.Comparer(ctx.registry, host_figures=not ctx.public)
    stops: dict[str, threading.Event] = {}    # session_hash → stop event of its running comparison
    queued: dict[str, threading.Event] = {}   # session_hash → stop event of one waiting for the GPU
    stops_lock = threading.Lock()
    da, db, default_note = engine.default_pair()
    d = GenerationConfig()
    adapters = adapter_choices(ctx)
    # public mode: only what this host may load (the server checks again: public.check_model)
    model_choices = [m for m in MODEL_CHOICES if not ctx.public or m in public.allowed_models(ctx)]

    # ---------------------------------------------------------------- layout
    gr.Markdown(t("cmp.intro"), elem_id="compare-intro")
    note_md = gr.Markdown(f"> {render.escape(default_note)}", elem_id="compare-default-note")
    with gr.Row(equal_height=False):
        side_inputs, side_thinking = {}, {}
        for side, dflt in (("A", da), ("B", db)):
            with gr.Column(variant="panel"):
                model = gr.Dropdown(model_choices, value=dflt.model, allow_custom_value=True,
                                    label=t("cmp.model") + f" {side}", info=t("cmp.model_info"),
                                    elem_id=f"cmp-model-{side.lower()}")
                adapter = gr.Dropdown(adapters, value=NO_ADAPTER, allow_custom_value=True,
                                      label=t("cmp.adapter") + f" {side}", info=t("cmp.adapter_info"),
                                      elem_id=f"cmp-adapter-{side.lower()}")
                # the switch beside the prompt style: the panels keep their height, so the
                # input box stays where it was
                with gr.Row(equal_height=False):
                    mode = gr.Radio([(t(k), m) for k, m in MODE_CHOICES], value=dflt.mode,
                                    label=t("cmp.mode") + f" {side}",
                                    elem_id=f"cmp-mode-{side.lower()}", scale=3)
                    side_thinking[side] = gr.Checkbox(dflt.mode != "base", interactive=dflt.mode != "base",
                                                      label=t("cmp.thinking") + f" {side}",
                                                      info=t("cmp.thinking_info"), scale=1, min_width=130,
                                                      elem_id=f"cmp-thinking-{side.lower()}")
                side_inputs[side] = (model, adapter, mode)
    with gr.Row():
        # The plan for the default pair needs torch/transformers (device, configs): computed
        # when a page loads, not while the app is built, so the page is served first.
        plan_on_load: list = []  # filled below; gradio also calls the function once while building
        plan_md = gr.Markdown(lambda: plan_on_load[0]() if plan_on_load else "", elem_id="cmp-plan")
        plan_btn = gr.Button(t("cmp.plan_btn"), scale=0, min_width=140, elem_id="cmp-plan-btn")
    box = gr.MultimodalTextbox(file_types=FILE_TYPES, file_count="multiple", sources=["upload"],
                               placeholder=t("cmp.placeholder"),
                               show_label=False, elem_id="cmp-input")
    with gr.Row():
        run_btn = gr.Button(t("cmp.run"), variant="primary", elem_id="cmp-run")
        # grey and disabled while nothing runs; red while a comparison is queued or running
        stop_btn = gr.Button(t("common.stop"), variant="secondary", interactive=False, elem_id="cmp-stop")
        new_btn = gr.Button(t("cmp.new"), variant="secondary", elem_id="cmp-new")
    gr.Markdown(t("cmp.one_question"), elem_id="cmp-one-question")
    with gr.Accordion(t("cmp.settings_acc"), open=False, elem_id="cmp-settings"):
        with gr.Row():
            temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label=t("common.temperature"))
            top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.05, label=t("common.top_p"))
            top_k = gr.Slider(0, 100, value=d.top_k, step=1, label=t("common.top_k"))
            # a Textbox, not a Number: gr.Number turns "empty" into 0 when it is first shown
            seed = gr.Textbox("", label=t("cmp.seed"), placeholder=t("cmp.seed_ph"), elem_id="cmp-seed")
        with gr.Row():
            max_new = gr.Slider(16, 8192, value=512, step=16, label=t("cmp.max_new"), elem_id="cmp-max-new")
            base_cap = gr.Slider(8, 2048, value=engine.DEFAULT_BASE_MAX_NEW_TOKENS, step=8,
                                 label=t("cmp.base_cap"), elem_id="cmp-base-cap")
            think_budget = gr.Slider(0, 8192, value=0, step=64, label=t("cmp.think_budget"))
        system = gr.Textbox(label=t("cmp.system"), lines=1)
        few_shot = gr.Textbox(label=t("cmp.few_shot"), lines=2, placeholder=t("cmp.few_shot_ph"))
    panes = {}
    with gr.Row(equal_height=True):
        for side, dflt in (("A", da), ("B", db)):
            with gr.Column():
                head = gr.Markdown(pane_header(side, dflt, static=True), elem_id=f"cmp-head-{side.lower()}")
                bot = gr.Chatbot(label=t(f"cmp.side_{side}"), height=440, sanitize_html=True, render_markdown=True,
                                 allow_tags=False, group_consecutive_messages=False,
                                 elem_id=f"cmp-chat-{side.lower()}", show_label=False)
                stats = gr.Markdown("", elem_id=f"cmp-stats-{side.lower()}")
                panes[side] = (head, bot, stats)
    with gr.Row():
        vote_btns = {v: gr.Button(t(f"cmp.vote.{v}"),
                                  elem_id=f"cmp-vote-{v.lower()}") for v in engine.VOTES}
    with gr.Row():
        vote_md = gr.Markdown("", elem_id="cmp-vote-status")
        download = gr.DownloadButton(t("cmp.download"), visible=False, elem_id="cmp-download", scale=0)
    state = gr.State(None)
    sent = gr.State(None)  # the page's message, held while the box is already cleared for the next one
    voter = gr.State(None)  # this visitor's vote folder id, made on the server at the first vote
    shown = gr.State(None)  # (label A, label B) of the pair whose answers the panes hold
    thread = gr.State(None)  # the comparison's turns so far (compare_thread.Thread): what a follow-up continues

    # ---------------------------------------------------------------- helpers
    def _side(letter, model, adapter, mode, thinking=True) -> engine.SideSpec:
        """Side ``letter``'s pickers as a validated SideSpec (InputError says what to change).
        The Thinking switch counts for the chat style only (a base prompt never thinks)."""
        name = public.check_model(ctx, model)
        adapter = public.resolve_adapter(ctx, adapter)
        mode = str(mode or "chat")
        spec = engine.SideSpec(model=name, adapter=adapter, mode=mode, thinking=thinking is not False or mode == "base")
        spec.validate()
        check_thinking(letter, spec)
        return spec

    def _settings(temperature_, top_p_, top_k_, max_new_, think_, base_cap_, seed_, system_, few_) -> engine.CompareSettings:
        gen = GenerationConfig(max_new_tokens=int(max_new_), temperature=float(temperature_), top_p=float(top_p_),
                               top_k=int(top_k_), thinking_budget=int(think_),
                               seed=parse_seed(seed_))
        s = engine.CompareSettings(gen=gen, base_max_new_tokens=int(base_cap_), few_shot=parse_few_shot(few_),
                                   system=(system_ or None))
        s.validate()
        return s

    def _err(e: BaseException | str):
        """gr.Error for a refusal; in public mode the runs folder's path becomes ``runs``."""
        return gr_error(public.scrub(ctx, str(e)))

    def _voter_id(current) -> str:
        """This visitor's vote folder: ``<date>-<random id>``, made here on the server the
        first time and then kept in the session's state (a client cannot choose it)."""
        if isinstance(current, str) and current.startswith("v-"):
            return current
        return f"v-{datetime.date.today():%Y%m%d}-{secrets.token_hex(8)}"

    # ---------------------------------------------------------------- handlers
    def plan(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_=True, b_thinking_=True,
             shown_=None):
        """Show the memory plan for the chosen pair (reads configs only), and the headers."""
        return (_plan(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_, b_thinking_),
                *heads(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_, b_thinking_, shown_))

    def plan_only(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_=True, b_thinking_=True):
        """The memory plan alone (a picker changed: its header is :func:`heads`' already)."""
        return _plan(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_, b_thinking_)

    def heads(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_=True, b_thinking_=True,
              shown_=None):
        """Both pane headers for what the pickers hold now (:func:`picked_spec`); a pane
        that still shows the answers of another pick (``shown_``: the labels of the pair in
        the panes) says whose they are."""
        shown_ = shown_ if isinstance(shown_, (list, tuple)) and len(shown_) == 2 else (None, None)
        return (pane_header("A", picked_spec(a_model, a_adapter, a_mode, a_thinking_), shown=shown_[0]),
                pane_header("B", picked_spec(b_model, b_adapter, b_mode, b_thinking_), shown=shown_[1]))

    def _plan(a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, a_thinking_=True, b_thinking_=True,
              static=False) -> str:
        try:
            a = _side("A", a_model, a_adapter, a_mode, a_thinking_)
            b = _side("B", b_model, b_adapter, b_mode, b_thinking_)
            p = comparer.plan(a, b)
            notes = comparer.notes(a, b)
        except StudioError as e:
            return f"{catalog_text('cmp.not_done', static)} {render.escape(public.scrub(ctx, str(e)))}"
        text = f"{catalog_text('cmp.plan', static)} {render.escape(p.sentence)}"
        if notes:
            text += "\n\n" + "\n\n".join(f"{catalog_text('cmp.note', static)} {render.escape(n)}" for n in notes)
        return text

    def _key(request) -> str:
        return getattr(request, "session_hash", None) or f"anon-{id(request)}"

    def _validated(message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_,
                   top_k_, max_new_, think_, base_cap_, seed_, system_, few_, a_thinking_, b_thinking_, thread_=None):
        """(text, sides, settings, media, plan, earlier) or the StudioError that says what to
        change. ``earlier``: (the thread this question continues or None, each side's history).
        The media are decoded here each time (nothing decoded is kept between requests)."""
        text, files = _text_of(message), _files_of(message)
        a = _side("A", a_model, a_adapter, a_mode, a_thinking_)
        b = _side("B", b_model, b_adapter, b_mode, b_thinking_)
        settings = _settings(temperature_, top_p_, top_k_, max_new_, think_, base_cap_, seed_, system_, few_)
        if not text.strip() and not files:
            raise InputError(tr("cmp.need_question"))
        media = None
        if files:
            from studio.engine.infer.media import prepare_turn_media

            media = prepare_turn_media(files, fps=settings.gen.video_fps, max_frames=settings.gen.max_frames)
        prior = threads.current(thread_, (a.label(), b.label()))
        threads.check_room(prior, text)
        hist = threads.histories(prior, extra_media=1 if files else 0)
        p = comparer.plan(a, b, settings.device)
        return text, a, b, settings, media, p, (prior, hist, files)

    def check(message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_, top_k_,
              max_new_, think_, base_cap_, seed_, system_, few_, a_thinking_, b_thinking_, thread_=None,
              request: gr.Request = None):
        """First step of a comparison from the page: every check ``compare`` makes, with no
        visible output, so a refusal is a toast and nothing on the page moves (an error on
        the comparison's outputs would blank both panes and cover them with "Error").
        A comparison that passes gets its stop event here, before it waits for the GPU."""
        key = _key(request)
        try:
            _validated(message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_,
                       top_k_, max_new_, think_, base_cap_, seed_, system_, few_, a_thinking_, b_thinking_, thread_)
        except StudioError as e:
            raise _err(e) from None
        finally:
            trim()
        from studio.ui.components import queue_stop

        queue_stop(key, queued, stops_lock)
        return message

    def compare(message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_, top_k_,
                max_new_, think_, base_cap_, seed_, system_, few_, a_thinking_, b_thinking_, thread_=None,
                request: gr.Request = None):
        """Run A then B on the message (a follow-up: each with its own earlier turns of
        ``thread_``, the session's thread); stream both panes."""
        key = _key(request)
        with stops_lock:
            ev = queued.pop(key, None) or threading.Event()
        if ev.is_set():  # stopped while it waited for the GPU: nothing ran, nothing changes
            yield tuple([gr.skip()] * 8) + (tr("chat.stopped_queued"), gr.skip(), gr.skip())
            return
        try:
            text, a, b, settings, media, p, earlier = _validated(
                message, a_model, a_adapter, a_mode, b_model, b_adapter, b_mode, temperature_, top_p_, top_k_,
                max_new_, think_, base_cap_, seed_, system_, few_, a_thinking_, b_thinking_, thread_)
        except StudioError as e:
            trim()
            raise _err(e) from None
        try:
            yield from _compare(text, a, b, settings, media, p, key, ev, earlier)
        finally:
            trim()

    def _compare(text, a, b, settings, media, p, key, ev, earlier):
        """The streaming part of :func:`compare`; ``earlier``: (thread, histories, files)."""
        prior, hist, files = earlier
        before = {s: prior.pane(s) if prior is not None else [] for s in ("A", "B")}
        user = user_turn(text, media)
        image = media.images[0] if media is not None and media.images else None
        views = {"A": render.TurnView(image=image), "B": render.TurnView(image=image)}
        stats = {"A": "", "B": ""}
        plan_text = f"{tr('cmp.plan')} {render.escape(p.sentence)}"
        with stops_lock:
            if key in stops and stops[key] is not ev:
                stops[key].set()
            stops[key] = ev

        def out(result=None, status="", thread=gr.skip()):
            return (before["A"] + user + views["A"].messages(), before["B"] + user + views["B"].messages(),
                    stats["A"], stats["B"], pane_header("A", a), pane_header("B", b), plan_text, result, status,
                    (a.label(), b.label()), thread)

        yield out(None, tr("cmp.loading"))
        last = 0.0
        result = None
        try:
            for e in comparer.stream(a, b, text, media, settings, stop=ev, history=hist):
                if isinstance(e, engine.SideStart):
                    stats[e.side] = tr("cmp.generating")
                elif isinstance(e, engine.SideEvent):
                    views[e.side].apply(e.event)
                    if isinstance(e.event, chat_engine.Done):
                        stats[e.side] = stats_line(e.event.stats)
                    now = time.perf_counter()
                    if isinstance(e.event, chat_engine.Done) or now - last >= REFRESH_S:
                        last = now
                        yield out(None, "")
                elif isinstance(e, engine.CompareDone):
                    result = e.result
            if result is not None:
                notes = " ".join(result.notes)
                status = (tr("cmp.which_better", seed=result.settings['gen']['seed'])
                          + (f" {tr('cmp.note')} {render.escape(notes)}" if notes else ""))
                thread = gr.skip()
                if not result.complete:
                    status = tr("cmp.stopped_no_vote")
                    result = None
                else:
                    # the thread the next question continues (a stopped turn is not part of it)
                    thread = threads.extended(prior, (a.label(), b.label()), threads.Turn(
                        text, list(files), settings.gen.video_fps, settings.gen.max_frames,
                        {s: result.sides[s].text for s in result.sides}, {s: user + views[s].messages() for s in views}))  # the session keeps paths, not pixels; the rows name no server folder
                    result.media = result.media.paths_only() if result.media is not None else None
                    for side in result.sides.values():
                        side.model_spec = {**side.model_spec, "adapter": public.shown_adapter(ctx, side.spec.adapter)}
                yield out(result, status, thread)
        except StudioError as e:
            raise _err(e) from None
        except gr.Error:
            raise
        except Exception as e:  # a bug, not user input: log it, show one line, keep the app alive
            log.exception("compare failed")
            raise user_error(tr("cmp.failed", kind=type(e).__name__, msg=str(e).splitlines()[0] if str(e) else "")) from None
        finally:
            with stops_lock:
                if stops.get(key) is ev:
                    del stops[key]
            ev.finished = True  # type: ignore[attr-defined]

    def stop(request: gr.Request):
        """Stop this session's comparison: a running one ends within one token, a queued one
        will not start. Waits (≤ 3 s) for the running one to end, so the status is the
        comparison's own last word, never a late "Stopping…" over it."""
        from studio.ui.components import stop_request

        msg = stop_request(_key(request), stops, queued, stops_lock)
        return gr.skip() if msg is None else msg

    def _vote(value: str, st, voter_):
        vid = _voter_id(voter_)
        vlog = engine.VoteLog(engine.votes_folder(ctx.runs_dir, vid))
        try:
            vlog.record(st, value)
        except StudioError as e:
            gr.Warning(error_text(public.scrub(ctx, str(e))))
            dl = gr.update(value=str(vlog.archive()), visible=True) if vlog.path.is_file() else gr.update()
            return f"{tr('cmp.not_done')} {render.escape(public.scrub(ctx, str(e)))}", dl, st, vid
        n = len(vlog.rows())
        # public mode: the file's place on the server is nobody's business; the download has it all
        where = f"compare-votes/{vid}/votes.jsonl" if ctx.public else str(vlog.path)
        msg = tr("cmp.recorded" if n != 1 else "cmp.recorded_one", label=tr(f"cmp.vote.{value}"), n=n,
                 path=render.escape(where))
        return msg, gr.update(value=str(vlog.archive()), visible=True), st, vid

    def vote_a(st, voter_):
        return _vote("A", st, voter_)

    def vote_b(st, voter_):
        return _vote("B", st, voter_)

    def vote_tie(st, voter_):
        return _vote("tie", st, voter_)

    def vote_both_bad(st, voter_):
        return _vote("both_bad", st, voter_)

    def refresh_adapters(current):
        """Fresh choices when the picker gets focus; its value stays (the user may be typing
        one: sending back the value it had at focus undid what was typed meanwhile), unless
        a run was just handed over."""
        choices = adapter_choices(ctx)
        sent = ctx.extra.get("compare_adapter")
        if sent and not ctx.public and ctx.extra.get("_compare_adapter_seen") != sent:
            ctx.extra["_compare_adapter_seen"] = sent
            return gr.update(choices=choices, value=public.adapter_key(ctx, sent))
        return gr.update(choices=choices)

    def handoff():
        """A fresh "Compare with base" from the SFT/RL tab: A = the adapter's base model,
        B = the same weights + the adapter (both chat-style); otherwise leave the pickers."""
        sent = ctx.extra.get("compare_adapter")
        if not sent or ctx.extra.get("_compare_adapter_seen") == sent:
            return [gr.skip()] * 9
        ctx.extra["_compare_adapter_seen"] = sent
        base = _adapter_base(sent)
        # the note above the pickers names this pair, not the default workshop pair
        note = "> " + tr("cmp.handoff_note", base=render.escape(base),
                         adapter=render.escape(public.shown_adapter(ctx, sent) or ""))
        return [gr.update(value=base), gr.update(choices=adapter_choices(ctx), value=NO_ADAPTER),
                "chat", gr.update(value=base), gr.update(choices=adapter_choices(ctx), value=public.adapter_key(ctx, sent)),
                "chat", True, True, note]

    def auto_mode(model):
        return gr.update(value=engine.default_mode(str(model or "")))

    def thinking_for_mode(mode):
        """A base (completion) prompt never thinks: its Thinking box is unticked and greyed."""
        chat = str(mode or "chat") != "base"
        return gr.update(value=chat, interactive=chat)

    def default_plan() -> str:
        """The plan for the default pair, shown before anything loads ("" if it cannot be made).

        Waits (≤ 120 s) while the app's model is still loading: transformers' lazy imports
        are not safe from two threads at once (the plan reads configs with AutoConfig)."""
        from studio.config import ModelSpec

        spec = ModelSpec.from_dict({**ctx.model.to_dict(), "adapter": None})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = ctx.registry.status(spec)
            if st is None or st.phase in ("ready", "failed"):
                break
            time.sleep(0.2)
        try:
            return _plan(da.model, NO_ADAPTER, da.mode, db.model, NO_ADAPTER, db.mode)
        except Exception:  # noqa: BLE001 - a missing config must not break the page
            log.exception("default memory plan failed")
            return ""

    plan_on_load.append(default_plan)

    # ---------------------------------------------------------------- events
    pickers = [*side_inputs["A"], *side_inputs["B"]]
    thinking_in = [side_thinking["A"], side_thinking["B"]]  # last in every input list: older API calls still fit
    settings_in = [temperature, top_p, top_k, max_new, think_budget, base_cap, seed, system, few_shot]
    outs = [panes["A"][1], panes["B"][1], panes["A"][2], panes["B"][2], panes["A"][0], panes["B"][0],
            plan_md, state, vote_md, shown, thread]
    # The page checks first (a refusal is a toast; panes, plan and status stay as they are),
    # turns Stop red, compares, and greys Stop again; API clients call /compare directly,
    # which makes the same checks itself.
    def sent_and_cleared():
        """Stop turns red and the box empties (as in Chat): the next question starts clean
        instead of being glued to this one with its image."""
        return gr.update(variant="stop", interactive=True), gr.MultimodalTextbox(value=None)

    def new_comparison():
        """Empty panes, stats, status and box, and no thread: the next question starts a new
        conversation on both sides, and nothing of the last comparison is left to vote on."""
        return [], [], "", "", None, "", gr.MultimodalTextbox(value=None), None, None

    def stop_idle():
        return gr.update(variant="secondary", interactive=False)

    inputs = [box] + pickers + settings_in + thinking_in + [thread]
    compare_gpu = zerogpu.gpu(compare, duration=duration_of_compare)  # ZeroGPU: a GPU for this long
    # The page: check (the message goes to `sent`), clear the box, compare what was sent.
    # API clients: /compare, on a button never shown, takes the message itself.
    for trigger in (run_btn.click, box.submit):
        ev_ = trigger(check, inputs, [sent], api_name=False, concurrency_id=MEDIA_CONCURRENCY_ID,
                      concurrency_limit=MEDIA_CONCURRENCY_LIMIT, show_progress="hidden").success(
            sent_and_cleared, None, [stop_btn, box], api_name=False, queue=False).success(
            compare_gpu, [sent] + inputs[1:], outs, api_name=False,
            concurrency_id=GPU_CONCURRENCY_ID, concurrency_limit=1)
        ev_.then(stop_idle, None, [stop_btn], api_name=False, queue=False)
    api_btn = gr.Button(visible=False, elem_id="cmp-api")
    api_btn.click(compare_gpu, inputs, outs, api_name="compare", concurrency_id=GPU_CONCURRENCY_ID,
                  concurrency_limit=1)
    head_outs = [panes["A"][0], panes["B"][0]]
    new_btn.click(new_comparison, None, [panes["A"][1], panes["B"][1], panes["A"][2], panes["B"][2], state,
                                         vote_md, box, shown, thread], api_name=False, queue=False).then(
        heads, pickers + thinking_in + [shown], head_outs, api_name=False, queue=False, show_progress="hidden")
    stop_btn.click(stop, None, [vote_md], api_name="compare_stop", concurrency_limit=None, queue=False)
    plan_btn.click(plan, pickers + thinking_in + [shown], [plan_md, *head_outs], api_name="compare_plan",
                   concurrency_limit=None)
    for side in ("A", "B"):
        model, adapter, mode = side_inputs[side]
        model.input(auto_mode, [model], [mode], api_name=False, queue=False)
        mode.change(thinking_for_mode, [mode], [side_thinking[side]], api_name=False, queue=False)
        adapter.focus(refresh_adapters, [adapter], [adapter], api_name=False, queue=False)
        for comp in (model, adapter, mode, side_thinking[side]):
            # the headers at once, from the pickers alone; the plan (it reads configs) after
            comp.change(heads, pickers + thinking_in + [shown], head_outs, api_name=False, queue=False,
                        show_progress="hidden")
            comp.change(plan_only, pickers + thinking_in, [plan_md], api_name=False,
                        concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
    from studio.ui.components import on_tab_shown

    on_tab_shown([(handoff, [], pickers + thinking_in + [note_md])])
    for v, fn in (("A", vote_a), ("B", vote_b), ("tie", vote_tie), ("both_bad", vote_both_bad)):
        vote_btns[v].click(fn, [state, voter], [vote_md, download, state, voter], api_name=f"vote_{v.lower()}",
                           concurrency_limit=None)
