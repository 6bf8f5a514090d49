"""The embedded tiny GLM-4.1V (and a GLM-4.6V-Flash replica), built in code with the real classes.

Why: CI and workshop laptops have no GPU and no model hub, yet every pipeline in the
product (template, processor, M-RoPE, streaming, LoRA, GRPO) must run for real. This
module builds a ~1 M-parameter :class:`~transformers.Glm4vForConditionalGeneration`
with random weights, a byte-level BPE tokenizer carrying GLM-4.1V's special tokens
(same special / non-special split as the real tokenizer), a :class:`Glm4vProcessor`
with the official chat template, and saves it with ``save_pretrained`` so that it is
loaded back through the very same ``from_pretrained`` path a hub id uses.

Sizes mirror transformers' own GLM-4.1V tests (see docs/FACTS.md): text hidden
128 × 2 layers, 4 heads / 2 KV heads, ``mrope_section`` [2, 3, 3]; vision hidden 32,
depth 1, patch 14, spatial merge 2, temporal patch 2.

``build_tiny(path, like="glm-4.6v-flash")`` builds the same network with GLM-4.6V-Flash's
tokenizer layout (its added tokens in the real order with the real special flags),
its chat template (thinking switch) and generation defaults — see :data:`FAMILY_SPECS`
and docs/FAMILIES.md for each fact's source and which are unconfirmed. The tiny
vocabulary is ~2k, so ids are the real ids minus a constant offset (:func:`real_id`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from studio.engine.fileperm import share_weights

# The real checkpoint's special tokens (special=True), in id order (151329…151344).
SPECIAL_TOKENS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|image|>", "<|video|>",
]
# Added but *not* special in the real tokenizer: they survive skip_special_tokens=True.
# Whether the box markers are special is not settled in public sources; we keep them
# non-special like the think/answer tags, and every decode path in the product keeps
# special tokens anyway (then strips role tokens itself), so either choice is safe.
REASONING_TOKENS = [
    "<think>", "</think>", "<answer>", "</answer>", "<|begin_of_box|>", "<|end_of_box|>",
]

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "templates" / "glm4v_chat.jinja"

#: The first added token's id in both real tokenizers (``<|endoftext|>``).
REAL_FIRST_ADDED_ID = 151329

# GLM-4.6V-Flash's added tokens in id order 151329…151364, with their special flag
# (GLM-4.5 tokenizer layout; docs/FAMILIES.md says which ids are confirmed).
GLM46V_ADDED = [
    ("<|endoftext|>", True), ("[MASK]", True), ("[gMASK]", True), ("[sMASK]", True),
    ("<sop>", True), ("<eop>", True), ("<|system|>", True), ("<|user|>", True),
    ("<|assistant|>", True), ("<|observation|>", True),
    ("<|begin_of_image|>", True), ("<|end_of_image|>", True),
    ("<|begin_of_video|>", True), ("<|end_of_video|>", True),
    ("<|begin_of_audio|>", True), ("<|end_of_audio|>", True),
    ("<|begin_of_transcription|>", True), ("<|end_of_transcription|>", True),
    ("<|code_prefix|>", True), ("<|code_middle|>", True), ("<|code_suffix|>", True),
    ("<think>", False), ("</think>", False), ("<tool_call>", False), ("</tool_call>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<arg_key>", False),
    ("</arg_key>", False), ("<arg_value>", False), ("</arg_value>", False), ("/nothink", False),
    ("<|begin_of_box|>", False), ("<|end_of_box|>", False),
    ("<|image|>", True), ("<|video|>", True),
]
GLM41V_ADDED = [(t, True) for t in SPECIAL_TOKENS] + [(t, False) for t in REASONING_TOKENS]

#: Per family: added tokens, chat template, context length, generation defaults.
FAMILY_SPECS = {
    "glm-4.1v": dict(
        added=GLM41V_ADDED, template="glm4v_chat.jinja", context=4096,
        eos=["<|endoftext|>", "<|user|>", "<|observation|>", "</answer>"],
        sampling=dict(do_sample=True, top_k=2),
    ),
    "glm-4.6v-flash": dict(
        added=GLM46V_ADDED, template="glm46v_chat.jinja", context=131072,
        eos=["<|endoftext|>", "<|user|>", "<|observation|>"],
        sampling=dict(do_sample=True, temperature=0.8, top_p=0.6, top_k=2, repetition_penalty=1.1),
    ),
}
LIKE_CHOICES = tuple(FAMILY_SPECS)


def real_id(tokenizer, token: str) -> int:
    """The id ``token`` has in the real checkpoint, from the tiny tokenizer's id.

    The tiny tokenizer adds the real added tokens in the real order, after a small BPE
    vocabulary, so ``real = tiny - first_added_tiny + 151329``."""
    first = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return tokenizer.convert_tokens_to_ids(token) - first + REAL_FIRST_ADDED_ID

#: Bump when anything below changes: it keys the on-disk cache of the built model.
TINY_VERSION = "2"

TEXT_CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    attention_bias=True,
    partial_rotary_factor=0.5,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
)
VISION_CONFIG = dict(
    hidden_size=32,
    depth=1,
    num_heads=4,
    intermediate_size=64,
    out_hidden_size=128,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    image_size=112,
)

#: Pixel budgets for the tiny processor (min, max pixels of smart_resize). The max
#: image budget gives at most 64 visual tokens per image; video budget is over all frames.
IMAGE_PIXELS = (28 * 28, 224 * 224)
VIDEO_PIXELS = (28 * 28 * 2, 112 * 112 * 16)

_CORPUS = """
The quick brown fox jumps over the lazy dog. A picture shows a red circle, a blue square
and a green triangle on a white background. How many shapes are there? There are three.
What color is the circle? The circle is red. Describe the image. The photo shows a cat
sitting on a chair next to a window. The video shows a person walking along a street.
Let me think step by step. First, count the objects. Then compare their sizes. So the
answer is 4. Answer: yes. No. Left, right, top, bottom, middle, bigger, smaller, larger.
0 1 2 3 4 5 6 7 8 9 10 11 12 + - * / = ( ) [ ] , . ? ! : ; ' " # % & _ < > |
This page of the document contains a table with numbers and a chart of the results.
Ein Bild zeigt einen Hund. Une image montre un chat. 这张图片显示了一只猫。 图中有几个圆？
"""


def _build_tokenizer(corpus: str = "", vocab_size: int = 1500, added: list | None = None):
    """Train a small byte-level BPE on a fixed corpus (plus ``corpus``) and add GLM's tokens.

    Args:
        corpus: extra training text; a model trained on a known domain (the workshop
            model, :mod:`studio.engine.workshop.toy_train`) passes its text so that its words
            become single tokens, as they are in the real 151k-token vocabulary.
        vocab_size: BPE vocabulary cap (before GLM's added tokens).
        added: ``(token, special)`` pairs in id order (None: GLM-4.1V's, as before).

    Returns a ``PreTrainedTokenizerFast`` padding left, eos/pad ``<|endoftext|>``.
    Deterministic: the same corpus and settings give the same vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4 + ([corpus] if corpus else []), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=65536,
    )
    if added is None:
        fast.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
        fast.add_tokens(REASONING_TOKENS, special_tokens=False)
        return fast
    from tokenizers import AddedToken

    for token, special in added:  # one at a time: ids follow the real order exactly
        fast.add_tokens([AddedToken(token, special=special, normalized=False)], special_tokens=special)
    fast.extra_special_tokens = [t for t, sp in added if sp and t != "<|endoftext|>"]
    return fast


def build_processor(corpus: str = "", vocab_size: int = 1500, like: str = "glm-4.1v"):
    """Build the tiny ``Glm4vProcessor`` (image + video processors, tokenizer, template).

    ``corpus`` / ``vocab_size`` go to the tokenizer (:func:`_build_tokenizer`); the
    defaults build the embedded model's tokenizer. ``like`` picks the family replica
    (:data:`LIKE_CHOICES`)."""
    from transformers import Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor

    spec = _spec(like)
    tokenizer = _build_tokenizer(corpus, vocab_size, None if like == "glm-4.1v" else spec["added"])
    image_processor = Glm4vImageProcessor(
        size={"shortest_edge": IMAGE_PIXELS[0], "longest_edge": IMAGE_PIXELS[1]},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    video_processor = Glm4vVideoProcessor(
        size={"shortest_edge": VIDEO_PIXELS[0], "longest_edge": VIDEO_PIXELS[1]},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        fps=2,
    )
    return Glm4vProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=(TEMPLATE_PATH.parent / spec["template"]).read_text(encoding="utf-8"),
    )


def _spec(like: str) -> dict:
    if like not in FAMILY_SPECS:
        from studio.errors import InputError

        raise InputError(f"Unknown --like {like!r}; choose one of: {', '.join(LIKE_CHOICES)}.")
    return FAMILY_SPECS[like]


def media_token_ids(ids) -> dict[str, int]:
    """The six media token-id fields of a ``Glm4vConfig``, looked up by token name with
    ``ids`` (e.g. ``tokenizer.convert_tokens_to_ids``): the image/video placeholders and
    their begin/end markers. Shared by the tiny replicas and the workshop models."""
    names = {"image_token_id": "<|image|>", "video_token_id": "<|video|>",
             "image_start_token_id": "<|begin_of_image|>", "image_end_token_id": "<|end_of_image|>",
             "video_start_token_id": "<|begin_of_video|>", "video_end_token_id": "<|end_of_video|>"}
    return {field: ids(token) for field, token in names.items()}


def build_model(tokenizer, seed: int = 0, like: str = "glm-4.1v"):
    """Build the tiny ``Glm4vForConditionalGeneration`` with random weights (fp32, eval).

    Args:
        tokenizer: the tokenizer from :func:`build_processor` (its ids fill the config).
        seed: torch seed for the random weights.
        like: family replica; sets the context length and generation_config
            (eos list and sampling defaults, :data:`FAMILY_SPECS`).
    """
    import torch
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration, GenerationConfig

    spec = _spec(like)
    ids = tokenizer.convert_tokens_to_ids
    vocab = len(tokenizer)
    config = Glm4vConfig(
        text_config=dict(TEXT_CONFIG, vocab_size=vocab, pad_token_id=ids("<|endoftext|>"),
                         max_position_embeddings=spec["context"],
                         eos_token_id=ids("<|endoftext|>")),
        vision_config=dict(VISION_CONFIG),
        **media_token_ids(ids),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        # As the real generation_config (GLM-4.1V: <|endoftext|>, <|user|>, <|observation|>,
        # </answer>; GLM-4.6V-Flash: the first three), plus that family's sampling keys.
        eos_token_id=[ids(t) for t in spec["eos"]],
        pad_token_id=ids("<|endoftext|>"),
        max_new_tokens=256,
        **spec["sampling"],
    )
    return model.eval()


def build_tiny(path: str | os.PathLike, seed: int = 0, like: str = "glm-4.1v") -> Path:
    """Build the tiny model + processor and ``save_pretrained`` them into ``path``.

    Writes safetensors weights, config, generation config and processor files.
    ``like`` picks the family replica (:data:`LIKE_CHOICES`). Returns the folder.
    Overwrites files already there.

    Raises:
        InputError: an unknown ``like``.
    """
    from transformers.utils import logging as hf_logging

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    _spec(like)
    processor = build_processor(like=like)
    model = build_model(processor.tokenizer, seed=seed, like=like)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 1 MB save needs no progress bar on the user's stderr
    try:
        model.save_pretrained(out, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    processor.save_pretrained(out)
    share_weights(out)
    (out / "studio_model.json").write_text(
        json.dumps({"kind": "embedded-tiny", "version": TINY_VERSION, "seed": seed, "like": like,
                    "note": "random weights: the text is not meaningful; the pipeline is real"}),
        encoding="utf-8",
    )
    return out


def cache_root() -> Path:
    """Folder for built models: ``$STUDIO_CACHE`` or ``~/.cache/glm4v-studio``."""
    env = os.environ.get("STUDIO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "glm4v-studio"


def embedded_path(seed: int = 0) -> Path:
    """Return the folder of the embedded tiny model, building it on first use (~1 s).

    The folder name carries a hash of the builder's settings, so a change in this
    module never reuses a stale build. Building writes to a temp folder and renames it,
    so two processes starting at once cannot leave a half-written model behind.
    """
    key = hashlib.sha1(
        json.dumps([TINY_VERSION, TEXT_CONFIG, VISION_CONFIG, IMAGE_PIXELS, VIDEO_PIXELS, seed,
                    TEMPLATE_PATH.read_text(encoding="utf-8")], sort_keys=True).encode()
    ).hexdigest()[:10]
    final = cache_root() / f"tiny-glm4v-{key}"
    if (final / "studio_model.json").is_file():
        return final
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    build_tiny(tmp, seed=seed)
    try:
        tmp.rename(final)
    except OSError:  # another process won the race; its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return final
