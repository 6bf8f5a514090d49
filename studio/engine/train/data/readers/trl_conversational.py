"""TRL conversational rows: ``messages`` whose contents are lists of typed items.

As TRL's vision-language examples and OpenAI-style chat logs write them:
``{"type": "text", "text": …}``, ``{"type": "image"}`` placeholders filled from the row's
``images`` list in order, and items that carry their image: ``{"type": "image", "image":
"path"}``, ``{"type": "image", "url" | "path": …}``, ``{"type": "image_url", "image_url":
{"url": "data:image/png;base64,…"}}`` (data URLs are written once to the media cache). A
Parquet or ``datasets`` file may hold the images themselves (``{"bytes", "path"}``).

    {"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.jpg"},
                                               {"type": "text", "text": "What animal?"}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "<think>…</think><answer>…</answer>"}]}]}
"""

from __future__ import annotations

from studio.engine.train.data.readers.common import Ctx, Draft
from studio.engine.train.data.readers import glm_finetune
from studio.engine.train.data.readers.glm_finetune import turns_column

NAME = "trl_conversational"
LABEL = "TRL conversational messages (content lists of text/image items)"


def matches(rec: dict, ctx: Ctx) -> bool:
    """role/content turns, at least one content a list (or one item object)."""
    key = turns_column(rec)
    return key is not None and any(isinstance(m.get("content"), (list, dict)) for m in rec[key]
                                   if isinstance(m, dict))


def read(rec: dict, ctx: Ctx) -> Draft:
    """One row → :class:`~.common.Draft` (raises DataError with the row named): the same turns
    reading as GLM fine-tune rows; content lists are read item by item there."""
    return glm_finetune.read(rec, ctx, NAME)
