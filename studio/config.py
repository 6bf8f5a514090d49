"""Configs as dataclasses that round-trip through YAML.

Each config validates itself (:meth:`YamlConfig.validate`) and raises
:class:`~studio.errors.ConfigError` naming the field to change. The UI turns its form
into one of these, saves it as ``config.yaml`` in the run folder, and runs the CLI on
that file — so the UI and ``studio <cmd> --config`` always do the same thing.

Nested configs are plain dataclass fields; ``from_dict`` rebuilds them from the type
annotations, and unknown keys are an error (a typo must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from studio.errors import ConfigError

T = TypeVar("T", bound="YamlConfig")

#: Default hub ids of the two real checkpoints.
THINKING_ID = "zai-org/GLM-4.1V-9B-Thinking"
BASE_ID = "zai-org/GLM-4.1V-9B-Base"
#: GLM-4.6V-Flash (9B, the GLM-4.5V/4.6V output format with a thinking switch).
FLASH_ID = "zai-org/GLM-4.6V-Flash"
#: The ``--model`` value that means "the embedded tiny model built in code".
EMBEDDED = "embedded"


#: Annotation of a field that takes the words ``auto`` / ``on`` / ``off``. YAML 1.1 reads a
#: bare ``on`` / ``off`` / ``yes`` / ``no`` as a boolean, so a hand-written ``field: on`` or
#: ``--set field=on`` arrives as True: :func:`parse_on_off` turns booleans (and
#: true/false/yes/no in any case) back into the words.
OnOffAuto = typing.NewType("OnOffAuto", str)
ON_OFF_AUTO = ("auto", "on", "off")


def parse_on_off(value: Any, name: str) -> str:
    """``auto`` / ``on`` / ``off`` from what a user may type or YAML may produce.

    >>> [parse_on_off(v, "x") for v in (True, False, "ON", "off", "true", "no", "auto")]
    ['on', 'off', 'on', 'off', 'on', 'off', 'auto']

    Raises:
        ConfigError: anything else (the message names the field and the accepted words).
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    word = str(value).strip().lower()
    if word in ("on", "true", "yes", "1"):
        return "on"
    if word in ("off", "false", "no", "0"):
        return "off"
    if word == "auto":
        return "auto"
    raise ConfigError(f"`{name}` must be auto, on or off (true/false also work), got {value!r}.")


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` (dataclasses, Optional, basics)."""
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if tp is OnOffAuto:
        return parse_on_off(value, name)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"`{name}` must be a mapping, got {value!r}.")
        return tp.from_dict(value, prefix=f"{name}.")
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value, name) if len(args) == 1 else value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        (inner, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(inner, v, name) for v in value]
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"`{name}` must be true or false, got {value!r}.")
        return bool(value)
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"`{name}` must be a number, got {value!r}.")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"`{name}` must be a number, got {value!r}.") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"`{name}` must be a whole number, got {value!r}.")
        return out
    if tp is str:
        return str(value)
    return value


@dataclasses.dataclass
class YamlConfig:
    """Mixin: ``from_dict`` / ``to_dict`` / ``from_yaml`` / ``to_yaml`` / ``validate``."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
        """Build from a mapping; unknown keys and badly typed values raise ConfigError."""
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(
                f"Unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
                f"valid names: {', '.join(sorted(fields))}."
            )
        kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML-safe types only)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_yaml(cls: type[T], path: str | Path) -> T:
        """Read and validate a YAML file; a missing/invalid file raises ConfigError."""
        cfg = cls.from_dict(read_yaml_mapping(path))
        cfg.validate()
        return cfg

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Return the YAML text; also write it to ``path`` (atomically) if given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(p.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(p)
        return text

    def validate(self) -> None:
        """Check values; raise ConfigError naming the field. Nested configs are checked too."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, YamlConfig):
                v.validate()


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or does not hold a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {p} must hold a mapping of settings.")
    return data


def apply_set_overrides(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Apply CLI ``--set KEY=VALUE`` items (dotted keys for nested fields, YAML values).

    >>> apply_set_overrides({"lora": {"rank": 8}}, ["lora.alpha=32", "report_to=[none]"])
    {'lora': {'rank': 8, 'alpha': 32}, 'report_to': ['none']}

    Raises:
        ConfigError: an item without ``=``.
    """
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
        key, val = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(val)
    return data


def check(cond: bool, field: str, msg: str) -> None:
    """Raise ``ConfigError("`field` msg")`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"`{field}` {msg}")


