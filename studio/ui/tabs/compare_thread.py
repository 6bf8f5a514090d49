"""Compare's follow-ups: the conversation each side has had in this comparison.

After a comparison, the next question goes to each side *with that side's own earlier
turns* (its questions and answers; the engine strips the thinking from the answers as the
chat template's history rule says), so A and B each continue their own conversation and
neither reads the other's answers. **New comparison** starts a fresh one; so does a change
of the pair (another model, adapter, prompt style or thinking switch on either side).

The thread lives in the session's ``gr.State`` on the server (a client cannot send one),
holds text and file paths only (attachments are decoded again per request, within the
media budget, as Chat does), and is capped: :data:`MAX_TURNS` turns and
:data:`MAX_HISTORY_CHARS` characters of history.

Plain functions and a dataclass; no gradio here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.engine.infer import chat as chat_engine
from studio.engine.infer.compare import SIDES
from studio.errors import InputError
from studio.ui.i18n import tr

#: Questions one comparison may hold (the first one included); then New comparison.
MAX_TURNS = 8
#: Characters of history (every earlier question and answer of a side) a follow-up may carry.
MAX_HISTORY_CHARS = 4 * chat_engine.MAX_PROMPT_CHARS


@dataclass
class Turn:
    """One finished question of the thread: what was asked (text, file paths, the video
    sampling it was sent with), each side's full answer and what each pane showed."""

    text: str
    files: list[str]
    fps: float
    max_frames: int
    answers: dict[str, str]
    shown: dict[str, list[dict]]


@dataclass
class Thread:
    """The comparison so far: the pair it belongs to (``pair``: both sides' labels) and its turns."""

    pair: tuple[str, str]
    turns: list[Turn] = field(default_factory=list)

    def chars(self, side: str) -> int:
        """Characters of ``side``'s history (questions and answers)."""
        return sum(len(t.text) + len(t.answers.get(side, "")) for t in self.turns)

    def pane(self, side: str) -> list[dict]:
        """What pane ``side`` shows of the earlier turns."""
        return [m for t in self.turns for m in t.shown.get(side, [])]


def current(thread, pair: tuple[str, str]) -> Thread | None:
    """The thread a new question continues: ``thread`` if it belongs to ``pair``, else None
    (nothing yet, New comparison, or the pickers hold another pair now)."""
    if isinstance(thread, Thread) and tuple(thread.pair) == tuple(pair) and thread.turns:
        return thread
    return None


def check_room(thread: Thread | None, question: str) -> None:
    """Refuse a follow-up past the caps.

    Raises:
        InputError: :data:`MAX_TURNS` questions already, or the history plus the question
            would pass :data:`MAX_HISTORY_CHARS`; both say to press New comparison.
    """
    if thread is None:
        return
    if len(thread.turns) >= MAX_TURNS:
        raise InputError(tr("cmp.too_many_turns", n=MAX_TURNS))
    n = max(thread.chars(s) for s in SIDES) + len(question)
    if n > MAX_HISTORY_CHARS:
        raise InputError(tr("cmp.history_long", n=f"{n:,}", limit=f"{MAX_HISTORY_CHARS:,}"))


def histories(thread: Thread | None, extra_media: int = 0) -> dict[str, list[chat_engine.ChatTurn]]:
    """Each side's earlier turns as engine history, attachments decoded from their paths with
    each media turn's share of the budget (``extra_media``: media turns about to be added).

    Raises:
        InputError: an earlier attachment is gone from the server (uploads expire).
        MediaError: what decoding raises.
    """
    from studio.ui.tabs.chat_state import decode_files, turn_budget

    if thread is None:
        return {s: [] for s in SIDES}
    budget = turn_budget(sum(1 for t in thread.turns if t.files) + extra_media)
    media = [decode_files(t.files, t.fps, t.max_frames, budget) if t.files else None for t in thread.turns]
    return {s: [turn for t, m in zip(thread.turns, media)
                for turn in (chat_engine.ChatTurn("user", t.text, m), chat_engine.ChatTurn("assistant", t.answers[s]))]
            for s in SIDES}


def extended(thread: Thread | None, pair: tuple[str, str], turn: Turn) -> Thread:
    """The thread with ``turn`` added (a new thread for ``pair`` when ``thread`` is None)."""
    out = Thread(pair=tuple(pair)) if thread is None else Thread(pair=thread.pair, turns=list(thread.turns))
    out.turns.append(turn)
    return out
