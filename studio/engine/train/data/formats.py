"""The rows every dataset becomes (:class:`Row`, :class:`RowList`), the thinking/loss policies, the
training template and the doctor's :class:`Problem` record. The formats read are in
:mod:`.readers`, media references in :mod:`.media_refs`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal


TRAIN_TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "templates" / "glm4v_train.jinja"
DATA_EXTS = (".jsonl", ".json", ".csv", ".parquet")
IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER = "<image>", "<video>"

#: Thinking/loss policies of the trained-token preview and of training (one switch).
POLICIES: dict[str, str] = {
    "last_thinking": "Train the last turn's thinking + answer; earlier turns keep only their answer "
                     "(thinking removed, as at inference) and carry no loss.",
    "answer_only": "Train only the last turn's <answer>…</answer>; its thinking stays in the text as "
                   "context without loss; earlier turns as above.",
    "all_turns": "Train every assistant turn as written, thinking included (multi-turn data).",
}
Policy = Literal["last_thinking", "answer_only", "all_turns"]

#: Auto-fixes the doctor can apply (see :func:`auto_fix`).
FIXES: dict[str, str] = {
    "close_answer": "append the missing </answer> to assistant turns that open <answer> but never close it",
    "add_empty_think": "turn answer-only assistant turns into <think>\\n</think><answer>…</answer>",
    "drop_answer_tags": "remove GLM-4.1V's <answer>/</answer> tags from rows for a GLM-4.6V model",
}
#: The command that applies each auto-fix (``studio doctor DATA --fix OUT`` applies the fixes of
#: the loaded model's family; answer-only turns get an empty thinking only when asked).
FIX_FLAGS: dict[str, str] = {
    "close_answer": "`studio doctor DATA --fix OUT`",
    "add_empty_think": "`studio doctor DATA --fix OUT --add-empty-think`",
    "drop_answer_tags": "`studio doctor DATA --model <GLM-4.6V model> --fix OUT`",
}


def train_template(family=None) -> str:
    """The training chat template text for ``family`` (None = GLM-4.1V): ``glm4v_train.jinja``,
    or ``glm46v_train.jinja`` for the GLM-4.6V format (same bytes as its chat template)."""
    from studio.engine.infer.family import GLM46V

    name = "glm46v_train.jinja" if family is not None and family.name == GLM46V else TRAIN_TEMPLATE_PATH.name
    return (TRAIN_TEMPLATE_PATH.parent / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One normalised training example.

    Attributes:
        messages: ``[{"role", "content"}]``; user content is a list of
            ``{"type": "image"}``, ``{"type": "video"}`` and ``{"type": "text", "text": str}``
            items in order; system and assistant content are plain strings.
        images: absolute paths, one per ``{"type": "image"}`` item, in order.
        videos: absolute paths, one per ``{"type": "video"}`` item, in order.
        meta: where it came from (``source``, ``line`` for JSONL, ``format``, ``vote``)
            and training hints (``image_scale`` set by :func:`plan_lengths`).
    """

    messages: list[dict]
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """The row as one JSON string (used as a dataset column)."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Row":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))

    def where(self, n: int | None = None) -> str:
        """Human label: ``row 3 (line 3)``."""
        label = f"row {n}" if n else "row"
        if "line" in self.meta:
            label += f" (line {self.meta['line']})"
        return label


class RowList(list):
    """A list of :class:`Row` plus what loading skipped.

    Attributes:
        skipped: reason → count (e.g. ``{"vote tie": 2, "vote both_bad": 1}``).
        problems: per-line / per-row load problems (invalid JSON, audio, untagged media in a
            multi-turn row) when loading was lenient; those rows are not in the list.
        source: the file or folder loaded.
        formats: format name (``Row.meta["format"]``) → rows read in it.
        kind: :class:`~.detect.Kind` of the data (SFT, and why), set by ``load_rows``.
        entry: the LLaMA-Factory ``dataset_info.json`` entry used, or None.
        media_written: embedded media files written to the cache by this load.
    """

    def __init__(self, rows: Iterable[Row] = (), source: str = ""):
        super().__init__(rows)
        self.skipped: Counter = Counter()
        self.problems: list[Problem] = []
        self.source = source
        self.formats: Counter = Counter()
        self.kind = None
        self.entry = None
        self.media_written = 0


@dataclass
class Problem:
    """One finding of the doctor.

    Attributes:
        row: 1-based row index in the loaded list (0 for file-level problems).
        severity: ``"error"`` (the row is not trained as is) or ``"warning"``.
        check: ``json``, ``empty``, ``shape``, ``tags``, ``placeholders``, ``media``
            (images and a video together), ``files``, ``length``, ``language`` or ``repetition``.
        message: what is wrong; fix: what to do; auto_fixable: a key of :data:`FIXES` or "".
        line: JSONL line when known.
    """

    row: int
    severity: Literal["error", "warning"]
    check: str
    message: str
    fix: str = ""
    auto_fixable: str = ""
    line: int | None = None
