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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import random
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from studio.config import BASE_ID, EMBEDDED, THINKING_ID, GenerationConfig, ModelSpec, YamlConfig, check
from studio.engine.infer import chat, reasoning
from studio.engine.infer.chat import ChatTurn, Done, Stats
from studio.engine.infer.memplan import DeviceInfo, MemoryPlan, SideInput, plan_memory, require_fit, size_of
from studio.errors import InputError, ModelLoadError

SIDES = ("A", "B")
MODES = ("base", "chat")
#: Vote values, in the order the UI shows them.
VOTES = ("A", "B", "tie", "both_bad")
VOTE_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
#: Where a base-style completion ends: the model starting the next question.
BASE_STOP_STRINGS = ("\nQuestion:",)
#: Default cap on new tokens for a base-style (completion) side.
DEFAULT_BASE_MAX_NEW_TOKENS = 256
TOY_BASE, TOY_THINKING = "toy-base", "toy-thinking"
IMAGE_PLACEHOLDER = "<|begin_of_image|><|image|><|end_of_image|>"
VIDEO_PLACEHOLDER = "<|begin_of_video|><|video|><|end_of_video|>"
RANDOM_WEIGHTS_NOTE = ("The embedded tiny model has random weights: its text is not meaningful, "
                       "but every step of the pipeline is real.")


# ------------------------------------------------------------------ configs

@dataclass
class SideSpec(YamlConfig):
    """One side of a comparison.

    Attributes:
        model: hub id, local folder, ``"embedded"``, ``"toy-base"`` or ``"toy-thinking"``.
        adapter: optional PEFT LoRA adapter folder; runs on the same loaded weights as a
            side without it (switched on only while this side generates).
        mode: ``"base"`` (completion prompt, no chat roles, no thinking) or ``"chat"``.
        load_in_4bit: force NF4 for this side (otherwise the memory plan decides).
        thinking: False switches thinking off on a chat side whose family has a switch
            (GLM-4.6V-Flash: thinking on vs off is one model on both sides); refused
            with a clear message for GLM-4.1V-Thinking.
    """

    model: str = EMBEDDED
    adapter: str | None = None
    mode: str = "chat"
    load_in_4bit: bool = False
    thinking: bool = True

    def validate(self) -> None:
        check(bool((self.model or "").strip()), "model", "must name a hub id, a folder, 'embedded' or a toy model.")
        check(self.mode in MODES, "mode", f"must be 'base' or 'chat' (got {self.mode!r}).")

    def label(self) -> str:
        """Short name for headers: ``toy-base``, ``…/run-3/adapter`` on ``embedded``."""
        name = self.model if len(self.model) <= 40 else "…" + self.model[-39:]
        if self.adapter:
            name += f" + adapter {Path(self.adapter).name or self.adapter}"
        if not self.thinking:
            name += " (thinking off)"
        return name


@dataclass
class CompareSettings(YamlConfig):
    """Settings shared by both sides (unless a side overrides ``gen``).

    Attributes:
        gen: sampling settings; the same seed is used for both sides (a random one is
            drawn and recorded when ``gen.seed`` is None).
        base_max_new_tokens: token cap of a base-style side.
        few_shot: example ``{"question", "answer"}`` pairs for base-style prompts.
        system: system prompt (chat: the system role; base: plain text on top).
        device: ``auto``, ``cuda`` or ``cpu``.
    """

    gen: GenerationConfig = field(default_factory=GenerationConfig)
    base_max_new_tokens: int = DEFAULT_BASE_MAX_NEW_TOKENS
    few_shot: list[dict] = field(default_factory=list)
    system: str | None = None
    device: str = "auto"

    def validate(self) -> None:
        super().validate()
        check(1 <= self.base_max_new_tokens <= 65536, "base_max_new_tokens", "must be between 1 and 65536.")
        for i, ex in enumerate(self.few_shot):
            check(isinstance(ex, dict) and {"question", "answer"} <= set(ex), f"few_shot[{i}]",
                  "must have a 'question' and an 'answer'.")
        check(self.device in ("auto", "cuda", "cpu"), "device", "must be auto, cuda or cpu.")


def toy_available() -> bool:
    """True when both workshop checkpoints (studio/assets/toy-base, toy-thinking) exist."""
    from studio.engine.infer.models import SHIPPED

    return all((SHIPPED[n] / "config.json").is_file() for n in (TOY_BASE, TOY_THINKING))


