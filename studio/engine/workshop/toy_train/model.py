"""The workshop model's shapes and per-stage defaults: :data:`STAGES`, :func:`build_toy_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.workshop import tasks as T
from studio.engine.infer import tiny


#: The tiny model's shapes (studio.engine.infer.tiny), scaled up to ~4.0 M parameters (with the 796-token workshop vocabulary).
TOY_TEXT_CONFIG = dict(
    tiny.TEXT_CONFIG,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    # head_dim 64 × 0.5 / 2 = 16 rotary pairs split over (t, h, w)
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
)
TOY_VISION_CONFIG = dict(tiny.VISION_CONFIG, hidden_size=128, depth=4, intermediate_size=256, out_hidden_size=256)
IMAGE_TOKENS = (T.IMAGE_SIZE // 28) ** 2  # 16 merged visual tokens per 112×112 image
EVAL_SEED_OFFSET = 1000  # held-out scenes come from seed + 1000 (as `studio tasks --eval-n`)

@dataclass
class StageDefaults:
    """Per-stage training settings (overridable on the command line)."""

    steps: int
    lr: float
    batch: int
    warmup: int
    max_questions: int
    minutes: float  # wall-clock budget (see ``train(minutes=...)``)
    freeze_vision: bool = True  # see :func:`freeze_vision_encoder`
    freeze_merger: bool = True  # ditto: only the language model trains
    vision_steps: int = 0  # from scratch: dense vision pretraining first (:func:`pretrain_vision`)
    vision_minutes: float = 0.0


STAGES = {
    "base": StageDefaults(steps=4500, lr=1e-3, batch=16, warmup=40, max_questions=8, minutes=60,
                          vision_steps=800, vision_minutes=8),
    "thinking": StageDefaults(steps=2000, lr=5e-4, batch=12, warmup=20, max_questions=4, minutes=25),
}


def build_toy_model(tokenizer, seed: int = 0):
    """A randomly initialised ~4.0 M-parameter ``Glm4vForConditionalGeneration`` (fp32).

    Token ids and the generation config match :func:`studio.engine.infer.tiny.build_model`
    (eos = ``<|endoftext|>``, ``<|user|>``, ``<|observation|>``).
    """
    import torch
    from transformers import GenerationConfig, Glm4vConfig, Glm4vForConditionalGeneration

    from studio.engine.infer.tiny import media_token_ids

    ids = tokenizer.convert_tokens_to_ids
    config = Glm4vConfig(
        text_config=dict(TOY_TEXT_CONFIG, vocab_size=len(tokenizer), pad_token_id=ids("<|endoftext|>"),
                         eos_token_id=ids("<|endoftext|>")),
        vision_config=dict(TOY_VISION_CONFIG),
        **media_token_ids(ids),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
        pad_token_id=ids("<|endoftext|>"),
        do_sample=True,
        top_k=2,
        max_new_tokens=256,
    )
    return model
