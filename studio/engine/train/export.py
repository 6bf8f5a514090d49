"""Merge a LoRA adapter into its base model, save it, and prove the round trip.

Why verify: a merged folder that loads but generates something else (wrong base, a
target module that did not merge, a processor that was not saved, a dtype surprise) is
worse than no export, because nobody notices until later. So :func:`merge_adapter` only
reports success after it has reloaded the saved folder from disk and checked that greedy
decoding on a sample prompt (text + an image, through the processor) gives the same token
ids as base + adapter did before merging.

Steps (PEFT's documented path, ``PeftModel.merge_and_unload``)::

    load base (studio.engine.infer.models.load, never 4-bit: merging into NF4 weights is lossy)
    attach adapter (PEFT) → greedy-generate N tokens → reference ids
                         → same with the adapter disabled → did the adapter change anything?
    merge_and_unload → save_pretrained (safetensors) + processor → <out>.tmp folder
    free the model → reload the temp folder → greedy-generate N tokens → compare
    identical → rename the temp folder to ``out_dir``; else delete it and raise ExportError

Greedy decoding is forced to produce exactly N tokens (``min_new_tokens``) so every
comparison covers the same length. In float32 the ids must be identical. In bfloat16,
``W + BA`` rounded to bf16 is not bit-equal to ``W·x + B(A·x)``; a divergence at a
position where both models rate the two candidate tokens within ``tie_tolerance`` logits
of each other is reported (``near_tie``) and accepted; any other difference fails.

Additions to the module list in ARCHITECTURE: :class:`ExportError`, :func:`sample_image`,
:func:`greedy_ids`, :func:`compare_ids`, :func:`push_to_hub`.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from studio.config import ModelSpec
from studio.engine.fileperm import share_weights
from studio.errors import InputError, StudioError

DEFAULT_PROMPT = "Describe the image. How many shapes are there, and what colors are they?"
#: Default tie tolerance (logits) for bf16/other non-fp32 dtypes; fp32 is always strict.
BF16_TIE_TOLERANCE = 0.5


class ExportError(StudioError):
    """The merge, the save or the round-trip check failed; the message says which and why."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


