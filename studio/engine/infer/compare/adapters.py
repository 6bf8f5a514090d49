"""Adapters in Chat and Compare: one shared base, the adapter switched on per request (no second base loaded).

Every change to a shared model's adapter state — injecting an adapter (PEFT wraps the
model's layers), switching one on or off — and every generation that depends on it hold
the model's *generation lock* (:func:`generation_lock`), so one request's adapter can
never be switched under another request's generation (a check before a send, another
visitor's comparison …). Reading an adapter's shapes (:func:`check_adapter`) changes
nothing and takes no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterator

from studio.errors import JobBusyError, ModelLoadError

#: Seconds a request waits for another request's generation on the same weights.
LOCK_WAIT_S = 900.0
_LOCKS_GUARD = threading.Lock()


def generation_lock(model) -> threading.Lock:
    """The lock that guards ``model``'s adapter state and generation (one per model object).

    A plain :class:`threading.Lock`, not an RLock: gradio runs each step of a streaming
    handler in whichever worker thread is free, so the thread that releases it may not be
    the one that took it.
    """
    with _LOCKS_GUARD:
        lock = model.__dict__.get("_studio_generation_lock")
        if lock is None:
            lock = model.__dict__["_studio_generation_lock"] = threading.Lock()
        return lock


@contextlib.contextmanager
def _held(model, timeout: float = LOCK_WAIT_S) -> Iterator[None]:
    lock = generation_lock(model)
    if not lock.acquire(timeout=timeout):
        raise JobBusyError(f"The model has been busy with another request for {timeout:.0f} s; try again later.")
    try:
        yield
    finally:
        lock.release()


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
    """Run a block with adapter ``name`` switched on (None: all adapters off), holding the
    model's :func:`generation_lock` for the whole block (generate inside it).

    ``model`` is the plain model with PEFT layers injected (or without any). Outside the
    block the adapter layers are always left *disabled*, so other users of the same
    weights see the plain base model.

    Raises:
        JobBusyError: another request held the model for :data:`LOCK_WAIT_S` seconds.
    """
    with _held(model):
        with _switched(model, name):
            yield


@contextlib.contextmanager
def _switched(model, name: str | None):
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


@contextlib.contextmanager
def adapter_session(model, folder: str | None) -> Iterator[str | None]:
    """Hold ``model``'s :func:`generation_lock`, inject adapter ``folder`` (once) and switch
    it on for the block; yields its PEFT name (None for no adapter: all adapters off).

    The Chat tab generates inside this block, so the injection and the switch happen under
    the same lock as its generation.

    Raises:
        ModelLoadError: what :func:`inject_adapter` raises.
        JobBusyError: another request held the model for :data:`LOCK_WAIT_S` seconds.
    """
    with _held(model):
        name = _inject(model, folder)[0] if folder else None
        with _switched(model, name):
            yield name


def inject_adapter(model, folder: str) -> tuple[str, list[str]]:
    """Inject adapter ``folder`` into ``model`` (once), left disabled; return (name, notes).

    Holds the model's :func:`generation_lock` while PEFT changes its layers.
    """
    with _held(model):
        return _inject(model, folder)


def _inject(model, folder: str) -> tuple[str, list[str]]:
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
