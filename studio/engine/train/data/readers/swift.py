"""ms-swift's two non-``messages`` shapes (its custom-dataset docs): query/response/history and
system + conversation. (ms-swift's ``messages`` rows are :mod:`.glm_finetune` rows.)

    {"system": "…", "query": "<image>And now?", "response": "…",
     "history": [["<image>First question", "first answer"]], "images": ["a.jpg", "b.jpg"]}
    {"system": "…", "conversation": [{"human": "<image>Q1", "assistant": "A1"}, {"human": "Q2", "assistant": "A2"}]}

``history`` pairs come first, then ``query`` → ``response``; every pair is one user and one
assistant turn.
"""

from __future__ import annotations

from studio.errors import DataError
from studio.engine.train.data.readers.common import (Ctx, Draft, refuse_tools, row_media, system_of, text_of,
                                                     user_items)

NAME_QR = "swift_query_response"
LABEL_QR = "ms-swift query/response (+ history, system)"
NAME_CONV = "swift_conversation"
LABEL_CONV = "ms-swift system + conversation (human/assistant pairs)"


def matches_query_response(rec: dict, ctx: Ctx) -> bool:
    """``query`` and ``response`` columns."""
    return ctx.entry is None and "query" in rec and "response" in rec


def matches_conversation(rec: dict, ctx: Ctx) -> bool:
    """``conversation`` (or ``conversations``) of ``{"human", "assistant"}`` pairs."""
    for key in ("conversation", "conversations"):
        v = rec.get(key)
        if isinstance(v, list) and v and isinstance(v[0], dict) and "human" in v[0] and "role" not in v[0]:
            return ctx.entry is None
    return False


def pairs_to_messages(pairs: list, ctx: Ctx, column: str) -> list[dict]:
    """``[[query, response], …]`` (or ``{"human", "assistant"}`` objects) → alternating turns.

    Raises: DataError for a pair that is not two texts.
    """
    out: list[dict] = []
    for pair in pairs:
        if isinstance(pair, dict):
            q, a = pair.get("human", pair.get("user")), pair.get("assistant", pair.get("gpt"))
        elif isinstance(pair, (list, tuple)) and len(pair) == 2:
            q, a = pair
        else:
            raise DataError(f"{ctx.where}: every entry of `{column}` must be a [question, answer] pair, "
                            f"got {str(pair)[:60]!r}.")
        out.append({"role": "user", "content": user_items(q, ctx.where)})
        out.append({"role": "assistant", "content": text_of(a, ctx.where, "assistant")})
    return out


def read_query_response(rec: dict, ctx: Ctx) -> Draft:
    """One query/response row → :class:`~.common.Draft`."""
    refuse_tools(rec, ctx)
    history = rec.get("history") or []
    if not isinstance(history, list):
        raise DataError(f"{ctx.where}: `history` must be a list of [question, answer] pairs.")
    messages = pairs_to_messages(list(history) + [[rec.get("query"), rec.get("response")]], ctx, "history")
    images, videos = row_media(rec, ctx)
    return Draft(messages, images, videos, system_of(rec, ctx), {"format": NAME_QR})


def read_conversation(rec: dict, ctx: Ctx) -> Draft:
    """One system + conversation row → :class:`~.common.Draft`."""
    refuse_tools(rec, ctx)
    column = "conversation" if isinstance(rec.get("conversation"), list) else "conversations"
    images, videos = row_media(rec, ctx)
    return Draft(pairs_to_messages(rec[column], ctx, column), images, videos, system_of(rec, ctx),
                 {"format": NAME_CONV})
