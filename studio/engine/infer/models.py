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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.config import EMBEDDED, ModelSpec
from studio.errors import ModelLoadError

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("glm4v",)
#: Shipped workshop checkpoints, addressed by short name.
ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED = {"toy-base": ASSETS / "toy-base", "toy-thinking": ASSETS / "toy-thinking"}


def resolve(name_or_path: str) -> str:
    """Map ``"embedded"`` to the built tiny model's folder and ``toy-base``/``toy-thinking``
    to the shipped workshop checkpoints; expand ``~``; check folders.

    Raises:
        ModelLoadError: a path-like name (``./x``, ``/x``, ``~/x``, ``x/y/z``) that is not
            an existing folder.
    """
    if name_or_path in (EMBEDDED, "", None):
        from studio.engine.infer.tiny import embedded_path

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
    """True if ``path`` is a folder written by :func:`studio.engine.infer.tiny.build_tiny`."""
    return studio_meta(path).get("kind") == "embedded-tiny"


def checkpoint_folder(name_or_path: str) -> str | None:
    """The local folder holding a model's files: the folder itself (``embedded``, the
    toy models, a path), or a hub id's snapshot in the local Hugging Face cache; None
    when there is none (a mistyped path, a hub id not downloaded yet). Loads nothing."""
    try:
        path = resolve(name_or_path)
    except ModelLoadError:
        return None
    if Path(path).is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(path, "config.json")
    return str(Path(cached).parent) if isinstance(cached, str) else None


def checkpoint_family(name_or_path: str):
    """The :class:`~studio.engine.infer.family.Family` a model's files describe (thinking switch,
    sampling defaults …), read before — or without — loading its weights; None when
    :func:`checkpoint_folder` finds no files or they are unreadable."""
    from studio.engine.infer import family
    from studio.errors import StudioError

    folder = checkpoint_folder(name_or_path)
    if folder is None:
        return None
    try:
        return family.from_dir(folder)
    except (StudioError, OSError, ValueError):
        return None


def load_processor(name_or_path: str):
    """The processor of a model whose files are here (no weights load), for checks that
    need its tokenizer, chat template and image budgets before anything else happens; None
    when :func:`checkpoint_folder` finds no files (a hub id not downloaded) or they are
    unreadable."""
    folder = checkpoint_folder(name_or_path)
    if folder is None:
        return None
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError):
        return None


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


def precheck(spec: ModelSpec) -> str:
    """Check, without importing torch or transformers, that ``spec`` names something loadable.

    Used before a server starts so that a wrong ``--model`` fails at once: the spec's fields,
    the folder (or shipped name), a local folder's ``config.json`` model type, and — with
    ``HF_HUB_OFFLINE=1`` — that a hub id's config is in the local cache.

    Returns:
        The resolved path or hub id (as :func:`resolve`).

    Raises:
        ConfigError: a bad field. ModelLoadError: as :func:`resolve`, a folder without
            ``config.json``, another architecture, or an offline hub id that is not cached.
    """
    spec.validate()
    path = resolve(spec.name_or_path)
    cfg = Path(path) / "config.json"
    if Path(path).is_dir():
        try:
            model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            raise ModelLoadError(f"{spec.name_or_path!r} is not a model folder: it has no readable config.json.") from None
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelLoadError(
                f"{path!r} is a {model_type!r} model; GLM-4.1V Studio needs a GLM-4.1V "
                f"(glm4v) model such as zai-org/GLM-4.1V-9B-Thinking."
            )
    elif os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(path, "config.json"), str):
            raise _friendly(spec.name_or_path, RuntimeError("offline"))
    return path


