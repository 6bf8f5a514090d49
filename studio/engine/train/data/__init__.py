"""SFT data in and out: loaders, the data doctor, the collator and the trained-token preview.

One module per idea: :mod:`.formats` (rows, formats, policies), :mod:`.loaders` (files in and
out, media), :mod:`.collator` (batches and the preview), :mod:`.checks` and :mod:`.diagnosis`
(the doctor). Everything is importable from ``studio.engine.train.data`` as before.

Why this module exists: most SFT pain is data that silently trains the wrong thing — an
unclosed ``</answer>``, an ``<image>`` placeholder without an image, a 4K photo whose
visual tokens get cut by ``max_length``. So every dataset goes through one door
(:func:`load_rows` → :class:`Row`), one checker (:func:`doctor`) and one batch builder
(:class:`Collator`) that both training and the trained-token preview use — the preview
shows exactly the loss mask training will use, because it *is* the training collation.

Formats read (JSONL / JSON / CSV / Parquet files, folders of them, ``datasets``
``save_to_disk`` folders, hub dataset names when a hub is reachable):

* GLM-4.1V fine-tune example: ``{"messages": [{"role": "user", "content": "<image>Q"},
  {"role": "assistant", "content": "<think>…</think><answer>…</answer>"}],
  "images": ["a.jpg"], "videos": []}``;
* TRL conversational: ``messages`` whose user content is a list of ``{"type": "image"}``
  / ``{"type": "text", "text": …}`` items, plus ``images``;
* ``prompt`` / ``completion`` (strings or message lists) plus optional ``images``;
* the Compare tab's vote file: ``{"prompt", "media": [...], "outputs": {"A", "B"},
  "vote": "A"|"B"|"tie"|"both_bad"}`` — the chosen side becomes the assistant target;
  tie / both_bad rows are skipped and counted.

Media paths resolve relative to the data file and must stay inside its folder.
Masking follows transformers' ``return_assistant_tokens_mask`` with the training template
``templates/glm4v_train.jinja`` (same bytes as the inference template, plus
``{% generation %}`` markers), as TRL's ``assistant_only_loss`` does.
"""

# The package's API, as when data was one module:
from studio.engine.train.data.formats import (  # noqa: F401
    DATA_EXTS,
    FIXES,
    IMAGE_PLACEHOLDER,
    POLICIES,
    Policy,
    Problem,
    Row,
    RowList,
    TRAIN_TEMPLATE_PATH,
    VIDEO_PLACEHOLDER,
    normalise,
    resolve_media,
    train_template,
)
from studio.engine.train.data.loaders import (  # noqa: F401
    load_image,
    load_rows,
    load_video,
    save_rows,
    unused_path,
)
from studio.engine.train.data.collator import (  # noqa: F401
    Collator,
    render_preview,
    training_messages,
)
from studio.engine.train.data.checks import (  # noqa: F401
    check_language,
    check_repetition,
    check_tags,
    check_tags_no_answer,
    media_mix_problem,
    plural,
)
from studio.engine.train.data.diagnosis import (  # noqa: F401
    Report,
    auto_fix,
    diagnose,
    doctor,
    plan_rows,
    refuse_untrainable,
)
