"""What the loaded model family expects: tags, token ids, thinking switch, defaults.

Why: the Studio started as a GLM-4.1V-Thinking tool and its code assumed that model's
``<think>…</think><answer>…</answer>`` output, its token ids and its template. The
GLM-4.5V / GLM-4.6V generation (GLM-4.6V-Flash is its 9B member, loaded by the same
``Glm4vForConditionalGeneration``) writes ``<think>…</think>`` followed by a plain answer,
has a thinking switch (``enable_thinking`` in its chat template) and other token ids. So
everything family-specific is *read from the checkpoint's own files at load time* and
described here, in one :class:`Family`; chat, compare, data, rewards and RL ask it.

Sources of each fact (see docs/FAMILIES.md):

* token ids: the tokenizer's added tokens and ``config.json`` (``image_token_id`` …);
* special / non-special split: ``AddedToken.special`` of each added token;
* answer tags: ``<answer>`` is a single added token (GLM-4.1V) or not (GLM-4.5V/4.6V);
* thinking switch: the chat template text mentions ``enable_thinking``;
* eos / sampling defaults: ``generation_config.json`` (only the keys it sets);
* context length: ``text_config.max_position_embeddings``.

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio.errors import InputError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
BOX_OPEN, BOX_CLOSE = "<|begin_of_box|>", "<|end_of_box|>"

#: Family names. ``glm-4.6v`` covers the GLM-4.5V / GLM-4.6V output format
#: (GLM-4.6V-Flash, 9B, is the member this Studio targets).
GLM41V, GLM46V = "glm-4.1v", "glm-4.6v"

#: Sampling keys copied from a checkpoint's generation_config when it sets them.
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "do_sample")


@dataclass(frozen=True)
class Family:
    """The loaded model family, as its checkpoint describes it.

    Attributes:
        name: :data:`GLM41V` or :data:`GLM46V` (decided by :func:`detect_name`).
        answer_tags: the answer is wrapped in ``<answer>…</answer>`` (GLM-4.1V).
        thinking_switch: the chat template takes ``enable_thinking`` (GLM-4.5V/4.6V);
            ``None`` when the family has no switch (GLM-4.1V-Thinking, GLM-4.1V-Base).
        token_ids: tag / role / media token → id in this tokenizer (only tokens it has).
        special: tokens the tokenizer marks ``special=True`` (dropped by
            ``skip_special_tokens``); the reasoning tags are never in it for either
            real family we know of, but the code does not rely on that.
        image_token_id / video_token_id: from ``config.json`` (the ids the model reads).
        eos_token_ids: generation_config's eos list.
        sampling: the sampling keys generation_config sets (see :data:`SAMPLING_KEYS`).
        context_length: ``text_config.max_position_embeddings`` (tokens).
    """

    name: str = GLM41V
    answer_tags: bool = True
    thinking_switch: str | None = None
    token_ids: dict[str, int] = field(default_factory=dict)
    special: frozenset[str] = frozenset()
    image_token_id: int | None = None
    video_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    sampling: dict[str, Any] = field(default_factory=dict)
    context_length: int = 65536

    # ------------------------------------------------------------ tags
    @property
    def label(self) -> str:
        """Human name: ``GLM-4.1V`` or ``GLM-4.6V``."""
        return {GLM41V: "GLM-4.1V", GLM46V: "GLM-4.6V"}.get(self.name, self.name)

    @property
    def tags(self) -> tuple[str, ...]:
        """The reasoning tags this family writes (think, maybe answer), in order."""
        return (THINK_OPEN, THINK_CLOSE) + ((ANSWER_OPEN, ANSWER_CLOSE) if self.answer_tags else ())

    @property
    def foreign_tags(self) -> tuple[str, ...]:
        """Tags of the *other* family that this one never writes (``<answer>`` for GLM-4.6V)."""
        return () if self.answer_tags else (ANSWER_OPEN, ANSWER_CLOSE)

    @property
    def force_text(self) -> str:
        """Text appended when a thinking budget runs out: close thinking, open the answer."""
        return THINK_CLOSE + (ANSWER_OPEN if self.answer_tags else "\n")

    @property
    def answer_close(self) -> str | None:
        """The tag that ends an answer (``</answer>``), or None where a role token ends it."""
        return ANSWER_CLOSE if self.answer_tags else None

    @property
    def format_hint(self) -> str:
        """The expected assistant format, for messages: ``<think>…</think><answer>…</answer>``."""
        return "<think>…</think><answer>…</answer>" if self.answer_tags else "<think>…</think>answer"

    def format_reply(self, thinking: str, answer: str) -> str:
        """An assistant reply in this family's format.

        >>> Family().format_reply("2+2", "4")
        '<think>2+2</think><answer>4</answer>'
        >>> Family(name=GLM46V, answer_tags=False).format_reply("2+2", "4")
        '<think>2+2</think>\\n4'
        """
        if self.answer_tags:
            return f"{THINK_OPEN}{thinking}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
        return f"{THINK_OPEN}{thinking}{THINK_CLOSE}\n{answer}"

    def history_reply(self, thinking_closed: bool, answer_raw: str) -> str:
        """What an earlier assistant turn keeps in the history (thinking dropped).

        GLM-4.1V: the answer in its ``<answer>`` tags (the official demo strips the
        thinking). GLM-4.6V: the bare answer; its template adds the empty think itself.
        """
        if self.answer_tags and thinking_closed:
            return f"{ANSWER_OPEN}{answer_raw}{ANSWER_CLOSE}"
        return answer_raw

    # ------------------------------------------------------------ thinking
    def template_kwargs(self, thinking: bool | None) -> dict[str, Any]:
        """Extra ``apply_chat_template`` kwargs for thinking on/off.

        Args:
            thinking: None or True = the model's default (thinking on); False = off.

        Raises:
            InputError: thinking off asked of a family without a switch.
        """
        if thinking is None or thinking:
            return {}
        if not self.thinking_switch:
            raise InputError(
                f"This {self.label} model has no thinking switch: its chat template takes no "
                "enable_thinking (GLM-4.1V-9B-Thinking always thinks; GLM-4.1V-9B-Base is not a "
                "chat model). Drop --no-thinking, or load a GLM-4.6V-Flash-style model; to cap "
                "thinking use --thinking-budget instead."
            )
        return {self.thinking_switch: False}

    def as_reference(self, text: str) -> str:
        """Rewrite a completion of this family into GLM-4.1V's format for the reward code.

        The format check and verifiers in :mod:`studio.engine.rewards` read
        ``<think>…</think><answer>…</answer>``; for a family without answer tags the text
        after the (first) ``</think>`` — up to trailing control tokens — is wrapped in
        ``<answer>…</answer>``. A completion that writes ``<answer>`` anyway (the other
        family's tags) then holds two and fails the format check, as it should. GLM-4.1V
        text is returned unchanged.

        >>> GLM46V_FORMAT.as_reference("<think>a</think>\\n<|begin_of_box|>4<|end_of_box|><|user|>")
        '<think>a</think><answer><|begin_of_box|>4<|end_of_box|></answer><|user|>'
        >>> GLM46V_FORMAT.as_reference("<think>a</think><answer>4</answer>").count("<answer>")
        2
        """
        if self.answer_tags:
            return text
        i = text.find(THINK_CLOSE)
        if i == -1:
            return text
        head, rest = text[: i + len(THINK_CLOSE)], text[i + len(THINK_CLOSE):]
        body = rest.rstrip()
        tail_start = len(body)
        changed = True
        while changed:  # peel trailing role / end tokens (<|user|>, <|endoftext|> …)
            changed = False
            for t in _TRAILING:
                if body[:tail_start].endswith(t):
                    tail_start -= len(t)
                    changed = True
        answer = body[:tail_start].strip("\n")
        return f"{head}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}{body[tail_start:]}{rest[len(body):]}"

    def generation_defaults(self, base):
        """``base`` (a :class:`studio.config.GenerationConfig`) with the sampling values
        this checkpoint's generation_config sets (temperature, top_p, top_k,
        repetition_penalty, max_new_tokens; ``do_sample=false`` → temperature 0). Other
        fields unchanged.

        >>> from studio.config import GenerationConfig
        >>> g = Family(sampling={"top_k": 5, "max_new_tokens": 256}).generation_defaults(GenerationConfig())
        >>> g.top_k, g.max_new_tokens, g.temperature == GenerationConfig().temperature
        (5, 256, True)
        """
        s = self.sampling
        out = replace(base)
        if s.get("do_sample") is False:
            out.temperature = 0.0
        elif "temperature" in s:
            out.temperature = float(s["temperature"])
        for key in ("top_p", "repetition_penalty"):
            if key in s:
                setattr(out, key, float(s[key]))
        for key in ("top_k", "max_new_tokens"):
            if key in s:
                setattr(out, key, int(s[key]))
        return out

    def id(self, token: str) -> int | None:
        """Id of an added token in this tokenizer, or None."""
        return self.token_ids.get(token)


#: The family the Studio assumes when no model is at hand (the doctor without a model,
#: reward functions called without a family): GLM-4.1V-Thinking's format.
DEFAULT = Family()

#: Added tokens whose ids are recorded in :attr:`Family.token_ids`.
_TRACKED = (
    THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, BOX_OPEN, BOX_CLOSE,
    "<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|image|>", "<|video|>", "/nothink",
)


_TRAILING = ("<|endoftext|>", "<|user|>", "<|observation|>", "<|assistant|>", "<|system|>", "<eop>")


def detect_name(has_answer_token: bool, template: str) -> str:
    """Decide the family from two checkpoint facts.

    GLM-4.5V/4.6V: the template takes ``enable_thinking`` and the tokenizer has no
    ``<answer>`` token. Everything else (GLM-4.1V-Thinking/Base, the workshop models
    built from the tiny GLM-4.1V) is GLM-4.1V.

    >>> detect_name(True, "{{ x }}"), detect_name(False, "{% if enable_thinking %}")
    ('glm-4.1v', 'glm-4.6v')
    """
    return GLM46V if ("enable_thinking" in template and not has_answer_token) else GLM41V


def _switch(template: str) -> str | None:
    return "enable_thinking" if "enable_thinking" in template else None


def _sampling(gen: dict) -> dict[str, Any]:
    return {k: gen[k] for k in SAMPLING_KEYS if gen.get(k) is not None}


def _eos(gen: dict) -> tuple[int, ...]:
    eos = gen.get("eos_token_id")
    return tuple(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def from_parts(added: dict[str, bool], vocab_ids: dict[str, int], template: str, config: dict,
               generation: dict) -> Family:
    """Build a :class:`Family` from raw checkpoint facts (no transformers needed).

    Args:
        added: added-token text → its ``special`` flag.
        vocab_ids: token text → id for the tracked tokens the tokenizer has.
        template: the chat template text ("" if none).
        config: ``config.json`` as a dict.
        generation: ``generation_config.json`` keys as a dict (only the keys it sets).
    """
    text_cfg = config.get("text_config") or config
    return Family(
        name=detect_name(ANSWER_OPEN in added, template),
        answer_tags=ANSWER_OPEN in added,
        thinking_switch=_switch(template),
        token_ids=dict(vocab_ids),
        special=frozenset(t for t, s in added.items() if s),
        image_token_id=config.get("image_token_id"),
        video_token_id=config.get("video_token_id"),
        eos_token_ids=_eos(generation),
        sampling=_sampling(generation),
        context_length=int(text_cfg.get("max_position_embeddings") or 65536),
    )


def from_loaded(processor, model=None) -> Family:
    """Describe the family of a loaded processor (+ model): tokenizer, template, configs.

    ``model`` may be None (tokenizer/template facts only; eos, sampling and context then
    come from nothing and keep their defaults). A ``PeftModel`` is fine.
    """
    tok = getattr(processor, "tokenizer", processor)
    added = {str(t.content if hasattr(t, "content") else t): bool(getattr(t, "special", False))
             for t in getattr(tok, "added_tokens_decoder", {}).values()}
    vocab_ids = {}
    for t in _TRACKED:
        if t in added:
            vocab_ids[t] = int(tok.convert_tokens_to_ids(t))
    template = getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None) or ""
    if isinstance(template, dict):
        template = template.get("default", "") or ""
    config: dict = {}
    generation: dict = {}
    if model is not None:
        cfg = getattr(model, "config", None)
        if cfg is not None:
            config = cfg.to_dict()
        gc = getattr(model, "generation_config", None)
        if gc is not None:
            generation = dict(gc.to_diff_dict())
            generation.setdefault("eos_token_id", gc.eos_token_id)
    return from_parts(added, vocab_ids, str(template), config, generation)


def of(processor, model=None) -> Family:
    """The :class:`Family` of a loaded processor, computed once and kept on it.

    :func:`studio.engine.infer.models.load` calls this with the model at load time; later
    callers that only hold the processor get the same object back.
    """
    fam = getattr(processor, "studio_family", None)
    if fam is not None and (model is None or fam.eos_token_ids):
        return fam
    fam = from_loaded(processor, model)
    try:
        processor.studio_family = fam
    except AttributeError:  # pragma: no cover - exotic processor objects
        pass
    return fam


def from_dir(path: str | Path) -> Family:
    """Read a checkpoint folder's files (no weights, no transformers import).

    Reads ``tokenizer.json`` / ``tokenizer_config.json`` (added tokens and their special
    flags), ``chat_template.jinja`` / ``chat_template.json`` / the tokenizer config's
    ``chat_template``, ``config.json`` and ``generation_config.json``.

    Raises:
        InputError: the folder has no config.json.
    """
    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError(f"{str(p)!r} has no config.json; give a model folder saved with save_pretrained.")
    read = lambda name: json.loads((p / name).read_text(encoding="utf-8")) if (p / name).is_file() else {}  # noqa: E731
    added: dict[str, bool] = {}
    ids: dict[str, int] = {}
    for t in read("tokenizer.json").get("added_tokens", []):
        added[t["content"]] = bool(t.get("special"))
        ids[t["content"]] = int(t["id"])
    tcfg = read("tokenizer_config.json")
    for i, t in (tcfg.get("added_tokens_decoder") or {}).items():
        added[t["content"]] = bool(t.get("special"))
        ids[t["content"]] = int(i)
    template = ""
    if (p / "chat_template.jinja").is_file():
        template = (p / "chat_template.jinja").read_text(encoding="utf-8")
    elif (p / "chat_template.json").is_file():
        template = read("chat_template.json").get("chat_template", "")
    elif isinstance(tcfg.get("chat_template"), str):
        template = tcfg["chat_template"]
    return from_parts(added, {t: i for t, i in ids.items() if t in _TRACKED}, template,
                      read("config.json"), read("generation_config.json"))


def with_name(fam: Family, name: str) -> Family:
    """A copy of ``fam`` told to be another family (tests, data converted by hand)."""
    return replace(fam, name=name, answer_tags=(name == GLM41V))


#: GLM-4.6V's format without a checkpoint: for the doctor / rewards when a user names it.
GLM46V_FORMAT = Family(name=GLM46V, answer_tags=False, thinking_switch="enable_thinking")


def by_name(name: str | None) -> Family:
    """:data:`DEFAULT` or :data:`GLM46V_FORMAT` by family name (for configs and CLI flags).

    Raises:
        InputError: an unknown name.
    """
    if not name or name in (GLM41V, "glm4v", "glm-4.1v-thinking"):
        return DEFAULT
    if name in (GLM46V, "glm-4.6v-flash", "glm-4.5v"):
        return GLM46V_FORMAT
    raise InputError(f"Unknown model family {name!r}; use {GLM41V} or {GLM46V}.")
