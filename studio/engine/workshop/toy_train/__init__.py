"""Train the workshop model from scratch on CPU: ``toy-base`` then ``toy-thinking``.

The GLM-4.1V pipeline in miniature (arXiv 2507.01006 §3–4): a pretrained vision encoder, a
*base* model pretrained on image captions and plain question→answer text, then
long-CoT-style SFT whose job is the format
``<think>…</think><answer><|begin_of_box|>…<|end_of_box|></answer>``. Same classes
(``Glm4vForConditionalGeneration``), processor and chat template as the embedded tiny
model (:mod:`studio.engine.infer.tiny`); larger sizes (~4 M parameters: text hidden 256 × 4
layers, vision hidden 128 × depth 4) and a tokenizer whose BPE also saw the task's text
(:func:`build_toy_processor`).

Commands (each well under 90 min on 2 CPU cores; measured 35 and 6 min)::

    python -m studio.engine.workshop.toy_train base --out studio/assets/toy-base --seed 0
    python -m studio.engine.workshop.toy_train thinking --init studio/assets/toy-base \
        --out studio/assets/toy-thinking --seed 0

The recipe, each step measured here (numbers in the functions' docstrings):

1. *Vision pretraining* (:func:`pretrain_vision`, ~4 min): the vision tower learns dense
   per-cell labels (content, colour, row, column, size) with linear heads that are then
   thrown away, so every visual token carries its cell's attributes linearly. Two
   data-independent fixes make it learn: a fixed 2-D sine-cosine position embedding
   (:func:`sincos_position_embedding`) and a patch-embedding bias that maps the blank
   canvas to zero (:func:`cancel_background`; without it colour was never learnt).
2. *Base pretraining* (vision tower frozen, its tokens rescaled to std 0.5 by
   :func:`scale_visual_tokens`): captions listing every object in reading order plus
   plain ``Question:/Answer:`` lines or chat turns, many questions per image, fresh
   synthetic scenes every step, easy scenes first (:func:`level_weights`); no loss on
   the questions.
3. *Thinking SFT*: the same scenes as GLM-format chats with a short trace and a boxed
   answer.

Earlier recipes, kept as options and measured worse: a random frozen vision tower
(``--vision-steps 0``; 67 % held-out accuracy and chance on "How many red circles?"),
a vision tower trained only through the language model's loss (``--train-vision``:
collapsed), and a trained merger on a random encoder (``--train-merger``: collapsed
onto colour). The log shows the visual tokens' variance shares (:func:`variance_shares`)
and, every ``--eval-every`` steps, :func:`vision_diagnostic` (``img_gap``: loss with
shuffled images minus loss with the right ones) and the teacher-forced answer accuracy
per family; ``--min-gap`` stops a run that ignores the images.

Runs are step-based on this machine: the wall-clock budgets (``--minutes``, default 60
for base and 15 for thinking) only cut a run short on a slower machine, and then the LR
cosine and the curriculum follow the larger of step and time progress so the run still
ends with a decayed LR. ``--minutes 0`` turns the budgets off (bit-reproducible on one
machine).

A checkpoint (``save_pretrained``, safetensors) is written every ``--save-minutes``; the
optimizer state lives in a resume folder outside the output, so ``--resume`` continues a
crashed run from the last checkpoint. The final weights are re-saved in bfloat16
(:func:`ship`) so both models fit the repository's 25 MB budget.

Modules: :mod:`.model` (shapes, stage defaults), :mod:`.sequences` (corpus, captions, chats,
batches), :mod:`.vision` (the vision tower's recipe), :mod:`.loop` (:func:`train`),
:mod:`.diagnostics` (development-only probes; never change the weights) and :mod:`.cli`.
Everything is importable from ``studio.engine.workshop.toy_train`` as before.
"""

# The package's API, as when toy_train was one module:
from studio.engine.workshop.toy_train.model import (  # noqa: F401
    EVAL_SEED_OFFSET,
    IMAGE_TOKENS,
    STAGES,
    StageDefaults,
    TOY_TEXT_CONFIG,
    TOY_VISION_CONFIG,
    build_toy_model,
)
from studio.engine.workshop.toy_train.sequences import (  # noqa: F401
    ANSWER,
    IMAGE_BLOCK,
    LOSS,
    NO_LOSS,
    SceneStream,
    TOY_VOCAB,
    add_kind_counts,
    build_toy_processor,
    caption,
    chat_messages,
    encode,
    eval_keys,
    forward_loss,
    level_weights,
    make_batch,
    question_text,
    segments,
    toy_corpus,
)
from studio.engine.workshop.toy_train.vision import (  # noqa: F401
    SIZE_MEAN,
    SIZE_SCALE,
    VISION_HEADS,
    cancel_background,
    freeze_vision_encoder,
    pretrain_vision,
    scale_visual_tokens,
    sincos_position_embedding,
)
from studio.engine.workshop.toy_train.diagnostics import (  # noqa: F401
    family_accuracy,
    probe_record,
    progress_line,
    shuffled_images,
    variance_shares,
    vision_diagnostic,
)
from studio.engine.workshop.toy_train.loop import (  # noqa: F401
    save,
    ship,
    train,
)
from studio.engine.workshop.toy_train.cli import (  # noqa: F401
    add_arguments,
    main,
    run,
)
