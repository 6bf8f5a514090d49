"""``prompt`` / ``completion`` rows (TRL's prompt-completion type), strings or message lists.

    {"prompt": "<image>What animal?", "completion": "<think>…</think><answer>A cat.</answer>", "images": ["cat.jpg"]}
    {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What animal?"}]}],
     "completion": [{"role": "assistant", "content": "…"}], "images": ["cat.jpg"]}
"""

from __future__ import annotations

from studio.engine.train.data.readers.common import (Ctx, Draft, read_turns, refuse_tools, row_media, system_of,
                                                     text_of, user_items)

NAME = "prompt_completion"
LABEL = "prompt/completion"


def matches(rec: dict, ctx: Ctx) -> bool:
    """``prompt`` and ``completion`` columns."""
    return ctx.entry is None and "prompt" in rec and "completion" in rec


def read(rec: dict, ctx: Ctx) -> Draft:
    """One row → :class:`~.common.Draft` (raises DataError with the row named)."""
    refuse_tools(rec, ctx)
    prompt, completion = rec["prompt"], rec["completion"]
    messages = (read_turns(prompt, ctx, column="prompt") if isinstance(prompt, list) and prompt
                and isinstance(prompt[0], dict) and "role" in prompt[0]
                else [{"role": "user", "content": user_items(prompt, ctx.where)}])
    if isinstance(completion, list) and completion and isinstance(completion[0], dict) and "role" in completion[0]:
        messages += read_turns(completion, ctx, column="completion")
    else:
        messages.append({"role": "assistant", "content": text_of(completion, ctx.where, "assistant")})
    images, videos = row_media(rec, ctx)
    return Draft(messages, images, videos, system_of(rec, ctx), {"format": NAME})
