"""Load GLM-4.1V models and processors: hub ids, local folders, the embedded tiny model.

``load(spec)`` is the one door. It resolves the name, checks the architecture *before*
loading weights, picks a dtype (bf16 on GPUs that support it, else fp32; fp16 refused),
loads safetensors only, never with ``trust_remote_code``, and turns every failure into
one clear :class:`~studio.errors.ModelLoadError` sentence.

:class:`ModelRegistry` keeps loaded models by spec so tabs share one copy, and frees
them on ``unload``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import EMBEDDED, ModelSpec
from studio.errors import ModelLoadError

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("glm4v",)
#: Shipped workshop checkpoints, addressed by short name.
ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = {"toy-base": ASSETS / "toy-base", "toy-thinking": ASSETS / "toy-thinking"}


def resolve(name_or_path: str) -> str:
    """Map ``"embedded"`` to the built tiny model's folder and ``toy-base``/``toy-thinking``
    to the shipped workshop checkpoints; expand ``~``; check folders.

    Raises:
        ModelLoadError: a path-like name (``./x``, ``/x``, ``~/x``, ``x/y/z``) that is not
            an existing folder.
    """
    if name_or_path in (EMBEDDED, "", None):
        from studio.engine.tiny import embedded_path

        return str(embedded_path())
    if name_or_path in SHIPPED:
        folder = SHIPPED[name_or_path]
        if not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"The workshop model {name_or_path!r} is not shipped in this install "
                f"(expected {folder}); use 'embedded' or rebuild it (see README)."
            )
        return str(folder)
    p = Path(os.path.expanduser(name_or_path))
    if p.is_dir():
        return str(p)
    looks_like_path = (
        name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1 or p.exists()
    )
    if looks_like_path:
        raise ModelLoadError(
            f"Model folder {name_or_path!r} does not exist. Pass an existing folder saved with "
            f"save_pretrained, a hub id like zai-org/GLM-4.1V-9B-Thinking, or leave --model out "
            f"to use the embedded model."
        )
    return name_or_path


def default_chat_model() -> str:
    """What the app and ``studio chat`` use with no ``--model``: the shipped workshop model
    ``toy-thinking`` (a GLM-4.1V trained here, it writes the think/answer format) when it is
    installed, else the embedded random-weight model (issue: a learning model replaces the
    random one wherever it is better)."""
    return "toy-thinking" if (SHIPPED["toy-thinking"] / "config.json").is_file() else EMBEDDED


def studio_meta(path: str) -> dict:
    """The ``studio_model.json`` of a model folder (``kind``, ``stage``, the training command…);
    ``{}`` when there is none or it cannot be read."""
    try:
        meta = json.loads((Path(path) / "studio_model.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def is_workshop(path: str) -> bool:
    """True if ``path`` is a shipped workshop checkpoint (``studio_model.json`` kind workshop-toy)."""
    return studio_meta(path).get("kind") == "workshop-toy"


def is_embedded(path: str) -> bool:
    """True if ``path`` is a folder written by :func:`studio.engine.tiny.build_tiny`."""
    return studio_meta(path).get("kind") == "embedded-tiny"


def pick_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device=cuda was asked for, but this machine has no CUDA GPU; use auto or cpu.")
    return device


def pick_dtype(dtype: str, device: str):
    """Resolve ``"auto"``: bf16 on a CUDA GPU that supports it, else fp32.

    fp16 is refused (GLM-4 backbones are reported to produce NaN / "!!!!" in fp16).
    """
    import torch

    if dtype in ("float16", "fp16", "half"):
        raise ModelLoadError(
            "float16 is refused: GLM-4 backbones are reported to produce NaN in fp16. "
            "Use bfloat16 on a GPU or float32."
        )
    if dtype == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float32": torch.float32, "fp32": torch.float32}[dtype]


def _friendly(name: str, err: Exception) -> ModelLoadError:
    msg = str(err)
    low = msg.lower()
    if any(s in low for s in ("offline", "couldn't connect", "connection", "local_files_only",
                              "we couldn't connect", "cannot find the requested files")):
        return ModelLoadError(
            f"Could not load {name!r}: it is not in the local Hugging Face cache and the hub "
            f"cannot be reached (offline). Download it on a connected machine, or pass a local folder."
        )
    if "does not appear to have a file named" in low or "no file named" in low:
        return ModelLoadError(f"{name!r} is not a complete model folder: {msg.splitlines()[0]}")
    if "safetensors" in low:
        return ModelLoadError(
            f"{name!r} has no safetensors weights; only safetensors are loaded (pickle files can run code)."
        )
    if "repository not found" in low or "is not a valid model identifier" in low or "404" in low:
        return ModelLoadError(f"{name!r} is not a model on the hub or a local folder.")
    return ModelLoadError(f"Could not load {name!r}: {msg.splitlines()[0] if msg else type(err).__name__}")


def check_architecture(path: str) -> Any:
    """Load the config only and check it is a GLM-4.1V (``glm4v``) model.

    Raises:
        ModelLoadError: unreadable config or another architecture.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - turned into one clear sentence
        raise _friendly(path, e) from None
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{path!r} is a {config.model_type!r} model; GLM-4.1V Studio needs a GLM-4.1V "
            f"(glm4v) model such as zai-org/GLM-4.1V-9B-Thinking."
        )
    return config


