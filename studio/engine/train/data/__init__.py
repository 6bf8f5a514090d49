"""Training data in and out: readers for the ecosystem's formats, the data doctor, the collator and the
trained-token preview.

One module per idea: :mod:`.formats` (rows, policies), :mod:`.sources` (files read with
``datasets``), :mod:`.readers` (one module per source format → one row shape),
:mod:`.media_refs` (media paths, URLs and embedded bytes), :mod:`.dataset_info`
(LLaMA-Factory entries), :mod:`.detect` (SFT or RL, and why), :mod:`.loaders` (load / save
rows, decode media), :mod:`.collator` (batches and the preview), :mod:`.checks`,
:mod:`.coverage` and :mod:`.diagnosis` (the doctor). Everything is importable from
``studio.engine.train.data`` as before.

Why this module exists: most SFT pain is data that silently trains the wrong thing — an
unclosed ``</answer>``, an ``<image>`` placeholder without an image, a 4K photo whose
visual tokens get cut by ``max_length``. So every dataset goes through one door
(:func:`load_rows` → :class:`Row`), one checker (:func:`doctor`) and one batch builder
(:class:`Collator`) that both training and the trained-token preview use — the preview
shows exactly the loss mask training will use, because it *is* the training collation.

Formats read (JSONL / JSON / CSV / Parquet files, folders of them, ``datasets``
``save_to_disk`` folders, LLaMA-Factory ``dataset_info.json`` entries, hub dataset names when
a hub is reachable) — see :mod:`.readers` for the table: GLM-4.1V fine-tune / LLaMA-Factory /
ms-swift ``messages``, TRL conversational content lists, ShareGPT, ms-swift
query/response and conversation, Alpaca, prompt/completion, the Compare tab's votes.

Media paths resolve relative to the data file; absolute paths work as given (local data is
the user's own; the public Space builds no training tab).

Masking follows transformers' ``return_assistant_tokens_mask`` with the training template
``templates/glm4v_train.jinja`` (same bytes as the inference template, plus
``{% generation %}`` markers), as TRL's ``assistant_only_loss`` does.
"""

# The package's API, as when data was one module:
from studio.engine.train.data.formats import (  # noqa: F401
    DATA_EXTS,
    FIX_FLAGS,
    FIXES,
    IMAGE_PLACEHOLDER,
    POLICIES,
    Policy,
    Problem,
    Row,
    RowList,
    TRAIN_TEMPLATE_PATH,
    VIDEO_PLACEHOLDER,
    train_template,
)
from studio.engine.train.data.media_refs import MediaCache, resolve_media  # noqa: F401
from studio.engine.train.data.detect import Kind, detect_kind  # noqa: F401
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
    md_literal,
    auto_fix,
    diagnose,
    doctor,
    plan_rows,
    refuse_untrainable,
)