def sample_image(size: int = 112):
    """A deterministic RGB test picture (PIL): a red circle, a blue square, a green triangle
    on white. Used as the default image of the round-trip check."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    s = size / 112
    d.ellipse([8 * s, 8 * s, 48 * s, 48 * s], fill=(220, 30, 30))
    d.rectangle([62 * s, 10 * s, 100 * s, 48 * s], fill=(30, 60, 220))
    d.polygon([(20 * s, 100 * s), (56 * s, 60 * s), (92 * s, 100 * s)], fill=(30, 170, 60))
    return img


def _inputs(processor, prompt: str, image, device):
    """Chat-template inputs for one user turn (image + text), on ``device``."""
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    content.append({"type": "text", "text": prompt})
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt")
    return inputs.to(device)


def greedy_ids(model, processor, prompt: str, image, n_tokens: int) -> tuple[list[int], list]:
    """Greedy-decode exactly ``n_tokens`` new tokens; returns ``(ids, scores)``.

    ``ids``: list of ``n_tokens`` ints. ``scores``: one float32 CPU tensor ``(vocab,)`` of
    the processed logits per generated position (for the near-tie check).
    """
    import torch

    device = next(model.parameters()).device
    inputs = _inputs(processor, prompt, image, device)
    gen = copy.deepcopy(model.generation_config)
    gen.do_sample = False
    # transformers' neutral defaults, never None: generate() refills None from the checkpoint's
    # sampling values (temperature 0.8, top_p 0.6 on GLM-4.6V-Flash) and then warns about them
    gen.temperature = 1.0
    gen.top_k = 50
    gen.top_p = 1.0
    gen.max_new_tokens = n_tokens
    gen.min_new_tokens = n_tokens
    gen.num_beams = 1
    gen.return_dict_in_generate = True
    gen.output_scores = True
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=gen)
    ids = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    scores = [s[0].float().cpu() for s in out.scores]
    return ids, scores


def compare_ids(ref: list[int], got: list[int], ref_scores=None, got_scores=None,
                tie_tolerance: float = 0.0) -> dict:
    """Compare two greedy id lists.

    Returns ``{"match": bool, "first_difference": int|None, "near_tie": bool,
    "tokens_compared": int, "margin": float|None}``. ``near_tie`` is True when, at the first
    difference, both score vectors rate the two tokens within ``tie_tolerance`` logits
    (so rounding, not a wrong merge, explains the divergence). Lengths that differ count
    as a difference at the shorter length.

    >>> compare_ids([1, 2, 3], [1, 2, 3])["match"]
    True
    >>> compare_ids([1, 2, 3], [1, 5, 3])["first_difference"]
    1
    """
    n = min(len(ref), len(got))
    first = next((i for i in range(n) if ref[i] != got[i]), None)
    if first is None and len(ref) != len(got):
        first = n
    out = {"match": first is None, "first_difference": first, "near_tie": False,
           "tokens_compared": n if first is None else first + 1, "margin": None}
    if first is not None and first < n and ref_scores is not None and got_scores is not None and tie_tolerance > 0:
        a, b = ref[first], got[first]
        m1 = float(ref_scores[first][a] - ref_scores[first][b])
        m2 = float(got_scores[first][b] - got_scores[first][a])
        out["margin"] = max(m1, m2)
        out["near_tie"] = m1 <= tie_tolerance and m2 <= tie_tolerance
    return out


def _base_spec(base: str | ModelSpec | None, adapter_dir: Path, device: str) -> ModelSpec:
    if isinstance(base, ModelSpec):
        spec = copy.deepcopy(base)
    else:
        name = base
        if not name:
            try:
                name = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
            except (OSError, ValueError):
                name = None
            if not name:
                raise InputError(f"{adapter_dir}/adapter_config.json does not name its base model; pass --base.")
        spec = ModelSpec(name_or_path=str(name), device=device)
    spec.adapter = None
    spec.load_in_4bit = False  # merge into full-precision weights, never into NF4
    return spec


def _free() -> None:
    """Collect garbage and return cached GPU memory (call after dropping model references)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def merge_adapter(base: str | ModelSpec | None, adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                  verify: bool = True, prompt: str = DEFAULT_PROMPT, image=None, n_tokens: int = 24,
                  device: str = "auto", overwrite: bool = False, tie_tolerance: float | None = None) -> dict:
    """Merge ``adapter_dir`` into ``base``, save to ``out_dir``, verify the round trip.

    Args:
        base: a :class:`ModelSpec`, a hub id / folder / ``"embedded"``, or None to use the
            adapter's ``base_model_name_or_path``.
        adapter_dir: a PEFT adapter folder (``adapter_config.json`` + safetensors).
        out_dir: where the merged model goes (safetensors weights, config, generation
            config, processor). Written to a temp folder and renamed at the end, so a
            failure never leaves a half folder at ``out_dir``.
        verify: reload and compare greedy outputs (strongly recommended).
        prompt, image: the sample (default :data:`DEFAULT_PROMPT` and :func:`sample_image`;
            ``image`` may be a PIL image or a path; ``False`` for text only).
        n_tokens: generated tokens compared.
        device: ``"auto"``, ``"cuda"`` or ``"cpu"`` when ``base`` is not a ModelSpec.
        overwrite: replace an existing non-empty ``out_dir`` (only after verification).
        tie_tolerance: logits; None → 0 for float32 weights, :data:`BF16_TIE_TOLERANCE` else.

    Returns:
        A report dict: ``base``, ``adapter``, ``out_dir``, ``verified``, ``match``,
        ``near_tie``, ``tokens_compared``, ``first_difference``, ``adapter_changes_output``,
        ``reference_ids``, ``merged_ids``, ``dtype``, ``seconds`` (per phase and total).

    Raises:
        InputError: missing adapter folder, ``out_dir`` exists (without ``overwrite``), no base.
        ModelLoadError: the base or the adapter cannot be loaded (from models.load).
        ExportError: save failed, or the reloaded model generates different tokens (the
            message gives the first differing position; ``err.report`` has the details).
    """
    from studio.engine.infer.models import attach_adapter, load

    t_start = time.perf_counter()
    adapter = Path(adapter_dir)
    if not (adapter / "adapter_config.json").is_file():
        raise InputError(f"{adapter} is not an adapter folder (no adapter_config.json); pick a run's "
                         f"`adapter` folder.")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(f"{out} already exists and is not empty; choose another --out or allow overwrite.")
    spec = _base_spec(base, adapter, device)
    image = _sample_arg(image)

    secs: dict[str, float] = {}
    t = time.perf_counter()
    model, processor = load(spec)
    model = attach_adapter(model, str(adapter))
    secs["load"] = time.perf_counter() - t
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    tol = tie_tolerance if tie_tolerance is not None else (0.0 if dtype == "float32" else BF16_TIE_TOLERANCE)
    report: dict[str, Any] = {"base": spec.name_or_path, "adapter": str(adapter), "out_dir": str(out),
                              "dtype": dtype, "verified": False, "match": None, "near_tie": False,
                              "tokens_compared": 0, "first_difference": None, "tie_tolerance": tol,
                              "prompt": prompt, "with_image": image is not None}
    ref_ids = ref_scores = None
    if verify:
        t = time.perf_counter()
        ref_ids, ref_scores = _reference_outputs(model, processor, prompt, image, n_tokens, report)
        secs["reference"] = time.perf_counter() - t

    t = time.perf_counter()
    merged = model.merge_and_unload()
    for attr in ("studio_name", "studio_path"):
        if hasattr(merged, attr):
            delattr(merged, attr)
    secs["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    tmp = _save_to_temp(merged, processor, out, report)
    secs["save"] = time.perf_counter() - t
    model = merged = None
    _free()

    try:
        if verify:
            t = time.perf_counter()
            m2, p2 = load(ModelSpec(name_or_path=str(tmp), device=spec.device, dtype=spec.dtype,
                                    attn_implementation=spec.attn_implementation))
            got_ids, got_scores = greedy_ids(m2, p2, prompt, image, n_tokens)
            m2 = p2 = None
            _free()
            cmp = compare_ids(ref_ids, got_ids, ref_scores, got_scores, tol)
            report.update(cmp, merged_ids=got_ids, verified=True)
            secs["verify"] = time.perf_counter() - t
            if not cmp["match"] and not cmp["near_tie"]:
                i = cmp["first_difference"]
                raise ExportError(
                    f"Round-trip check failed: the merged model's greedy output differs from base+adapter "
                    f"at token {i} of {n_tokens} (expected id {ref_ids[i] if i < len(ref_ids) else None}, got "
                    f"{got_ids[i] if i < len(got_ids) else None}). The merged folder was not kept; check that "
                    f"the adapter was trained on this base ({spec.name_or_path}).", report)
        report["seconds"] = {k: round(v, 3) for k, v in {**secs, "total": time.perf_counter() - t_start}.items()}
        (tmp / "studio_export.json").write_text(json.dumps(
            {k: v for k, v in report.items() if k not in ("base_ids", "reference_ids", "merged_ids")}, indent=1))
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _sample_arg(image):
    """``merge_adapter``'s ``image``: None → :func:`sample_image`, False → text only, a path → RGB."""
    if image is None:
        return sample_image()
    if image is False:
        return None
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        return Image.open(image).convert("RGB")
    return image


def _reference_outputs(model, processor, prompt: str, image, n_tokens: int, report: dict):
    """Greedy ids and scores of base+adapter (the round trip's reference), and whether the
    adapter changes the base's output at all (recorded in ``report``)."""
    ref_ids, ref_scores = greedy_ids(model, processor, prompt, image, n_tokens)
    with model.disable_adapter():
        base_ids, _ = greedy_ids(model, processor, prompt, image, n_tokens)
    report["adapter_changes_output"] = base_ids != ref_ids
    report["base_ids"] = base_ids
    report["reference_ids"] = ref_ids
    return ref_ids, ref_scores


def _save_to_temp(merged, processor, out: Path, report: dict) -> Path:
    """Save the merged model beside ``out`` in a temp folder (removed again if saving fails)."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        share_weights(tmp)
    except Exception as e:  # noqa: BLE001 - disk full, permissions: one clear sentence
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"Saving the merged model to {tmp.parent} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}. "
                          f"Nothing was written to {out}.", report) from None
    return tmp


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put ``tmp`` at ``out``; an existing ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def push_to_hub(out_dir: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload a merged folder to the Hugging Face Hub; returns the repo URL.

    The token comes from ``token``, ``$HF_TOKEN`` or ``hf auth login``'s stored token.

    Raises:
        ExportError: offline mode, no token, or the upload failed (message says which).
    """
    folder = Path(out_dir)
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder} is not a saved model folder (no config.json); export first.")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise InputError(f"--push needs a repo id like your-name/glm4v-finetuned, got {repo_id!r}.")
    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "TRUE", "yes"):
        raise ExportError("Not pushed: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE=1). "
                          f"The merged model is saved at {folder}; push it later from a connected machine.")
    token = token or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise ExportError("Not pushed: no Hugging Face token. Set HF_TOKEN or run `hf auth login`; "
                          f"the merged model is saved at {folder}.")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                          commit_message="Upload GLM-4.1V merged with a LoRA adapter (GLM-4.1V Studio)")
    except Exception as e:  # noqa: BLE001 - network/auth errors become one sentence
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExportError(f"Push to {repo_id} failed ({msg}). Check the network and that the token may write "
                          f"to that repo; the merged model is saved at {folder}.") from None
    return f"https://huggingface.co/{repo_id}"
