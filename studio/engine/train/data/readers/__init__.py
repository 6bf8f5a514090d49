"""One reader per data format the ecosystem ships, each onto the one internal :class:`~..formats.Row`.

==========================  ===========================================================
reader                      rows it reads
==========================  ===========================================================
:mod:`.glm_finetune`        ``messages`` role/content strings + ``<image>`` tags (GLM-V,
                            LLaMA-Factory ``mllm_demo.json``, ms-swift ``messages``)
:mod:`.trl_conversational`  ``messages`` with content lists (TRL, OpenAI ``image_url``)
:mod:`.sharegpt`            ``conversations`` of ``from``/``value`` (LLaMA-Factory sharegpt)
:mod:`.swift`               ms-swift ``query``/``response``/``history`` and ``conversation``
:mod:`.alpaca`              ``instruction``/``input``/``output``
:mod:`.prompt_completion`   ``prompt``/``completion``
:mod:`.compare_vote`        the Compare tab's vote file
:mod:`.rl_rows`             RL prompts + reference answers (EasyR1, verl, ms-swift GRPO …)
==========================  ===========================================================

:func:`read_sft` picks the reader by the row's columns (or by a LLaMA-Factory
``dataset_info.json`` entry) and :func:`finish` does what all formats share:

* a ``system`` column becomes the system turn (a differing system turn in the messages
  too is refused: one of them would be lost);
* audio (``audios`` column, ``<audio>`` tags, audio items) is refused, naming the row;
* images and videos listed without any ``<image>`` / ``<video>`` tag go before the first
  user text when the row has **one** user turn (TRL's and LLaMA-Factory's convention; the
  doctor lists these rows); with several user turns the row is refused with the fix (which
  turn shows which image cannot be known);
* every media reference becomes a file path (:func:`~..media_refs.resolve_media`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from studio.errors import DataError
from studio.engine.train.data.formats import Row
from studio.engine.train.data.media_refs import resolve_media
from studio.engine.train.data.readers import (alpaca, compare_vote, glm_finetune, prompt_completion, sharegpt,
                                              swift, trl_conversational)
from studio.engine.train.data.readers.common import Ctx, Draft


@dataclass(frozen=True)
class Reader:
    """A format: its name (``Row.meta["format"]``), label (the doctor's "read as …"),
    column test and reader."""

    name: str
    label: str
    matches: Callable[[dict, Ctx], bool]
    read: Callable[[dict, Ctx], "Draft | str"]


#: SFT readers in the order they are tried (the first whose columns match reads the row).
SFT_READERS = (
    Reader(compare_vote.NAME, compare_vote.LABEL, compare_vote.matches, compare_vote.read),
    Reader(sharegpt.NAME, sharegpt.LABEL, sharegpt.matches, sharegpt.read),
    Reader(alpaca.NAME, alpaca.LABEL, lambda r, c: c.entry is not None and alpaca.matches(r, c), alpaca.read),
    Reader(swift.NAME_CONV, swift.LABEL_CONV, swift.matches_conversation, swift.read_conversation),
    Reader(trl_conversational.NAME, trl_conversational.LABEL, trl_conversational.matches, trl_conversational.read),
    Reader(glm_finetune.NAME, glm_finetune.LABEL, glm_finetune.matches, glm_finetune.read),
    Reader(swift.NAME_QR, swift.LABEL_QR, swift.matches_query_response, swift.read_query_response),
    Reader(alpaca.NAME, alpaca.LABEL, alpaca.matches, alpaca.read),
    Reader(prompt_completion.NAME, prompt_completion.LABEL, prompt_completion.matches, prompt_completion.read),
)
#: Format name → label, for reports (RL shapes are named in :mod:`.rl_rows`).
LABELS = {r.name: r.label for r in SFT_READERS}


def reader_for(rec: dict, ctx: Ctx) -> Reader | None:
    """The SFT reader for a row, or None when no format's columns match."""
    return next((r for r in SFT_READERS if r.matches(rec, ctx)), None)


def read_sft(rec: dict, ctx: Ctx) -> Row | str:
    """One raw row in any SFT format → :class:`Row` (``meta["format"]`` names the format),
    or a skip reason (``"vote tie"``).

    Raises:
        DataError: a row no reader takes (the message lists its columns and the accepted
            shapes), or whatever the reader and :func:`finish` refuse — always naming the row.
    """
    if not isinstance(rec, dict):
        raise DataError(f"{ctx.where}: expected a JSON object per row, got {type(rec).__name__}.")
    reader = reader_for(rec, ctx)
    if reader is None:
        raise DataError(
            f"{ctx.where}: unknown row shape with columns {sorted(rec)}; expected `messages` (role/content), "
            f"`conversations` (from/value), `query`/`response`, `instruction`/`output`, `prompt`/`completion`, "
            f"or a Compare vote row. RL prompt files (`prompt`/`problem` + `answer`) go to `studio rl`."
        )
    got = reader.read(rec, ctx)
    return got if isinstance(got, str) else finish(got, ctx)


def finish(d: Draft, ctx: Ctx) -> Row:
    """What every format shares after its reader (see the module docstring)."""
    messages = d.messages
    if d.system is not None:
        sys_turns = [m for m in messages if m["role"] == "system"]
        if not sys_turns:
            messages = [{"role": "system", "content": d.system}] + messages
        elif sys_turns[0]["content"].strip() != d.system.strip():
            raise DataError(f"{ctx.where} has a `system` column and a different system turn in its messages; "
                            f"keep one of them (both cannot be the system prompt).")
    meta = dict(d.meta)
    users = [m for m in messages if m["role"] == "user"]
    tagged = {k: sum(i["type"] == k for m in users for i in m["content"]) for k in ("image", "video")}
    listed = {"image": list(d.images), "video": list(d.videos)}
    if (listed["image"] or listed["video"]) and not any(tagged.values()):
        _place_untagged(messages, users, listed, ctx)
        meta["media_placed"] = True
    paths: dict[str, list[str]] = {"image": [], "video": []}
    queues = {k: iter(v) for k, v in listed.items()}
    for m in users:
        for item in m["content"]:
            kind = item["type"]
            if kind not in paths:
                continue
            ref = item.pop("ref", None)
            if ref is None:
                ref = next(queues[kind], None)
                if ref is None:
                    continue  # more tags than media: the doctor's placeholders check names it
            paths[kind].append(resolve_media(ref, ctx.base, ctx.where, ctx.cache))
    for kind, rest in queues.items():  # more media than tags: kept, so the doctor can count them
        paths[kind] += [resolve_media(ref, ctx.base, ctx.where, ctx.cache) for ref in rest]
    return Row(messages=messages, images=paths["image"], videos=paths["video"], meta=meta)


def _place_untagged(messages: list[dict], users: list[dict], listed: dict, ctx: Ctx) -> None:
    """Media listed with no tag anywhere: before the first user text of a one-user-turn row.

    Raises: DataError for a row with several user turns (the fix: tag the right turn).
    """
    n_img, n_vid = len(listed["image"]), len(listed["video"])
    if len(users) > 1:
        what = " and ".join(x for x in (f"{n_img} image{'s' * (n_img != 1)}" if n_img else "",
                                        f"{n_vid} video{'s' * (n_vid != 1)}" if n_vid else "") if x)
        first = next((i.get("text", "") for i in users[0]["content"] if i["type"] == "text"), "")[:30]
        raise DataError(f"{ctx.where} lists {what} but no <image>/<video> tag in its {len(users)} user turns, so "
                        f"which turn shows which cannot be known; put the tag where each belongs, e.g. "
                        f"\"<image>{first}\" in the user turn that shows the first image.")
    if users:
        users[0]["content"] = ([{"type": "video"}] * n_vid + [{"type": "image"}] * n_img + users[0]["content"])