def default_pair() -> tuple[SideSpec, SideSpec, str]:
    """Default sides: A = toy-base (base prompt), B = toy-thinking (chat) when shipped,
    else the embedded tiny model on both sides (random weights; the note says so)."""
    if toy_available():
        return (SideSpec(TOY_BASE, mode="base"), SideSpec(TOY_THINKING, mode="chat"),
                "Workshop pair: toy-base (completion prompt) vs toy-thinking (chat).")
    return (SideSpec(EMBEDDED, mode="base"), SideSpec(EMBEDDED, mode="chat"),
            "The workshop models are not installed, so both sides use the embedded tiny model "
            "(A as a base model, B as a chat model). " + RANDOM_WEIGHTS_NOTE)


def default_mode(model: str) -> str:
    """``"base"`` for Base checkpoints (hub id, toy-base, a folder named *-Base), else ``"chat"``."""
    name = (model or "").rstrip("/")
    tail = Path(name).name.lower()
    if name in (BASE_ID, TOY_BASE) or tail.endswith("-base") or tail == "base":
        return "base"
    return "chat"


# ------------------------------------------------------------------ prompts

def media_placeholders(media) -> str:
    """Placeholder text for a :class:`~studio.engine.infer.media.TurnMedia` (None → "")."""
    if media is None or media.kind == "none":
        return ""
    if media.kind == "video":
        return VIDEO_PLACEHOLDER
    return IMAGE_PLACEHOLDER * len(media.images)


def render_base_prompt(question: str, media=None, *, few_shot: list[dict] | None = None,
                       system: str | None = None) -> str:
    """Completion-style prompt for a pretrained (Base) model — no chat roles.

    ``[gMASK]<sop>`` + system text + ``"\\n\\n"`` (if any) + each example as
    ``"Question: q\\nAnswer: a\\n\\n"`` + media placeholders + ``"Question: {question}\\nAnswer:"``.

    >>> render_base_prompt("What is 2+2?")
    '[gMASK]<sop>Question: What is 2+2?\\nAnswer:'
    """
    parts = ["[gMASK]<sop>"]
    if system and system.strip():
        parts.append(system.strip() + "\n\n")
    for ex in few_shot or []:
        parts.append(f"Question: {str(ex['question']).strip()}\nAnswer: {str(ex['answer']).strip()}\n\n")
    parts.append(media_placeholders(media))
    parts.append(f"Question: {question.strip()}\nAnswer:")
    return "".join(parts)


def render_chat_prompt(processor, question: str, media=None, *, system: str | None = None,
                       thinking: bool | None = None) -> str:
    """The chat side's prompt text: the model's chat template with a generation prompt
    (``thinking=False``: through the family's switch, see :mod:`studio.engine.infer.family`)."""
    from studio.engine.infer import family

    fam = family.of(processor)
    msgs = chat.build_messages([ChatTurn("user", question, media)], system, fam)
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False,
                                         **fam.template_kwargs(thinking))


def build_base_inputs(processor, question: str, media=None, *, few_shot=None, system=None):
    """Processor inputs (``input_ids`` (1, L), ``attention_mask``, ``mm_token_type_ids``,
    pixel values + grids when media is given) for :func:`render_base_prompt`."""
    text = render_base_prompt(question, media, few_shot=few_shot, system=system)
    return chat.run_processor(processor, text, [ChatTurn("user", question, media)])


class _StopStringToEos:
    """LogitsProcessor: once the generated text contains a stop string, only EOS may follow.

    ``chat.stream`` accepts logits processors (not stopping criteria); forcing EOS ends
    generation cleanly through its own EOS handling. Decodes only the last 32 tokens.
    """

    def __init__(self, tokenizer, prompt_len: int, stops: tuple[str, ...], eos_id: int):
        self.tok, self.prompt_len, self.stops, self.eos_id = tokenizer, prompt_len, stops, eos_id

    def __call__(self, input_ids, scores):
        import torch

        gen = input_ids[0, self.prompt_len:]
        if gen.numel() == 0:
            return scores
        tail = self.tok.decode(gen[-32:].tolist(), skip_special_tokens=False)
        if any(s in tail for s in self.stops):
            forced = torch.full_like(scores, float("-inf"))
            forced[:, self.eos_id] = 0.0
            return forced
        return scores


