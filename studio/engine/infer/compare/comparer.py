"""The comparer: loads the two sides within the memory plan and streams their answers, events as they come.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

from studio.config import EMBEDDED, ModelSpec
from studio.engine.infer import chat, reasoning
from studio.engine.infer.chat import ChatTurn, Done, Stats
from studio.engine.infer.memplan import DeviceInfo, MemoryPlan, SideInput, plan_memory, require_fit, size_of
from studio.engine.infer.compare.adapters import adapter_active, inject_adapter
from studio.engine.infer.compare.settings import (BASE_STOP_STRINGS, RANDOM_WEIGHTS_NOTE, SIDES, CompareSettings,
                                                 SideSpec, _StopStringToEos, build_base_inputs, cut_at_stop,
                                                 render_base_prompt, render_chat_prompt)
from studio.errors import InputError


# ------------------------------------------------------------------ events / results

@dataclass
class SideStart:
    """Side ``side`` starts generating. ``prompt_style`` is a human label."""

    side: str
    label: str
    mode: str
    prompt_style: str


@dataclass
class SideEvent:
    """A chat-engine event (ThinkingDelta/AnswerDelta/ForcedAnswer/Done) of one side."""

    side: str
    event: Any


@dataclass
class SideResult:
    """One side's finished output."""

    side: str
    spec: SideSpec
    model_spec: dict
    text: str
    parsed: reasoning.Parsed
    stats: Stats
    prompt_text: str


