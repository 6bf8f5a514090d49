"""Chat engine: history → processor inputs → streamed, typed events.

``stream()`` runs ``model.generate`` in a worker thread and yields typed events —
:class:`ThinkingDelta`, :class:`AnswerDelta`, :class:`ForcedAnswer`, :class:`Done` — so
the UI and the CLI only turn events into components or terminal text.

Decisions, and why:

* Decoding keeps special tokens (``skip_special_tokens=False``) and drops control
  tokens itself, so the think/answer/box tags survive whether or not a tokenizer marks
  them special. Decoding is incremental (constant cost per token).
* Earlier assistant turns enter the history without their ``<think>`` part, as the
  official GLM-4.1V demo does; the chat template itself renders history verbatim.
* Thinking budget: when ``thinking_budget`` tokens have been generated inside
  ``<think>`` without ``</think>``, generation stops, the family's answer opener
  (GLM-4.1V ``</think><answer>``, GLM-4.6V ``</think>`` + newline) is appended
  and generation continues for up to ``answer_budget`` tokens — the same force-answer
  step as GLM's own benchmark script. The turn is marked ``forced_answer``.
* Stop is a per-request ``threading.Event`` checked by a ``StoppingCriteria`` after
  every token (not a global flag, not gradio's ``cancels=``).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from studio.config import GenerationConfig
from studio.engine.infer import family as family_mod
from studio.engine.infer import reasoning
from studio.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from studio.engine.infer.media import TurnMedia

#: Longest prompt text accepted per turn, in characters (before tokenization).
MAX_PROMPT_CHARS = 200_000
#: Events are emitted at most this often (seconds); tokens arriving in between are batched.
MIN_EVENT_INTERVAL_S = 0.015


@dataclass
class ChatTurn:
    """One history entry.

    Attributes:
        role: ``"user"`` or ``"assistant"``.
        text: the user's text, or the assistant's full output (tags included).
        media: the user's images / video / PDF pages for this turn (None: text only).
    """

    role: str
    text: str
    media: "TurnMedia | None" = None


@dataclass
class ThinkingDelta:
    """New reasoning text (inside ``<think>``)."""

    text: str


@dataclass
class AnswerDelta:
    """New answer text (box markers removed)."""

    text: str


@dataclass
class ForcedAnswer:
    """The thinking budget was spent: the family's ``force_text`` was appended."""

    thinking_tokens: int


@dataclass
class Stats:
    """Per-turn numbers. Times in seconds; rates in tokens per second.

    ``thinking_tokens`` counts the tokens between ``<think>`` and ``</think>`` (the tags
    themselves are not thinking: a budget of 4 reports 4); ``answer_tokens`` those after
    ``</think>`` (all of them when there is no thinking); ``new_tokens`` every generated
    token, tags included. ``truncated``: a token limit ended the reply, ``cut_by`` says
    which — ``"max_new_tokens"``, ``"answer_budget"`` (after a forced answer) or
    ``"context"`` (the model's context window was full first). ``tokens_per_s`` is the
    decode rate after the first token, ``(new_tokens − 1) / (total_s − ttft_s)``; with fewer
    than two tokens there is no such rate and it stays 0.0 — show :attr:`rate_text`.
    """

    prompt_tokens: int = 0
    new_tokens: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    forced_answer: bool = False
    stopped: bool = False
    truncated: bool = False
    cut_by: str = ""

    @property
    def rate_text(self) -> str:
        """The decode rate for people: ``"31.5 tok/s"``, or ``"n/a tok/s"`` when fewer than
        two tokens were generated (one token has no rate after the first; "0.0" would read
        as a stalled model).

        >>> Stats(new_tokens=12, tokens_per_s=31.46).rate_text, Stats(new_tokens=1).rate_text
        ('31.5 tok/s', 'n/a tok/s')
        """
        return f"{self.tokens_per_s:.1f} tok/s" if self.new_tokens > 1 else "n/a tok/s"


@dataclass
class Done:
    """End of a turn: the full output (tags kept, control tokens removed), parsed."""

    text: str
    parsed: reasoning.Parsed
    stats: Stats = field(default_factory=Stats)


Event = ThinkingDelta | AnswerDelta | ForcedAnswer | Done


