"""RL rows: a prompt (with its images) and a reference answer, as the RL projects ship them.

=================================  ==================================  ==========================
project                            prompt                              reference
=================================  ==================================  ==========================
this Studio (``studio tasks``)     ``prompt`` string                   ``answer``
EasyR1 (geometry3k, math12k)       ``problem`` with ``<image>``        ``answer``
R1-V / ms-swift GEOQA              ``problem``                         ``solution`` (``<answer>…``)
ms-swift GRPO                      ``messages`` (system + user)        ``solution``
verl (geo3k preprocess)            ``prompt`` as a messages list       ``reward_model.ground_truth``
others                             ``question``                        ``ground_truth``
=================================  ==================================  ==========================

From a messages list the **last user turn** is the prompt (a system turn, or a ``system``
column, is kept as the prompt's system message); earlier turns are counted so the doctor can
say they are not used. A reference wrapped in ``<answer>…</answer>`` is reduced to its text
by the verifiers (:func:`studio.engine.rewards.reference_text`). Images come from
``images`` / ``image`` (paths, ``{"bytes", "path"}`` cells of a Parquet file — written once
to the media cache — or content items); ``<image>`` tags keep their place in the prompt,
untagged media go before the text. Audio is refused, naming the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studio.errors import DataError
from studio.engine.train.data.media_refs import resolve_media
from studio.engine.train.data.readers.common import Ctx, media_list, row_media, text_of, user_items

NAME = "rl_prompts"
TEXT_COLUMNS = ("prompt", "question", "problem", "messages")
ANSWER_COLUMNS = ("answer", "solution", "ground_truth", "reward_model.ground_truth")
_TAG = re.compile(r"<(image|video)>")


@dataclass
class RLRow:
    """One RL prompt as read.

    Attributes:
        text: the prompt text without media tags; content: the user content as items in
            order (``{"type": "image"|"video"}`` / ``{"type": "text", "text"}``).
        system: the system prompt or None.
        images / videos: absolute paths in order; answer: the reference (None when absent).
        text_column / answer_column: where they came from (``"problem"``,
            ``"reward_model.ground_truth"``); dropped_turns: earlier turns of a messages
            prompt that are not part of it.
        row: the row's columns for the reward functions (media columns → resolved paths).
    """

    text: str
    content: list[dict]
    system: str | None
    images: list[str]
    videos: list[str]
    answer: Any
    text_column: str
    answer_column: str | None
    dropped_turns: int = 0
    row: dict = field(default_factory=dict)


def answer_of(rec: dict) -> tuple[Any, str | None]:
    """(reference, its column) from ``answer`` / ``solution`` / ``ground_truth`` /
    ``reward_model.ground_truth``; ``(None, None)`` when the row has none.

    >>> answer_of({"reward_model": {"style": "rule", "ground_truth": "3"}})
    ('3', 'reward_model.ground_truth')
    """
    for col in ANSWER_COLUMNS:
        head, _, leaf = col.partition(".")
        v = rec.get(head)
        if leaf:
            v = v.get(leaf) if isinstance(v, dict) else None
        if v is not None and str(v).strip() != "":
            return v, col
    return None, None


def text_column(rec: dict) -> str | None:
    """The column holding the prompt, or None."""
    return next((c for c in TEXT_COLUMNS if rec.get(c) not in (None, "", [])), None)


def read_rl(rec: dict, ctx: Ctx) -> RLRow:
    """One raw RL row → :class:`RLRow`.

    Raises:
        DataError: not an object, audio in the row, a malformed messages prompt (the row named).
            A row without prompt text or reference is returned with ``text == ""`` /
            ``answer is None``; :func:`studio.engine.train.rl.load_prompts` lists those rows together.
    """
    if not isinstance(rec, dict):
        raise DataError(f"{ctx.where}: expected a JSON object per row, got {type(rec).__name__}.")
    col = text_column(rec) or "prompt"
    raw = rec.get(col)
    system = None
    dropped = 0
    if isinstance(raw, list) and raw and isinstance(raw[0], dict) and ("role" in raw[0] or "from" in raw[0]):
        turns = [m for m in raw if isinstance(m, dict)]
        role = lambda m: {"human": "user", "gpt": "assistant"}.get(m.get("role", m.get("from")),  # noqa: E731
                                                                   m.get("role", m.get("from")))
        body = lambda m: m.get("content", m.get("value"))  # noqa: E731
        last = max((i for i, m in enumerate(turns) if role(m) == "user"), default=None)
        sys_turn = next((m for m in turns if role(m) == "system"), None)
        system = text_of(body(sys_turn), ctx.where, "system") if sys_turn else None
        dropped = sum(1 for i, m in enumerate(turns) if role(m) != "system" and i != last)
        items = user_items(body(turns[last]), ctx.where) if last is not None else []
    else:
        items = user_items(raw if isinstance(raw, (str, list, dict)) else str(raw or ""), ctx.where)
    column_system = rec.get("system")
    if isinstance(column_system, str) and column_system.strip():
        if system is not None and system.strip() != column_system.strip():
            raise DataError(f"{ctx.where} has a `system` column and a different system turn; keep one of them.")
        system = column_system
    images, videos = row_media(rec, ctx)
    content, paths = _place(items, {"image": images, "video": videos}, ctx)
    answer, answer_col = answer_of(rec)
    row = dict(rec)
    for key in ("images", "image", "videos", "video"):
        if key in row:
            row[key] = paths["image" if key.startswith("image") else "video"]
    text = "".join(i.get("text", "") for i in content if i["type"] == "text")
    return RLRow(text=_TAG.sub("", text).strip(), content=content, system=system, images=paths["image"],
                 videos=paths["video"], answer=answer, text_column=col, answer_column=answer_col,
                 dropped_turns=dropped, row=row)


def _place(items: list[dict], listed: dict, ctx: Ctx) -> tuple[list[dict], dict]:
    """Media into the prompt: tags keep their place when their count matches the media,
    otherwise every medium goes before the text (tags dropped)."""
    paths: dict[str, list[str]] = {"image": [], "video": []}
    listed = {k: media_list(v) for k, v in listed.items()}
    tags = {k: sum(i["type"] == k and "ref" not in i for i in items) for k in paths}
    fits = all(tags[k] == len(listed[k]) for k in paths)
    queues = {k: iter(v) for k, v in listed.items()}
    out: list[dict] = []
    if not fits:
        for kind in ("video", "image"):
            for ref in listed[kind]:
                paths[kind].append(resolve_media(ref, ctx.base, ctx.where, ctx.cache))
                out.append({"type": kind})
    for item in items:
        kind = item["type"]
        if kind == "text":
            out.append(item)
        elif "ref" in item:
            paths[kind].append(resolve_media(item["ref"], ctx.base, ctx.where, ctx.cache))
            out.append({"type": kind})
        elif fits:
            paths[kind].append(resolve_media(next(queues[kind]), ctx.base, ctx.where, ctx.cache))
            out.append({"type": kind})
    return out, paths