def load(spec: ModelSpec):
    """Load ``(model, processor)`` for a :class:`ModelSpec`.

    The model is in eval mode on the chosen device; fp32 on CPU, bf16 on capable GPUs,
    NF4 4-bit when ``spec.load_in_4bit`` (CUDA only). A ``spec.adapter`` is attached with
    PEFT (named ``"default"``).

    Raises:
        ModelLoadError: missing folder, offline hub, wrong architecture, 4-bit without
            CUDA, no safetensors, adapter for another base.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec.validate()
    device = pick_device(spec.device)
    if spec.load_in_4bit and device != "cuda":
        raise ModelLoadError(
            "--load-in-4bit needs an NVIDIA GPU with CUDA (bitsandbytes NF4); this machine has "
            "none. Leave 4-bit off to load in float32 on the CPU."
        )
    path = resolve(spec.name_or_path)
    check_architecture(path)
    dtype = pick_dtype(spec.dtype, device)
    kwargs: dict[str, Any] = dict(
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=False,
        attn_implementation=spec.attn_implementation,
    )
    if spec.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16 if dtype == torch.bfloat16 else torch.float32,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=["visual", "lm_head"],
        )
        kwargs["device_map"] = {"": 0}
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - turned into one clear sentence
        raise _friendly(spec.name_or_path, e) from None
    if not spec.load_in_4bit:
        model.to(device)
    if spec.adapter:
        model = attach_adapter(model, spec.adapter)
    model.eval()
    model.studio_name = spec.name_or_path  # type: ignore[attr-defined]
    model.studio_path = path  # type: ignore[attr-defined]
    from studio.engine import family

    # Read the family (tags, ids, thinking switch, defaults) from the checkpoint once, now.
    model.studio_family = family.of(processor, model)  # type: ignore[attr-defined]
    return model, processor


def attach_adapter(model, adapter: str, name: str = "default"):
    """Attach a PEFT LoRA adapter folder to ``model`` (returns a ``PeftModel``).

    Raises:
        ModelLoadError: missing folder / ``adapter_config.json``, or an adapter whose
            layers do not exist in this model (trained for another base).
    """
    from peft import PeftModel

    p = Path(os.path.expanduser(adapter))
    if not (p / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"Adapter folder {adapter!r} has no adapter_config.json; pick the `adapter` folder of a finished run."
        )
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(p), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(p), adapter_name=name, is_trainable=False)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(
            f"Adapter {adapter!r} does not fit the loaded model (was it trained on another base?): "
            f"{str(e).splitlines()[0]}"
        ) from None


@dataclass
class ModelRegistry:
    """Loaded models by spec, shared by tabs; thread-safe.

    ``get(spec)`` loads once and returns the same ``(model, processor)`` afterwards;
    ``unload(spec)`` (or ``unload()`` for all) drops them and frees GPU memory.
    """

    _items: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def key(spec: ModelSpec) -> str:
        return json.dumps(spec.to_dict(), sort_keys=True)

    def get(self, spec: ModelSpec):
        k = self.key(spec)
        with self._lock:
            if k not in self._items:
                self._items[k] = load(spec)
            return self._items[k]

    def loaded(self) -> list[ModelSpec]:
        return [ModelSpec.from_dict(json.loads(k)) for k in self._items]

    def unload(self, spec: ModelSpec | None = None) -> None:
        import torch

        with self._lock:
            if spec is None:
                self._items.clear()
            else:
                self._items.pop(self.key(spec), None)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