def load(spec: ModelSpec, progress: Callable[[str], None] | None = None):
    """Load ``(model, processor)`` for a :class:`ModelSpec`.

    The model is in eval mode on the chosen device; fp32 on CPU, bf16 on capable GPUs,
    NF4 4-bit when ``spec.load_in_4bit`` (CUDA only). A ``spec.adapter`` is attached with
    PEFT (named ``"default"``).

    Args:
        spec: what to load.
        progress: called with a short phase name ("importing torch and transformers",
            "reading config", "loading processor", "loading weights", "attaching adapter")
            as each phase starts — what the UI shows while a model loads.

    Raises:
        ModelLoadError: missing folder, offline hub, wrong architecture, 4-bit without
            CUDA, no safetensors, adapter for another base.
    """
    say = progress or (lambda _phase: None)
    say("importing torch and transformers")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec.validate()
    device = pick_device(spec.device)
    if spec.load_in_4bit and device != "cuda":
        raise ModelLoadError(
            "--load-in-4bit needs an NVIDIA GPU with CUDA (bitsandbytes NF4); this machine has "
            "none. Leave 4-bit off to load in float32 on the CPU."
        )
    say("reading config")
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
        from studio.runtime import allow_bitsandbytes
        from transformers import BitsAndBytesConfig

        allow_bitsandbytes()

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16 if dtype == torch.bfloat16 else torch.float32,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=["visual", "lm_head"],
        )
        kwargs["device_map"] = {"": 0}
    try:
        say("loading processor")
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
        say(f"loading weights ({'NF4 4-bit' if spec.load_in_4bit else str(dtype).replace('torch.', '')} on {device})")
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - turned into one clear sentence
        raise _friendly(spec.name_or_path, e) from None
    if not spec.load_in_4bit:
        model.to(device)
    if spec.adapter:
        say("attaching adapter")
        model = attach_adapter(model, spec.adapter)
    model.eval()
    model.studio_name = spec.name_or_path  # type: ignore[attr-defined]
    model.studio_path = path  # type: ignore[attr-defined]
    from studio.engine.infer import family

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
class LoadStatus:
    """Where loading one model stands (what the UI shows until the model is ready).

    Attributes:
        name: the model as the user named it.
        phase: the current phase (see :func:`load`), ``"ready"`` or ``"failed"``.
        started: ``time.monotonic()`` at the start. finished: same at the end, else None.
        error: the one-sentence failure, when ``phase == "failed"``.
    """

    name: str
    phase: str = "waiting"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    @property
    def seconds(self) -> float:
        """Seconds spent so far (or in all, once finished)."""
        return (self.finished or time.monotonic()) - self.started


@dataclass
class ModelRegistry:
    """Loaded models by spec, shared by tabs; thread-safe.

    ``get(spec)`` loads once and returns the same ``(model, processor)`` afterwards;
    ``preload(spec)`` does it in a background thread (the app serves its page meanwhile)
    and ``status(spec)`` says how far it got; ``unload(spec)`` (or ``unload()`` for all)
    drops them and frees GPU memory.
    """

    _items: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _status: dict[str, LoadStatus] = field(default_factory=dict)

    @staticmethod
    def key(spec: ModelSpec) -> str:
        return json.dumps(spec.to_dict(), sort_keys=True)

    def get(self, spec: ModelSpec):
        """``(model, processor)`` for ``spec``, loading it on first use (ModelLoadError as :func:`load`)."""
        k = self.key(spec)
        with self._lock:
            if k not in self._items:
                st = self._status.setdefault(k, LoadStatus(spec.name_or_path))
                st.phase, st.started, st.finished, st.error = "starting", time.monotonic(), None, ""

                def phase(p: str) -> None:
                    st.phase = p

                try:
                    self._items[k] = load(spec, progress=phase)
                except Exception as e:
                    st.phase, st.error, st.finished = "failed", str(e).splitlines()[0] if str(e) else type(e).__name__, time.monotonic()
                    raise
                st.phase, st.finished = "ready", time.monotonic()
            return self._items[k]

    def preload(self, spec: ModelSpec, on_done: Callable[[LoadStatus], None] | None = None) -> LoadStatus:
        """Start loading ``spec`` in a daemon thread and return its :class:`LoadStatus` at once.

        ``on_done(status)`` is called from that thread when it ends (ready or failed).
        Requests that need the model meanwhile wait in :meth:`get` (same lock) instead of
        loading it twice.
        """
        k = self.key(spec)
        with self._lock:
            if k in self._items:
                return self._status.setdefault(k, LoadStatus(spec.name_or_path, "ready", finished=time.monotonic()))
            st = self._status.setdefault(k, LoadStatus(spec.name_or_path))

        def work() -> None:
            try:
                self.get(spec)
            except Exception:  # noqa: BLE001 - the status holds the sentence; the UI shows it
                log.info("loading %s failed: %s", spec.name_or_path, st.error)
            if on_done is not None:
                on_done(st)

        threading.Thread(target=work, name=f"load-{spec.name_or_path}", daemon=True).start()
        return st

    def status(self, spec: ModelSpec) -> LoadStatus | None:
        """The :class:`LoadStatus` of ``spec`` (None if it was never asked for)."""
        k = self.key(spec)
        if k in self._items and k not in self._status:
            return LoadStatus(spec.name_or_path, "ready", finished=time.monotonic())
        return self._status.get(k)

    def peek(self, spec: ModelSpec):
        """``(model, processor)`` if ``spec`` is loaded, else None; never waits for a load
        in progress (of this or another model), unlike :meth:`get`."""
        return self._items.get(self.key(spec))

    def loaded(self) -> list[ModelSpec]:
        return [ModelSpec.from_dict(json.loads(k)) for k in self._items]

    def unload(self, spec: ModelSpec | None = None) -> None:
        import torch

        with self._lock:
            if spec is None:
                self._items.clear()
                self._status.clear()
            else:
                self._items.pop(self.key(spec), None)
                self._status.pop(self.key(spec), None)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