def build_messages(history: list[ChatTurn], system: str | None = None, family=None) -> list[dict]:
    """Turn history into chat-template messages.

    User turns become content lists (media placeholders first, then text — the order
    the official demo uses); assistant turns keep only their answer (thinking stripped,
    in ``family``'s history format; None = GLM-4.1V).
    """
    msgs: list[dict] = []
    if system and system.strip():
        msgs.append({"role": "system", "content": system})
    for turn in history:
        if turn.role == "user":
            content: list[dict] = []
            m = turn.media
            if m is not None and m.kind in ("image", "pdf"):
                content += [{"type": "image"} for _ in m.images]
            elif m is not None and m.kind == "video":
                content.append({"type": "video"})
            content.append({"type": "text", "text": turn.text})
            msgs.append({"role": "user", "content": content})
        elif turn.role == "assistant":
            msgs.append({"role": "assistant", "content": reasoning.strip_thinking(turn.text, family)})
        else:
            raise InputError(f"Unknown role {turn.role!r} in chat history; use 'user' or 'assistant'.")
    return msgs


def _collect_media(history: list[ChatTurn]):
    images, videos, metas = [], [], []
    for turn in history:
        m = turn.media
        if turn.role != "user" or m is None:
            continue
        if m.kind in ("image", "pdf"):
            images += list(m.images)
        elif m.kind == "video" and m.video is not None:
            videos.append(m.video.frames)
            metas.append(m.video.metadata)
    return images, videos, metas


def context_limit(model) -> int:
    """Maximum positions of the model's text backbone (tokens)."""
    cfg = getattr(model, "config", None)
    text_cfg = getattr(cfg, "text_config", cfg)
    return int(getattr(text_cfg, "max_position_embeddings", 65536))


def build_inputs(processor, history: list[ChatTurn], system: str | None = None, *,
                 generation_prompt: bool = True, thinking: bool | None = None):
    """Render the template and run the processor.

    ``thinking=False`` switches thinking off through the family's template switch
    (:meth:`studio.engine.infer.family.Family.template_kwargs`); None/True = the default.

    Returns a ``BatchFeature`` with ``input_ids`` (1, L) int64, ``attention_mask``,
    ``mm_token_type_ids`` and, when media is present, ``pixel_values`` (N, C·T·P·P)
    float32 + ``image_grid_thw`` (n_images, 3) or ``pixel_values_videos`` +
    ``video_grid_thw``.

    Raises:
        InputError: empty history, last turn not from the user, a message or the system
            prompt over MAX_PROMPT_CHARS, thinking off for a family without a switch.
    """
    fam = family_mod.of(processor)
    extra = fam.template_kwargs(thinking)
    if not history:
        raise InputError("Type a message (or add an image, video or PDF) before sending.")
    if system and len(system) > MAX_PROMPT_CHARS:  # refused before the tokenizer spends time on it
        raise InputError(
            f"The system prompt is {len(system):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it."
        )
    for t in history:
        if t.role == "user" and len(t.text) > MAX_PROMPT_CHARS:
            raise InputError(
                f"The message is {len(t.text):,} characters; the limit is {MAX_PROMPT_CHARS:,}. "
                f"Shorten it or split it into several turns."
            )
    text = processor.apply_chat_template(
        build_messages(history, system, fam), add_generation_prompt=generation_prompt, tokenize=False,
        **extra,
    )
    images, videos, metas = _collect_media(history)
    if images and videos:
        # transformers' Glm4vModel.get_placeholder_mask counts <|image|> for both images and
        # video frames, so a prompt holding both fails with a feature/token mismatch.
        raise InputError(
            "This conversation would hold both images and a video; GLM-4.1V (transformers) "
            "cannot read both in one conversation. Clear the chat and send the video (or the "
            "images) in a new one."
        )
    return run_processor(processor, text, history)


def run_processor(processor, text: str, history: list[ChatTurn]):
    """Run the processor on rendered ``text`` with the media of ``history``'s user turns.

    Video goes as decoded frames + metadata with ``do_sample_frames=False``: frames were
    sampled at decode time (media.py), and transformers decodes video *paths* only with
    torchcodec.
    """
    images, videos, metas = _collect_media(history)
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
    if videos:
        kwargs["videos"] = videos
        kwargs["video_metadata"] = metas
        kwargs["do_sample_frames"] = False
    return processor(**kwargs)


class _EventStop:
    """StoppingCriteria: True once the per-request stop event is set."""

    def __init__(self, event: threading.Event | None):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        hit = bool(self.event is not None and self.event.is_set())
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)


