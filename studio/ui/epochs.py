"""Per-session "epochs": a Clear (or New comparison) bumps its session's epoch, and a streaming
handler that began under an older epoch stops yielding.

Why: a generator's update and a Clear's reply are two messages on the wire. Stopping the
generation is not enough — an update produced just after the Clear (the "stopped" reply,
say) can be delivered after the Clear's empty chat and redraw the old conversation (and
write the old state back). With an epoch the rule is simple and does not depend on timing:
once the user has cleared, nothing that started earlier may touch the page again.

A request takes its epoch when it is *accepted* (the page's check step, or when it starts,
for API callers), so a Clear pressed while it waits for the GPU counts as well.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Iterator

#: Sessions remembered at once (each Chat/Compare tab instance has one table); past it the
#: oldest is forgotten, which can only make an old request of that session stop yielding.
MAX_SESSIONS = 10_000


class Epochs:
    """Thread-safe session → epoch table. Epoch 0: the session never cleared.

    >>> e = Epochs()
    >>> start = e.current("s")
    >>> e.live("s", start)
    True
    >>> _ = e.bump("s")
    >>> e.live("s", start), e.live("s", e.current("s"))
    (False, True)
    """

    def __init__(self, cap: int = MAX_SESSIONS):
        self._d: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._next = itertools.count(1)  # one counter for all sessions: a forgotten entry never matches again
        self._cap = cap

    def current(self, key: str) -> int:
        """The session's epoch now (what a request that starts now takes)."""
        with self._lock:
            return self._d.get(key, 0)

    def bump(self, key: str) -> int:
        """A Clear: the session's earlier requests are no longer allowed to update the page."""
        with self._lock:
            self._d.pop(key, None)
            self._d[key] = n = next(self._next)
            while len(self._d) > self._cap:
                self._d.popitem(last=False)
            return n

    def live(self, key: str, epoch: int) -> bool:
        """Whether a request that took ``epoch`` may still update the page."""
        return self.current(key) == epoch


def guarded(updates: Iterator, epochs: Epochs, key: str, epoch: int) -> Iterator:
    """Pass ``updates`` on while ``key``'s epoch is still ``epoch``; from the first update
    produced after a Clear on, pass nothing and close the generator (its ``finally`` blocks
    stop the model and release what it holds). An error raised after a Clear is dropped
    too: the user asked for an empty page, not for a toast about the old request."""
    try:
        for update in updates:
            if not epochs.live(key, epoch):
                return
            yield update
    except Exception:
        if not epochs.live(key, epoch):
            return
        raise
    finally:
        close = getattr(updates, "close", None)
        if close is not None:
            close()