def cut_at_stop(text: str, stops: tuple[str, ...] = BASE_STOP_STRINGS, *, streaming: bool = False) -> str:
    """Cut ``text`` at the first stop string; while streaming also hold back a partial one.

    >>> cut_at_stop(" 4\\nQuestion: what")
    ' 4'
    >>> cut_at_stop(" 4\\nQues", streaming=True)
    ' 4'
    """
    for s in stops:
        i = text.find(s)
        if i != -1:
            text = text[:i]
    if streaming:
        for s in stops:
            for k in range(len(s) - 1, 0, -1):
                if text.endswith(s[:k]):
                    return text[:-k]
    return text


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

    @property
    def complete(self) -> bool:
        """Both sides finished."""
        return all(s in self.sides for s in SIDES)


@dataclass
class CompareDone:
    """Last event of :meth:`Comparer.stream`."""

    result: CompareResult


# ------------------------------------------------------------------ adapters

def adapter_name(folder: str) -> str:
    """PEFT adapter name for a folder (stable per absolute path)."""
    return "cmp_" + hashlib.sha1(str(Path(os.path.expanduser(folder)).resolve()).encode()).hexdigest()[:10]


def check_adapter(model, folder: str) -> list[str]:
    """Check that a LoRA adapter folder fits ``model`` before injecting it.

    Reads ``adapter_config.json`` and the tensor *shapes* in ``adapter_model.safetensors``
    (no weights loaded) and compares every ``lora_A``/``lora_B`` to the target module's
    in/out features.

    Returns:
        Notes (e.g. the adapter names another base path but its shapes fit).

    Raises:
        ModelLoadError: no adapter_config.json / no safetensors weights, or a module the
            model lacks or whose shape differs (trained on another base).
    """
    import torch
    from safetensors import safe_open

    p = Path(os.path.expanduser(folder))
    cfg_file = p / "adapter_config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(
            f"Adapter folder {folder!r} has no adapter_config.json; pick the `adapter` folder of a finished SFT/RL run."
        )
    weights = p / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"Adapter folder {folder!r} has no adapter_model.safetensors; only safetensors adapters are loaded."
        )
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelLoadError(f"{cfg_file} is not valid JSON: {e}") from None
    trained_on = cfg.get("base_model_name_or_path") or "an unknown base"
    loaded = getattr(model, "studio_name", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
    loaded_path = getattr(model, "studio_path", loaded)
    problems: list[str] = []
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            which = "A" if ".lora_A." in key else "B"
            mod_name = key.split(f".lora_{which}.")[0]
            mod_name = mod_name.removeprefix("base_model.model.")
            shape = f.get_slice(key).get_shape()
            try:
                mod = model.get_submodule(mod_name)
            except AttributeError:
                problems.append(f"layer {mod_name} does not exist in the loaded model")
                continue
            if isinstance(mod, torch.nn.Linear) or hasattr(mod, "in_features"):
                want = mod.in_features if which == "A" else mod.out_features
                got = shape[1] if which == "A" else shape[0]
                if got != want:
                    side = "in" if which == "A" else "out"
                    problems.append(f"layer {mod_name} has {want} {side}put features here but {got} in the adapter")
            if len(problems) >= 3:
                break
    if problems:
        raise ModelLoadError(
            f"Adapter {folder!r} was trained for another base model ({trained_on!r}) and does not fit the "
            f"loaded model {loaded!r}: {'; '.join(problems[:3])}. Pick an adapter trained on this model, "
            f"or load the adapter's base model on this side."
        )
    notes = []
    if trained_on not in (loaded, loaded_path) and Path(str(trained_on)).name != Path(str(loaded_path)).name:
        notes.append(f"The adapter was trained on {trained_on!r}; the loaded model is {loaded!r}. "
                     f"Its layer shapes fit, so it runs — make sure it is the same base model.")
    return notes


@contextlib.contextmanager
def adapter_active(model, name: str | None):
    """Run a block with adapter ``name`` switched on (None: all adapters off).

    ``model`` is the plain model with PEFT layers injected (or without any). Outside the
    block the adapter layers are always left *disabled*, so other users of the same
    weights see the plain base model.
    """
    peft = getattr(model, "_studio_peft", None)
    if peft is None or name is None:
        if peft is not None:
            peft.base_model.disable_adapter_layers()
        yield
        return
    try:
        peft.set_adapter(name)
        peft.base_model.enable_adapter_layers()
        yield
    finally:
        peft.base_model.disable_adapter_layers()


def inject_adapter(model, folder: str) -> tuple[str, list[str]]:
    """Inject adapter ``folder`` into ``model`` (once), left disabled; return (name, notes)."""
    from peft import PeftModel

    notes = check_adapter(model, folder)
    name = adapter_name(folder)
    peft = getattr(model, "_studio_peft", None)
    try:
        if peft is None:
            peft = PeftModel.from_pretrained(model, str(Path(os.path.expanduser(folder))), adapter_name=name,
                                             is_trainable=False)
            # Plain attribute, not a registered submodule (that would make a module cycle).
            model.__dict__["_studio_peft"] = peft
        elif name not in peft.peft_config:
            peft.load_adapter(str(Path(os.path.expanduser(folder))), adapter_name=name, is_trainable=False)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - one clear sentence for the user
        raise ModelLoadError(
            f"Adapter {folder!r} could not be attached to the loaded model: {str(e).splitlines()[0]}"
        ) from None
    peft.base_model.disable_adapter_layers()
    peft.eval()
    return name, notes


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
    """

    def __init__(self, registry=None, device_info: DeviceInfo | None = None):
        from studio.engine.infer.models import ModelRegistry

        self.registry = registry if registry is not None else ModelRegistry()
        self.device_info = device_info
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
        return plan_memory(sides, info)

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
               media_paths: list[str] | None = None) -> Iterator[Any]:
        """Run A, then B, and yield :class:`SideStart`, :class:`SideEvent` … then one
        :class:`CompareDone`.

        Args:
            a, b: the sides.
            question: the user's text (may be empty only if media is given).
            media: a :class:`~studio.engine.infer.media.TurnMedia` (or None); ``media_paths``
                are decoded with :func:`studio.engine.infer.media.prepare_turn_media` instead.
            settings: shared settings (a copy gets the drawn seed).
            stop: set it to stop the running side; the other side is skipped.

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
        if settings.gen.seed is None:
            settings.gen.seed = random.randrange(2**31)
        loaded, plan, adapter_notes = self.load(a, b, settings.device)
        result = CompareResult(
            id=uuid.uuid4().hex[:12],
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            prompt=question, media=media, system=settings.system,
            settings=settings.to_dict(), notes=self.notes(a, b) + adapter_notes, plan=plan,
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
                for ev in self._side_events(item, side, question, media, settings, stop):
                    if isinstance(ev, Done):
                        done = ev
                    yield SideEvent(lbl, ev)
            assert done is not None
            spec = dict(self._specs[item.key].to_dict(), adapter=side.adapter)
            result.sides[lbl] = SideResult(lbl, side, spec, done.text, done.parsed, done.stats,
                                           self._prompt_text(item.processor, side, question, media, settings))
        yield CompareDone(result)

    @staticmethod
    def _prompt_text(processor, side: SideSpec, question, media, settings: CompareSettings) -> str:
        if side.mode == "base":
            return render_base_prompt(question, media, few_shot=settings.few_shot, system=settings.system)
        return render_chat_prompt(processor, question, media, system=settings.system,
                                  thinking=None if side.thinking else False)

    def _side_events(self, item: _Loaded, side: SideSpec, question: str, media,
                     settings: CompareSettings, stop) -> Iterator[Any]:
        gen = settings.gen
        history = [ChatTurn("user", question, media)]
        if side.mode == "chat":
            yield from chat.stream(item.model, item.processor, history, gen, system=settings.system, stop=stop,
                                   thinking=None if side.thinking else False)
            return
        gen = dataclasses.replace(gen, max_new_tokens=min(gen.max_new_tokens, settings.base_max_new_tokens),
                                  thinking_budget=0)
        inputs = build_base_inputs(item.processor, question, media, few_shot=settings.few_shot,
                                   system=settings.system)
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


# ------------------------------------------------------------------ votes

def votes_folder(runs_dir: str | os.PathLike, session: str | None = None) -> Path:
    """``<runs_dir>/compare-votes/<session>`` — session defaults to today's date (YYYYmmdd)."""
    name = session or _dt.date.today().strftime("%Y%m%d")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "votes"
    return Path(runs_dir) / "compare-votes" / safe


_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


class VoteLog:
    """Append-only preference file ``<folder>/votes.jsonl`` with media in ``<folder>/media``.

    Row (one JSON object per line)::

        {"id", "timestamp", "prompt", "media": ["media/<sha1>.png", ...], "system",
         "outputs": {"A": text, "B": text}, "models": {"A": ModelSpec dict, "B": ...},
         "modes": {"A": "base"|"chat", "B": ...}, "thinking": {"A": bool, "B": bool},
         "settings": {...},
         "vote": "A"|"B"|"tie"|"both_bad", "stats": {"A": {...}, "B": {...}}}

    Images are copied as files; PDF pages are saved as PNG images (so the SFT loader sees
    images); a video file is copied as is.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / "votes.jsonl"

    def archive(self) -> Path:
        """Zip ``votes.jsonl`` and ``media/`` into ``<folder>/votes.zip`` (what the UI offers
        to download: the rows' relative media paths resolve after unzipping, so the SFT
        loader reads it as is). Rebuilt on each call; written to a temp name, then renamed."""
        import zipfile

        out = self.folder / "votes.zip"
        tmp = out.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            if self.path.is_file():
                z.write(self.path, "votes.jsonl")
            media = self.folder / "media"
            if media.is_dir():
                for f in sorted(media.iterdir()):
                    if f.is_file():
                        z.write(f, f"media/{f.name}")
        tmp.replace(out)
        return out

    def _copy_media(self, media) -> list[str]:
        if media is None or media.kind == "none":
            return []
        out_dir = self.folder / "media"
        out_dir.mkdir(parents=True, exist_ok=True)
        rel: list[str] = []
        if media.kind == "image" and len(media.sources) == len(media.images):
            for src in media.sources:
                data = Path(src).read_bytes()
                name = hashlib.sha1(data).hexdigest()[:16] + Path(src).suffix.lower()
                if not (out_dir / name).exists():
                    (out_dir / name).write_bytes(data)
                rel.append(f"media/{name}")
        elif media.kind == "video" and media.sources:
            src = Path(media.sources[0])
            h = hashlib.sha1()
            with open(src, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            name = h.hexdigest()[:16] + src.suffix.lower()
            if not (out_dir / name).exists():
                shutil.copyfile(src, out_dir / name)
            rel.append(f"media/{name}")
        else:  # PDF pages, or images without their source files: save the decoded images
            import io

            for im in media.images:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG")
                data = buf.getvalue()
                name = hashlib.sha1(data).hexdigest()[:16] + ".png"
                if not (out_dir / name).exists():
                    (out_dir / name).write_bytes(data)
                rel.append(f"media/{name}")
        return rel

    def record(self, result: CompareResult | None, vote: str) -> dict:
        """Append one row for ``result`` with ``vote``; return the row.

        Raises:
            InputError: no finished comparison yet (the vote is ignored), an unknown vote,
                or this comparison was already voted on.
        """
        if vote not in VOTES:
            raise InputError(f"Unknown vote {vote!r}; use one of {', '.join(VOTES)}.")
        if result is None or not result.complete:
            raise InputError("There is no finished comparison to vote on yet; run one first. The vote was ignored.")
        if result.voted is not None:
            raise InputError(f"This comparison already has a vote ({VOTE_LABELS[result.voted]}); "
                             f"run a new comparison to vote again.")
        with _lock_for(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            row = {
                "id": result.id,
                "timestamp": result.timestamp,
                "prompt": result.prompt,
                "media": self._copy_media(result.media),
                "system": result.system,
                "outputs": {s: result.sides[s].text for s in SIDES},
                "models": {s: result.sides[s].model_spec for s in SIDES},
                "modes": {s: result.sides[s].spec.mode for s in SIDES},
                # thinking on vs off is one model on both sides: without this the row
                # would not say what differed
                "thinking": {s: result.sides[s].spec.thinking for s in SIDES},
                "settings": result.settings,
                "vote": vote,
                "stats": {s: dataclasses.asdict(result.sides[s].stats) for s in SIDES},
            }
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        result.voted = vote
        return row

    def rows(self) -> list[dict]:
        """All rows so far (a half-written last line is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


__all__ = [
    "SIDES", "MODES", "VOTES", "VOTE_LABELS", "SideSpec", "CompareSettings", "Comparer", "CompareResult",
    "SideResult", "SideStart", "SideEvent", "CompareDone", "VoteLog", "votes_folder", "render_base_prompt",
    "render_chat_prompt", "build_base_inputs", "check_adapter", "inject_adapter", "adapter_active",
    "default_pair", "default_mode", "toy_available", "cut_at_stop", "THINKING_ID",
]
