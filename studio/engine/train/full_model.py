"""What a full fine-tune makes: the language model unfrozen for training, the result saved
as a loadable model folder; and the LoRA module names of a PEFT model (for checks)."""

from __future__ import annotations

import json
from pathlib import Path

from studio.engine.fileperm import share_weights


def unfreeze_language_model(model, merger: bool = False) -> int:
    """Make every language-model weight trainable (embeddings, blocks, norm, lm_head); the
    vision tower stays frozen, the merger too unless ``merger``. Returns the trainable count.
    """
    n = 0
    for name, p in model.named_parameters():
        in_visual = ".visual." in f".{name}"
        if not in_visual or (merger and ".merger." in name):
            p.requires_grad_(True)
            n += p.numel()
    return n


def save_full_model(model, processor, out: Path, cfg, state_dict: dict | None = None) -> Path:
    """Save a fully fine-tuned model as a loadable folder (safetensors + processor +
    ``studio_model.json`` saying it is a thinking-stage model made by this SFT run).
    ``state_dict``: the gathered weights of a sharded (FSDP) model; None: the model's own.

    The base's ``studio_model.json`` (e.g. a workshop model's ``kind``) is carried over with
    ``stage: thinking`` and the run's config, so ``studio eval`` scores it in the
    think/answer format and the Chat tab treats it like its base.
    """
    from studio.engine.infer.models import resolve, studio_meta

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True, state_dict=state_dict)
    processor.save_pretrained(str(out))
    meta = dict(studio_meta(resolve(cfg.model.name_or_path)))
    meta.update({"stage": "thinking", "made_by": "studio sft (finetuning: full)", "base": cfg.model.name_or_path,
                 "sft_config": cfg.to_dict()})
    (out / "studio_model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    share_weights(out)
    return out


def lora_module_names(model) -> list[str]:
    """Module paths that carry LoRA weights in a PEFT model (for checks and tests)."""
    return sorted({n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n})