@dataclass
class CompareResult:
    """A finished (or partly finished) comparison; what a vote records."""

    id: str
    timestamp: str
    prompt: str
    media: Any
    system: str | None
    settings: dict
    sides: dict[str, SideResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plan: MemoryPlan | None = None
    voted: str | None = None
    #: 1 for a first question; n for the (n-1)-th follow-up, each side answering with its own history
    turn: int = 1
    #: each side's earlier turns as it read them (text only, thinking stripped): ``{"A": [{"role", "content"}…]}``
    history: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Both sides finished."""
        return all(s in self.sides for s in SIDES)


@dataclass
class CompareDone:
    """Last event of :meth:`Comparer.stream`."""

    result: CompareResult


# ------------------------------------------------------------------ the comparer

@dataclass
class _Loaded:
    model: Any
    processor: Any
    adapter: str | None
    key: str


class Comparer:
    """Plans, loads and runs comparisons. Thread-unsafe by design: one GPU, one at a time
    (the UI serialises GPU handlers with a shared concurrency id).

    Args:
        registry: a :class:`~studio.engine.infer.models.ModelRegistry` shared with other tabs
            (a private one if None).
        device_info: override the measured device (tests simulate cards with it).
        host_figures: plans name this machine's free memory (False on a public server).
    """

    def __init__(self, registry=None, device_info: DeviceInfo | None = None, host_figures: bool = True):
        from studio.engine.infer.models import ModelRegistry

        self.registry = registry if registry is not None else ModelRegistry()
        self.device_info = device_info
        self.host_figures = host_figures
        self._plan: MemoryPlan | None = None
        self._specs: dict[str, ModelSpec] = {}

    # -- planning ---------------------------------------------------------------
    @staticmethod
    def weights_key(side: SideSpec) -> str:
        """Sides with equal keys share one loaded copy (same model; adapter may differ)."""
        from studio.engine.infer.models import resolve

        return json.dumps([resolve(side.model), side.load_in_4bit])

    def notes(self, a: SideSpec, b: SideSpec) -> list[str]:
        """Human notes about the pair (identical models, random weights)."""
        out = []
        if self.weights_key(a) == self.weights_key(b):
            if a.adapter == b.adapter and a.mode == b.mode and a.thinking == b.thinking:
                out.append("A and B are the same model, adapter and prompt style: differences come only "
                           "from sampling (with temperature 0 they are identical).")
            elif a.adapter == b.adapter and a.mode == b.mode:
                out.append("A and B are the same model; only the thinking switch differs.")
            elif a.adapter == b.adapter:
                out.append("A and B are the same model; only the prompt style differs.")
            else:
                out.append("A and B share one loaded copy of the weights; the adapter is switched on "
                           "only for the side that has it.")
        if EMBEDDED in (a.model, b.model):
            out.append(RANDOM_WEIGHTS_NOTE)
        return out

    def plan(self, a: SideSpec, b: SideSpec, device: str = "auto") -> MemoryPlan:
        """Memory plan for the pair on this machine (configs only; nothing is loaded)."""
        a.validate()
        b.validate()
        info = self.device_info or DeviceInfo.detect(device)
        sides = [SideInput(lbl, size_of(s.model), self.weights_key(s), s.load_in_4bit)
                 for lbl, s in zip(SIDES, (a, b))]
        return plan_memory(sides, info, host_figures=self.host_figures)

    @staticmethod
    def check_thinking(a: SideSpec, b: SideSpec, loaded: dict[str, "_Loaded"] | None = None) -> None:
        """Refuse *both* sides' thinking switches before either side runs: a chat side with
        thinking off needs a family that has a switch (GLM-4.6V-Flash), GLM-4.1V has none.

        Without ``loaded`` the checkpoints' files are read (nothing loads; a hub id not yet
        downloaded passes); with it, the loaded families decide.

        Raises:
            InputError: naming the side and what to change.
        """
        from studio.engine.infer import family as family_mod
        from studio.engine.infer.models import checkpoint_family

        for lbl, side in zip(SIDES, (a, b)):
            if side.thinking or side.mode != "chat":
                continue
            fam = (checkpoint_family(side.model) if loaded is None
                   else family_mod.of(loaded[lbl].processor, loaded[lbl].model))
            if fam is not None and not fam.thinking_switch:
                raise InputError(
                    f"Side {lbl} ({side.model}) is a {fam.label} model, which has no thinking switch, so "
                    f"its thinking cannot be turned off. Turn thinking back on for side {lbl} "
                    f"(drop --{lbl.lower()}-no-thinking), or put a GLM-4.6V-Flash-style model on that side."
                )

    # -- loading ----------------------------------------------------------------
    def load(self, a: SideSpec, b: SideSpec, device: str = "auto", plan: MemoryPlan | None = None
             ) -> tuple[dict[str, _Loaded], MemoryPlan, list[str]]:
        """Apply the plan: load each distinct copy (4-bit where planned), inject adapters.

        Take-turns plans move each copy to the CPU right after loading it, so the next
        one has room; :meth:`_activate` brings the generating side back.

        Raises:
            ModelLoadError: nothing fits, a model cannot be loaded, or an adapter does not fit.
        """
        plan = require_fit(plan or self.plan(a, b, device))
        notes: list[str] = []
        loaded: dict[str, _Loaded] = {}
        by_key: dict[str, tuple[Any, Any]] = {}
        for lbl, side in zip(SIDES, (a, b)):
            key = self.weights_key(side)
            if key not in by_key:
                spec = ModelSpec(name_or_path=side.model, load_in_4bit=plan.sides[lbl].load_in_4bit,
                                 device=device if device != "auto" else "auto")
                model, processor = self.registry.get(spec)
                self._specs[key] = spec
                by_key[key] = (model, processor)
                if plan.take_turns:
                    self._to(model, "cpu")
            model, processor = by_key[key]
            name = None
            if side.adapter:
                name, n = inject_adapter(model, side.adapter)
                notes += n
            loaded[lbl] = _Loaded(model, processor, name, key)
        self._plan = plan
        return loaded, plan, notes

    @staticmethod
    def _to(model, device: str) -> None:
        import torch

        if str(getattr(model, "device", "cpu")).split(":")[0] != device:
            model.to(device)
            if device == "cpu" and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _activate(self, loaded: dict[str, _Loaded], side: str) -> None:
        """Take turns: move every other copy to the CPU, then this one to the GPU."""
        if self._plan is None or not self._plan.take_turns:
            return
        for lbl, item in loaded.items():
            if item.key != loaded[side].key:
                self._to(item.model, "cpu")
        self._to(loaded[side].model, "cuda")

    # -- running ----------------------------------------------------------------
    def stream(self, a: SideSpec, b: SideSpec, question: str, media=None,
               settings: CompareSettings | None = None, *, stop: threading.Event | None = None,
               media_paths: list[str] | None = None,
               history: dict[str, list[ChatTurn]] | None = None) -> Iterator[Any]:
        """Run A, then B, and yield :class:`SideStart`, :class:`SideEvent` … then one
        :class:`CompareDone`.

        Args:
            a, b: the sides.
            question: the user's text (may be empty only if media is given).
            media: a :class:`~studio.engine.infer.media.TurnMedia` (or None); ``media_paths``
                are decoded with :func:`studio.engine.infer.media.prepare_turn_media` instead.
            settings: shared settings (a copy gets the drawn seed).
            stop: set it to stop the running side; the other side is skipped.
            history: a follow-up: each side's own earlier turns (user and assistant
                :class:`~studio.engine.infer.chat.ChatTurn`, media decoded), so each side
                continues *its* conversation: B never reads A's answers. Assistant turns
                keep only their answer (thinking stripped, as the chat template's history
                rules say).

        Raises:
            InputError / MediaError / ModelLoadError: bad input, files or models.
        """
        settings = dataclasses.replace(settings or CompareSettings())
        settings.gen = dataclasses.replace(settings.gen)
        settings.validate()
        question = (question or "").strip()
        if media is None and media_paths:
            from studio.engine.infer.media import prepare_turn_media

            media = prepare_turn_media(media_paths, fps=settings.gen.video_fps, max_frames=settings.gen.max_frames)
        if not question and (media is None or media.kind == "none"):
            raise InputError("Type a question (or add an image, video or PDF) before comparing.")
        if len(question) > chat.MAX_PROMPT_CHARS:
            raise InputError(f"The question is {len(question):,} characters; the limit is "
                             f"{chat.MAX_PROMPT_CHARS:,}. Shorten it.")
        history = {s: list((history or {}).get(s) or []) for s in SIDES}
        if any(t.role not in ("user", "assistant") for turns in history.values() for t in turns):
            raise InputError("A follow-up's history holds only user and assistant turns.")
        if settings.gen.seed is None:
            settings.gen.seed = random.randrange(2**31)
        self.check_thinking(a, b)  # both sides, before anything loads or runs
        loaded, plan, adapter_notes = self.load(a, b, settings.device)
        self.check_thinking(a, b, loaded)  # hub ids whose files arrived with the load
        result = CompareResult(
            id=uuid.uuid4().hex[:12],
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            prompt=question, media=media, system=settings.system,
            settings=settings.to_dict(), notes=self.notes(a, b) + adapter_notes, plan=plan,
            turn=1 + max(sum(t.role == "user" for t in turns) for turns in history.values()),
            history={s: [{"role": t.role, "content": t.text if t.role == "user" else reasoning.strip_thinking(t.text)}
                         for t in history[s]] for s in SIDES},
        )
        for lbl, side in zip(SIDES, (a, b)):
            if stop is not None and stop.is_set():
                break
            item = loaded[lbl]
            style = ("base model: completion prompt, no chat roles, no thinking"
                     if side.mode == "base" else "chat template" +
                     (f", thinking budget {settings.gen.thinking_budget}" if settings.gen.thinking_budget else "")
                     + ("" if side.thinking else ", thinking off"))
            yield SideStart(lbl, side.label(), side.mode, style)
            self._activate(loaded, lbl)
            done = None
            with adapter_active(item.model, item.adapter):
                for ev in self._side_events(item, side, question, media, settings, stop, history[lbl]):
                    if isinstance(ev, Done):
                        done = ev
                    yield SideEvent(lbl, ev)
            assert done is not None
            spec = dict(self._specs[item.key].to_dict(), adapter=side.adapter)
            result.sides[lbl] = SideResult(lbl, side, spec, done.text, done.parsed, done.stats,
                                           self._prompt_text(item.processor, side, question, media, settings,
                                                             history[lbl]))
        yield CompareDone(result)

    @staticmethod
    def _prompt_text(processor, side: SideSpec, question, media, settings: CompareSettings, history=None) -> str:
        if side.mode == "base":
            return render_base_prompt(question, media, few_shot=settings.few_shot, system=settings.system,
                                      history=history)
        return render_chat_prompt(processor, question, media, system=settings.system,
                                  thinking=None if side.thinking else False, history=history)

    def _side_events(self, item: _Loaded, side: SideSpec, question: str, media,
                     settings: CompareSettings, stop, earlier: list[ChatTurn] | None = None) -> Iterator[Any]:
        gen = settings.gen
        history = [*(earlier or []), ChatTurn("user", question, media)]
        if side.mode == "chat":
            yield from chat.stream(item.model, item.processor, history, gen, system=settings.system, stop=stop,
                                   thinking=None if side.thinking else False)
            return
        gen = dataclasses.replace(gen, max_new_tokens=min(gen.max_new_tokens, settings.base_max_new_tokens),
                                  thinking_budget=0)
        inputs = build_base_inputs(item.processor, question, media, few_shot=settings.few_shot,
                                   system=settings.system, history=earlier)
        tok = item.processor.tokenizer
        eos = item.model.generation_config.eos_token_id
        eos_id = (eos[0] if isinstance(eos, list) else eos) if eos is not None else tok.eos_token_id
        stopper = _StopStringToEos(tok, int(inputs["input_ids"].shape[1]), BASE_STOP_STRINGS, eos_id)
        shown = ""
        raw = ""
        for ev in chat.stream(item.model, item.processor, history, gen, stop=stop,
                              logits_processor=[stopper], inputs=inputs):
            if isinstance(ev, chat.AnswerDelta):
                raw += ev.text
                visible = cut_at_stop(raw, streaming=True)
                if len(visible) > len(shown) and visible.startswith(shown):
                    yield chat.AnswerDelta(visible[len(shown):])
                    shown = visible
            elif isinstance(ev, Done):
                text = cut_at_stop(ev.text).strip()
                parsed = reasoning.parse(text)
                yield Done(text=text, parsed=parsed, stats=ev.stats)
            else:
                yield ev

    def run(self, a: SideSpec, b: SideSpec, question: str, media=None,
            settings: CompareSettings | None = None, **kw) -> CompareResult:
        """Non-streaming :meth:`stream`: return the :class:`CompareResult`."""
        out = None
        for ev in self.stream(a, b, question, media, settings, **kw):
            if isinstance(ev, CompareDone):
                out = ev.result
        assert out is not None
        return out