class _ThinkingBudget:
    """StoppingCriteria: stop when ``budget`` tokens were generated inside an open ``<think>``."""

    def __init__(self, prompt_len: int, budget: int, think_id: int, end_think_id: int):
        self.prompt_len, self.budget = prompt_len, budget
        self.think_id, self.end_think_id = think_id, end_think_id
        self.hit = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        gen = input_ids[0, self.prompt_len:].tolist()
        hit = False
        if self.budget > 0 and self.think_id in gen and self.end_think_id not in gen:
            hit = len(gen) - gen.index(self.think_id) - 1 >= self.budget
        self.hit = self.hit or hit
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)


class _QueueStreamer:
    """``generate`` streamer that puts each new token id list on a queue (prompt skipped)."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self._skip_prompt = True

    def put(self, value):
        if self._skip_prompt:
            self._skip_prompt = False
            return
        self.q.put(value.reshape(-1).tolist())

    def end(self):
        self.q.put(None)


class IncrementalDecoder:
    """Decode a growing token list into text deltas at constant cost per token.

    Special tokens are kept (tags survive); a delta is withheld while it ends in an
    incomplete UTF-8 sequence (``\\ufffd``).
    """

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0
        self.text = ""

    def push(self, new_ids: list[int]) -> str:
        self.ids += new_ids
        prev = self.tok.decode(self.ids[self.prefix:self.read], skip_special_tokens=False)
        cur = self.tok.decode(self.ids[self.prefix:], skip_special_tokens=False)
        if len(cur) > len(prev) and not cur.endswith("\ufffd"):
            delta = cur[len(prev):]
            self.prefix, self.read = self.read, len(self.ids)
            self.text += delta
            return delta
        return ""


def _sampling_kwargs(gen: GenerationConfig) -> dict[str, Any]:
    if gen.temperature <= 0:
        return {"do_sample": False, "top_p": None, "top_k": None, "temperature": None}
    return {
        "do_sample": True,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "top_k": gen.top_k if gen.top_k > 0 else None,
    }


def stream(model, processor, history: list[ChatTurn], gen: GenerationConfig | None = None, *,
           system: str | None = None, stop: threading.Event | None = None,
           logits_processor: list | None = None, inputs=None,
           thinking: bool | None = None) -> Iterator[Event]:
    """Generate a reply to ``history`` and yield typed events as tokens arrive.

    Args:
        model: a loaded ``Glm4vForConditionalGeneration`` (or PeftModel around one).
        processor: its ``Glm4vProcessor``.
        history: the conversation; the last turn must be the user's.
        gen: sampling settings (validated here).
        system: optional system prompt.
        stop: set it from any thread to end this generation within one token.
        logits_processor: extra ``LogitsProcessor`` objects (tests, constrained decoding).
        inputs: pre-built processor inputs (skips :func:`build_inputs`; used by Compare).
        thinking: False = thinking off (families with a switch, e.g. GLM-4.6V-Flash;
            InputError for GLM-4.1V-Thinking); None = the model's default.

    Yields:
        ThinkingDelta / AnswerDelta as text arrives, ForcedAnswer if the thinking budget
        was spent, then exactly one Done.

    Raises:
        InputError: bad history or a prompt that does not fit the model's context.
    """
    import torch

    gen = gen or GenerationConfig()
    gen.validate()
    if stop is None:  # an abandoned stream must still be able to stop its worker thread
        stop = threading.Event()
    if inputs is None:
        if history and history[-1].role != "user":
            raise InputError("The last turn must be the user's message.")
        inputs = build_inputs(processor, history, system, thinking=thinking)
    prompt_len = int(inputs["input_ids"].shape[1])
    limit = context_limit(model)
    if prompt_len >= limit:
        raise InputError(
            f"The conversation is {prompt_len:,} tokens; this model reads at most {limit:,}. "
            f"Shorten the message, use fewer/smaller images, or clear the chat."
        )
    max_new = min(gen.max_new_tokens, limit - prompt_len)
    tok = processor.tokenizer
    fam = family_mod.of(processor, model)
    think_id = tok.convert_tokens_to_ids(family_mod.THINK_OPEN)
    end_think_id = tok.convert_tokens_to_ids(family_mod.THINK_CLOSE)
    device = getattr(model, "device", torch.device("cpu"))
    inputs = inputs.to(device)

    st = _StreamState(IncrementalDecoder(tok), Stats(prompt_tokens=prompt_len))
    forced_ids = tok(fam.force_text, add_special_tokens=False).input_ids
    eos = model.generation_config.eos_token_id
    eos_set = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    stats, gen_ids = st.stats, st.gen_ids

    def phase(phase_inputs, n_new: int, phase_budget):
        return _phase(model, tok, gen, stop, logits_processor, phase_inputs, n_new, phase_budget, st)

    budget = _ThinkingBudget(prompt_len, gen.thinking_budget, think_id, end_think_id) \
        if gen.thinking_budget > 0 else None
    yield from phase(inputs, max_new, budget)
    phase1_len = len(gen_ids)
    stats.stopped = bool(stop is not None and stop.is_set())
    if budget is not None and budget.hit and not stats.stopped:
        stats.forced_answer = True
        stats.thinking_tokens = phase1_len - gen_ids.index(think_id) - 1  # after <think>
        yield ForcedAnswer(thinking_tokens=stats.thinking_tokens)
        st.decoder.push(forced_ids)
        phase2 = _forced_answer_inputs(inputs, gen_ids, forced_ids, device)
        room = limit - int(phase2["input_ids"].shape[1])
        n2 = max(1, min(gen.answer_budget, room))
        before = len(gen_ids)
        yield from phase(phase2, n2, None)
        stats.stopped = bool(stop is not None and stop.is_set())
        stats.answer_tokens = len(gen_ids) - before
        ended_eos = bool(gen_ids[before:]) and gen_ids[-1] in eos_set
        stats.truncated = not ended_eos and not stats.stopped and len(gen_ids) - before >= n2
        if stats.truncated:
            stats.cut_by = "context" if n2 < gen.answer_budget else "answer_budget"
    else:
        ended_eos = bool(gen_ids) and gen_ids[-1] in eos_set
        stats.truncated = not ended_eos and not stats.stopped and phase1_len >= max_new
        if stats.truncated:
            stats.cut_by = "context" if max_new < gen.max_new_tokens else "max_new_tokens"
        _count_thinking_and_answer(stats, gen_ids, think_id, end_think_id)
    yield from _finish(st, tok, phase1_len, forced_ids)


@dataclass
class _StreamState:
    """What one :func:`stream` call accumulates across its one or two generate phases."""

    decoder: IncrementalDecoder
    stats: Stats
    gen_ids: list[int] = field(default_factory=list)
    shown_thinking: str = ""
    shown_answer: str = ""
    t0: float = field(default_factory=time.perf_counter)


def _run_phase(model, tok, gen: GenerationConfig, stop: threading.Event, logits_processor,
               phase_inputs, n_new: int, budget: _ThinkingBudget | None):
    """Start ``model.generate`` in a worker thread; ``(thread, streamer, errors)``."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    streamer = _QueueStreamer()
    criteria = [_EventStop(stop)] + ([budget] if budget else [])
    kwargs = dict(
        **phase_inputs,
        max_new_tokens=n_new,
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList(criteria),
        logits_processor=LogitsProcessorList(logits_processor or []),
        repetition_penalty=gen.repetition_penalty,
        pad_token_id=tok.pad_token_id,
        **_sampling_kwargs(gen),
    )
    errors: list[BaseException] = []

    def work():
        try:
            if gen.seed is not None:
                torch.manual_seed(gen.seed)
            with torch.inference_mode():
                model.generate(**kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            streamer.end()

    th = threading.Thread(target=work, daemon=True, name="studio-generate")
    th.start()
    return th, streamer, errors


def _drain(streamer: _QueueStreamer, errors: list[BaseException], st: _StreamState) -> Iterator[Event]:
    """Turn the worker's token ids into thinking/answer deltas until the phase ends."""
    last = float("-inf")
    while True:
        # Coalesce: wake at most every MIN_EVENT_INTERVAL_S, so a fast model does not pay
        # a thread wake-up + decode + parse per token (the first token is not delayed).
        pause = last + MIN_EVENT_INTERVAL_S - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        item = streamer.q.get()
        last = time.perf_counter()
        batch = [] if item is None else list(item)
        done = item is None
        while not done:  # drain what is already there: one parse per burst
            try:
                nxt = streamer.q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                done = True
            else:
                batch += nxt
        if batch:
            if not st.gen_ids:
                st.stats.ttft_s = time.perf_counter() - st.t0
            st.gen_ids.extend(batch)
            st.decoder.push(batch)
            p = reasoning.parse(st.decoder.text, streaming=True)
            if len(p.thinking) > len(st.shown_thinking) and p.thinking.startswith(st.shown_thinking):
                yield ThinkingDelta(p.thinking[len(st.shown_thinking):])
                st.shown_thinking = p.thinking
            if len(p.answer) > len(st.shown_answer) and p.answer.startswith(st.shown_answer):
                yield AnswerDelta(p.answer[len(st.shown_answer):])
                st.shown_answer = p.answer
        if done:
            if errors:
                raise errors[0]
            return


def _phase(model, tok, gen, stop, logits_processor, phase_inputs, n_new: int, budget, st: _StreamState):
    """One generate call, streamed: its events, then the worker thread joined."""
    th, streamer, errors = _run_phase(model, tok, gen, stop, logits_processor, phase_inputs, n_new, budget)
    drained = False
    try:
        yield from _drain(streamer, errors, st)
        drained = True
    finally:
        # Only an abandoned/failed stream stops the worker: after a normal end the thread
        # may still be alive for a moment (generate returns after streamer.end()).
        if not drained and th.is_alive():
            stop.set()
        th.join()


def _forced_answer_inputs(inputs, gen_ids: list[int], forced_ids: list[int], device) -> dict:
    """The second phase's inputs: the prompt, the thinking so far and the forced-answer text."""
    import torch

    ids = torch.tensor([gen_ids + forced_ids], dtype=inputs["input_ids"].dtype, device=device)
    phase2 = dict(inputs)
    phase2["input_ids"] = torch.cat([inputs["input_ids"], ids], dim=1)
    phase2["attention_mask"] = torch.ones_like(phase2["input_ids"])
    if "mm_token_type_ids" in inputs:
        pad = torch.zeros_like(ids, dtype=inputs["mm_token_type_ids"].dtype)
        phase2["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], pad], dim=1)
    return phase2


def _count_thinking_and_answer(stats: Stats, gen_ids: list[int], think_id: int, end_think_id: int) -> None:
    """Thinking tokens lie between the tags, answer tokens after ``</think>`` (one phase)."""
    if end_think_id in gen_ids:
        cut = gen_ids.index(end_think_id)
        start = gen_ids.index(think_id) + 1 if think_id in gen_ids[:cut] else 0
        stats.thinking_tokens, stats.answer_tokens = cut - start, len(gen_ids) - cut - 1
    elif think_id in gen_ids:
        stats.thinking_tokens = len(gen_ids) - gen_ids.index(think_id) - 1
    else:
        stats.answer_tokens = len(gen_ids)


def _finish(st: _StreamState, tok, phase1_len: int, forced_ids: list[int]) -> Iterator[Event]:
    """Speed statistics, the held-back tail of the deltas, then :class:`Done`."""
    stats, gen_ids = st.stats, st.gen_ids
    stats.new_tokens = len(gen_ids)
    stats.total_s = time.perf_counter() - st.t0
    gen_time = max(stats.total_s - stats.ttft_s, 1e-9)
    stats.tokens_per_s = (stats.new_tokens - 1) / gen_time if stats.new_tokens > 1 else 0.0
    # The final text is one decode of every id (the streamed text may still hold back an
    # incomplete UTF-8 tail, and where it does depends on how tokens were batched).
    full_ids = gen_ids[:phase1_len] + (forced_ids if stats.forced_answer else []) + gen_ids[phase1_len:]
    text = reasoning.strip_control_tokens(tok.decode(full_ids, skip_special_tokens=False))
    parsed = reasoning.parse(text)
    # Flush what streaming held back (e.g. a final partial tag that turned out to be text).
    if parsed.thinking.startswith(st.shown_thinking) and len(parsed.thinking) > len(st.shown_thinking):
        yield ThinkingDelta(parsed.thinking[len(st.shown_thinking):])
    if parsed.answer.startswith(st.shown_answer) and len(parsed.answer) > len(st.shown_answer):
        yield AnswerDelta(parsed.answer[len(st.shown_answer):])
    yield Done(text=text, parsed=parsed, stats=stats)


def generate_text(model, processor, history: list[ChatTurn], gen: GenerationConfig | None = None,
                  **kwargs) -> Done:
    """Run :func:`stream` to the end and return its :class:`Done`."""
    done = None
    for ev in stream(model, processor, history, gen, **kwargs):
        if isinstance(ev, Done):
            done = ev
    assert done is not None
    return done
