"""Alpaca rows: ``instruction`` (+ ``input``) → ``output``, with optional ``system`` and ``history``.

LLaMA-Factory's alpaca format and ms-swift's AutoPreprocessor both read these: the user
turn is ``instruction`` and ``input`` joined by a newline; ``history`` holds earlier
``[instruction, output]`` pairs. A LLaMA-Factory ``dataset_info.json`` entry may rename the
columns (``"prompt": "question", "response": "answer"``); its names are then used.

    {"instruction": "<image>Describe the chart.", "input": "Focus on the trend.",
     "output": "<think>…</think><answer>Rising.</answer>", "images": ["chart.png"]}
"""

from __future__ import annotations

from studio.errors import DataError
from studio.engine.train.data.readers.common import Ctx, Draft, refuse_tools, row_media, system_of, text_of
from studio.engine.train.data.readers.swift import pairs_to_messages

NAME = "alpaca"
LABEL = "Alpaca (instruction/input/output)"


def matches(rec: dict, ctx: Ctx) -> bool:
    """A dataset_info entry says alpaca, or ``instruction`` and ``output`` columns."""
    if ctx.entry is not None:
        return ctx.entry.formatting == "alpaca"
    return "instruction" in rec and "output" in rec


def read(rec: dict, ctx: Ctx) -> Draft:
    """One row → :class:`~.common.Draft` (raises DataError with the row named)."""
    refuse_tools(rec, ctx)
    prompt_col, query_col = ctx.col("prompt", "instruction"), ctx.col("query", "input")
    response_col, history_col = ctx.col("response", "output"), ctx.col("history", "history")
    if prompt_col not in rec or response_col not in rec:
        raise DataError(f"{ctx.where}: an alpaca row needs `{prompt_col}` and `{response_col}`; it has {sorted(rec)}.")
    parts = [text_of(rec.get(prompt_col), ctx.where, "user"), text_of(rec.get(query_col), ctx.where, "user")]
    prompt = "\n".join(p for p in parts if p)
    history = rec.get(history_col) or []
    if not isinstance(history, list):
        raise DataError(f"{ctx.where}: `{history_col}` must be a list of [instruction, output] pairs.")
    messages = pairs_to_messages(list(history) + [[prompt, rec.get(response_col)]], ctx, history_col)
    images, videos = row_media(rec, ctx)
    return Draft(messages, images, videos, system_of(rec, ctx), {"format": NAME})
