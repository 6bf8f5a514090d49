"""The Compare tab's vote rows: the chosen side becomes the assistant target.

    {"prompt": "What is this?", "media": ["media/x.jpg"], "outputs": {"A": "…", "B": "…"}, "vote": "B"}

``tie`` and ``both_bad`` votes carry no target: the row is skipped and counted.
"""

from __future__ import annotations

from pathlib import Path

from studio.errors import DataError
from studio.engine.train.data.readers.common import Ctx, Draft, media_list, split_tags, text_of

NAME = "compare_vote"
LABEL = "Compare tab votes"
_VIDEO_EXTS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")


def matches(rec: dict, ctx: Ctx) -> bool:
    """``vote`` and ``outputs`` columns."""
    return "vote" in rec and "outputs" in rec


def read(rec: dict, ctx: Ctx) -> Draft | str:
    """One vote → :class:`~.common.Draft`, or ``"vote tie"`` / ``"vote both_bad"`` (skipped)."""
    vote = str(rec["vote"])
    if vote in ("tie", "both_bad"):
        return f"vote {vote}"
    outputs = rec["outputs"] or {}
    if vote not in ("A", "B") or vote not in outputs:
        raise DataError(f"{ctx.where}: vote {vote!r} is not A, B, tie or both_bad with a matching output.")
    media = media_list(rec.get("media"))
    videos = [m for m in media if isinstance(m, str) and Path(m).suffix.lower() in _VIDEO_EXTS]
    images = [m for m in media if m not in videos]
    items = [{"type": "video"} for _ in videos] + [{"type": "image"} for _ in images]
    prompt = rec.get("prompt") or ""
    items += split_tags(prompt, ctx.where) if isinstance(prompt, str) else []
    messages = [{"role": "user", "content": items},
                {"role": "assistant", "content": text_of(outputs[vote], ctx.where, "assistant")}]
    return Draft(messages, images, videos, None, {"format": NAME, "vote": vote})
