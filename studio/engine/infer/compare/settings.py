"""What is compared and how: the two sides, the settings, the default pair, and the base/chat prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.config import BASE_ID, EMBEDDED, GenerationConfig, YamlConfig, check
from studio.engine.infer import chat, reasoning
from studio.engine.infer.chat import ChatTurn


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
        """Short name for headers: ``toy-base``; ``toy-thinking + adapter <run folder>`` for a
        run's ``adapter/`` (its own name says nothing), ``… + adapter checkpoint-40`` otherwise."""
        name = self.model if len(self.model) <= 40 else "…" + self.model[-39:]
        if self.adapter:
            a = Path(self.adapter)
            shown = a.parent.name if a.name == "adapter" and a.parent.name else (a.name or self.adapter)
            name += f" + adapter {shown}"
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
        # the prompt's text parts have the question's limit (a result keeps its settings)
        n = sum(len(str(ex.get("question", ""))) + len(str(ex.get("answer", ""))) for ex in self.few_shot)
        check(n <= chat.MAX_PROMPT_CHARS, "few_shot",
              f"holds {n:,} characters; the limit is {chat.MAX_PROMPT_CHARS:,}. Use fewer or shorter examples.")
        check(len(self.system or "") <= chat.MAX_PROMPT_CHARS, "system",
              f"is {len(self.system or ''):,} characters; the limit is {chat.MAX_PROMPT_CHARS:,}. Shorten it.")
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
                       system: str | None = None, history: list | None = None) -> str:
    """Completion-style prompt for a pretrained (Base) model — no chat roles.

    ``[gMASK]<sop>`` + system text + ``"\\n\\n"`` (if any) + each example as
    ``"Question: q\\nAnswer: a\\n\\n"`` + media placeholders + ``"Question: {question}\\nAnswer:"``.

    >>> render_base_prompt("What is 2+2?")
    '[gMASK]<sop>Question: What is 2+2?\\nAnswer:'

    ``history``: this side's earlier turns of a follow-up (:class:`~studio.engine.infer.chat.ChatTurn`
    user/assistant pairs), each as its media placeholders + ``"Question: q\\nAnswer: a\\n\\n"``
    after the examples (thinking stripped from the answers, as a chat template does).
    """
    parts = ["[gMASK]<sop>"]
    if system and system.strip():
        parts.append(system.strip() + "\n\n")
    for ex in few_shot or []:
        parts.append(f"Question: {str(ex['question']).strip()}\nAnswer: {str(ex['answer']).strip()}\n\n")
    for turn in history or []:
        if turn.role == "user":
            parts.append(media_placeholders(turn.media) + f"Question: {turn.text.strip()}\nAnswer:")
        else:
            parts.append(f" {reasoning.strip_thinking(turn.text).strip()}\n\n")
    parts.append(media_placeholders(media))
    parts.append(f"Question: {question.strip()}\nAnswer:")
    return "".join(parts)


def render_chat_prompt(processor, question: str, media=None, *, system: str | None = None,
                       thinking: bool | None = None, history: list | None = None) -> str:
    """The chat side's prompt text: the model's chat template with a generation prompt
    (``thinking=False``: through the family's switch, see :mod:`studio.engine.infer.family`);
    ``history``: this side's earlier turns (their thinking stripped by the template rules)."""
    from studio.engine.infer import family

    fam = family.of(processor)
    msgs = chat.build_messages([*(history or []), ChatTurn("user", question, media)], system, fam)
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False,
                                         **fam.template_kwargs(thinking))


def build_base_inputs(processor, question: str, media=None, *, few_shot=None, system=None, history=None):
    """Processor inputs (``input_ids`` (1, L), ``attention_mask``, ``mm_token_type_ids``,
    pixel values + grids when media is given) for :func:`render_base_prompt`."""
    text = render_base_prompt(question, media, few_shot=few_shot, system=system, history=history)
    return chat.run_processor(processor, text, [*(history or []), ChatTurn("user", question, media)])


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
