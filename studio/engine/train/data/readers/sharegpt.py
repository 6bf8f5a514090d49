"""ShareGPT rows: ``conversations`` of ``{"from", "value"}`` turns with roles ``human`` / ``gpt`` / ``system``.

LLaMA-Factory's sharegpt format (its ``data/README.md``), with a ``system`` column and
``images`` / ``videos``. A LLaMA-Factory ``dataset_info.json`` entry may rename every part
— the column (``"messages": "dialog"``), the turn keys (``"role_tag": "speaker"``,
``"content_tag": "text"``) and the role values (``"user_tag": "customer"``): with
``--dataset-info FILE --dataset NAME`` (or a folder holding that file) the entry's names
are used, so such files train as they do in LLaMA-Factory.

    {"conversations": [{"from": "human", "value": "<image>What is this?"},
                       {"from": "gpt", "value": "<think>…</think><answer>A cat.</answer>"}],
     "system": "You are a careful observer.", "images": ["cat.jpg"]}
"""

from __future__ import annotations

from studio.errors import DataError
from studio.engine.train.data.readers.common import Ctx, Draft, read_turns, refuse_tools, row_media, system_of

NAME = "sharegpt"
LABEL = "ShareGPT (conversations: from/value turns, roles human/gpt/system)"
#: Role values ShareGPT files use, besides a dataset_info entry's own.
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def matches(rec: dict, ctx: Ctx) -> bool:
    """A dataset_info entry says sharegpt, or ``conversations`` turns use ``from``/``value``."""
    if ctx.entry is not None:
        return ctx.entry.formatting == "sharegpt"
    for key in ("conversations", "messages", "conversation"):
        v = rec.get(key)
        if isinstance(v, list) and v and isinstance(v[0], dict) and ("from" in v[0] or "value" in v[0]):
            return True
    return False


def read(rec: dict, ctx: Ctx) -> Draft:
    """One row → :class:`~.common.Draft` (raises DataError with the row named)."""
    refuse_tools(rec, ctx)
    if ctx.entry is not None:
        tags = ctx.entry.tags
        column = ctx.col("messages", "conversations")
        role_key, content_key = tags["role_tag"], tags["content_tag"]
        roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system"}
    else:
        column = next(k for k in ("conversations", "messages", "conversation") if isinstance(rec.get(k), list))
        role_key, content_key, roles = "from", "value", ROLES
    if column not in rec:
        raise DataError(f"{ctx.where}: no `{column}` column (the dataset_info entry's messages column); the row "
                        f"has {sorted(rec)}.")
    images, videos = row_media(rec, ctx)
    messages = read_turns(rec[column], ctx, role_key=role_key, content_key=content_key, roles=roles, column=column)
    return Draft(messages, images, videos, system_of(rec, ctx), {"format": NAME})
