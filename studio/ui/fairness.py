"""Per-session fairness of a shared server's queue: one visitor cannot fill it.

gradio's queue has one global ``max_size`` and no per-visitor limit, so a client that
joins the queue 90 times in a row takes every place and everyone else reads "Queue is
full". :func:`limit_per_session` wraps the app's queue so that a browser session (its
``session_hash``) may have at most ``per_session`` events waiting or running at once;
one more is refused at once with a sentence that says why (HTTP 503, as a full queue),
and the visitor's earlier requests keep their places.

A page never needs more than a few at once (a Chat send waits for its check; the
visual-token estimate runs alone), so the default of 4 is invisible to a person.

Limits of the mechanism: the session is whatever the client calls itself, so a client
that invents a new session for every request is bounded only by the global ``max_size``
(the per-request work is bounded too: memory budgets on media, one decoding slot, one
GPU request at a time).
"""

from __future__ import annotations

import functools
from typing import Any

#: Events one session may have waiting or running at once.
PER_SESSION = 4


def pending_for(queue: Any, session_hash: str) -> int:
    """Events of ``session_hash`` in gradio's queue that have not finished (waiting or running)."""
    events = list(getattr(queue, "event_ids_to_events", {}).values())
    return sum(1 for e in events if getattr(e, "session_hash", None) == session_hash)


def limit_per_session(demo: Any, per_session: int = PER_SESSION) -> None:
    """Refuse a queue join when its session already has ``per_session`` unfinished events.

    Call after ``demo.queue(...)`` (which creates the queue); safe to call twice.

    Args:
        demo: a ``gr.Blocks`` whose queue is set up.
        per_session: the cap (≥ 1).
    """
    queue = getattr(demo, "_queue", None)
    if queue is None or getattr(queue, "_studio_per_session", None) is not None:
        if queue is not None:
            queue._studio_per_session = per_session
        return
    queue._studio_per_session = max(1, int(per_session))
    push = queue.push
    joining: dict[str, int] = {}  # session → joins that passed the check and are being registered

    @functools.wraps(push)
    async def push_fair(body, request, username):
        session = getattr(body, "session_hash", None)
        if not session:
            return await push(body=body, request=request, username=username)
        cap = queue._studio_per_session
        # check and reserve with no await in between: concurrent joins cannot all slip through
        if pending_for(queue, session) + joining.get(session, 0) >= cap:
            return False, _refusal(session, request, cap), "queue_full"
        joining[session] = joining.get(session, 0) + 1
        try:
            return await push(body=body, request=request, username=username)
        finally:  # a successful join is now in the queue's own table
            joining[session] -= 1
            if not joining[session]:
                del joining[session]

    queue.push = push_fair


def _refusal(session: str, request: Any, cap: int) -> str:
    from types import SimpleNamespace

    from studio.ui.i18n import request_language, tr

    lang = request_language(SimpleNamespace(session_hash=session, headers=getattr(request, "headers", None)))
    return tr("app.session_busy", lang, n=cap)