@dataclasses.dataclass
class ModelSpec(YamlConfig):
    """Which model to load and how.

    Attributes:
        name_or_path: a hub id (``zai-org/GLM-4.1V-9B-Thinking``), a local folder saved
            with ``save_pretrained``, or ``"embedded"`` for the tiny model built in code.
        dtype: ``"auto"`` (bf16 on a GPU that supports it, else fp32), ``"bfloat16"`` or
            ``"float32"``. ``"float16"`` is refused: GLM-4 backbones are reported to
            give NaN/"!!!!" in fp16.
        load_in_4bit: NF4 weights through bitsandbytes (QLoRA); needs CUDA.
        device: ``"auto"`` (cuda if present, else cpu), ``"cuda"``, ``"cpu"``.
        adapter: optional PEFT adapter folder applied on top of the weights.
        attn_implementation: attention kernel; ``"sdpa"`` by default.
    """

    name_or_path: str = EMBEDDED
    dtype: str = "auto"
    load_in_4bit: bool = False
    device: str = "auto"
    adapter: str | None = None
    attn_implementation: str = "sdpa"

    def validate(self) -> None:
        check(bool(self.name_or_path), "name_or_path", "must name a hub id, a folder or 'embedded'.")
        check(
            self.dtype != "float16",
            "dtype",
            "float16 is refused: GLM-4 backbones are reported to produce NaN in fp16; "
            "use bfloat16 (GPU) or float32.",
        )
        check(
            self.dtype in ("auto", "bfloat16", "float32"),
            "dtype",
            f"must be auto, bfloat16 or float32 (got {self.dtype!r}).",
        )
        check(self.device in ("auto", "cuda", "cpu"), "device", "must be auto, cuda or cpu.")
        check(
            self.attn_implementation in ("sdpa", "eager", "flash_attention_2"),
            "attn_implementation",
            "must be sdpa, eager or flash_attention_2.",
        )


@dataclasses.dataclass
class GenerationConfig(YamlConfig):
    """Sampling settings for one chat turn.

    Attributes:
        max_new_tokens: cap on generated tokens, thinking and answer together.
        temperature: 0 means greedy decoding.
        top_p, top_k, repetition_penalty: as in ``transformers.GenerationConfig``.
        thinking_budget: tokens allowed inside ``<think>``; when spent without
            ``</think>``, ``</think><answer>`` is appended and generation continues
            (GLM's benchmark script does the same). 0 turns the budget off.
        answer_budget: tokens allowed after a forced ``<answer>``.
        seed: sampling seed (None: nondeterministic).
        video_fps: frames sampled per second of video.
        max_frames: cap on sampled video frames (rounded down to even).
    """

    max_new_tokens: int = 1024
    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 2
    repetition_penalty: float = 1.0
    thinking_budget: int = 0
    answer_budget: int = 256
    seed: int | None = None
    video_fps: float = 2.0
    max_frames: int = 32

    def validate(self) -> None:
        check(1 <= self.max_new_tokens <= 65536, "max_new_tokens", "must be between 1 and 65536.")
        check(0 <= self.temperature <= 5, "temperature", "must be between 0 and 5.")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1].")
        check(self.top_k >= 0, "top_k", "must be 0 (off) or more.")
        check(0.5 <= self.repetition_penalty <= 3, "repetition_penalty", "must be between 0.5 and 3.")
        check(self.thinking_budget >= 0, "thinking_budget", "must be 0 (off) or more.")
        check(self.answer_budget >= 1, "answer_budget", "must be at least 1.")
        check(0 < self.video_fps <= 30, "video_fps", "must be in (0, 30].")
        check(2 <= self.max_frames <= 600, "max_frames", "must be between 2 and 600.")
