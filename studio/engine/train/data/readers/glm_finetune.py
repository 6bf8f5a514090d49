"""GLM-4.1V fine-tune rows: ``messages`` of ``{"role", "content"}`` with string content and
``<image>`` / ``<video>`` tags, plus ``images`` / ``videos`` lists.

The shape of GLM-V's README fine-tune example, LLaMA-Factory's ``mllm_demo.json`` (its
"OpenAI format") and ms-swift's standard ``messages`` rows, so one reader serves all three.
A ``system`` column beside ``messages`` (LLaMA-Factory, ms-swift) becomes the system turn.

    {"messages": [{"role": "user", "content": "<image>Who is this?"},
                  {"role": "assistant", "content": "<think>…</think><answer>A cat.</answer>"}],
     "images": ["images/cat.jpg"]}
"""

from __future__ import annotations

from studio.engine.train.data.readers.common import Ctx, Draft, read_turns, refuse_tools, row_media, system_of

NAME = "glm_finetune"
LABEL = "GLM-4.1V fine-tune messages (role/content with <image> tags, as LLaMA-Factory and ms-swift write them)"
COLUMNS = ("messages", "conversations", "conversation")


def turns_column(rec: dict) -> str | None:
    """The column holding role/content turns, or None."""
    for key in COLUMNS:
        v = rec.get(key)
        if isinstance(v, list) and v and isinstance(v[0], dict) and "role" in v[0]:
            return key
    return None


def matches(rec: dict, ctx: Ctx) -> bool:
    """role/content turns whose contents are all strings."""
    key = turns_column(rec)
    return key is not None and all(not isinstance(m.get("content"), (list, dict)) for m in rec[key]
                                   if isinstance(m, dict))


def read(rec: dict, ctx: Ctx, name: str = NAME) -> Draft:
    """One row of role/content turns → :class:`~.common.Draft` (raises DataError with the row
    named); ``name`` is the reader reported in the row's ``format`` (TRL's reader shares this)."""
    refuse_tools(rec, ctx)
    key = turns_column(rec)
    images, videos = row_media(rec, ctx)
    return Draft(read_turns(rec[key], ctx, column=key), images, videos, system_of(rec, ctx), {"format": name})
