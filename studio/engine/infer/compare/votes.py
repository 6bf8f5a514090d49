"""Votes: each vote a JSONL line with its media copied beside it, ready to become SFT data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from studio.engine.infer.compare.comparer import CompareResult
from studio.engine.infer.compare.settings import SIDES, VOTE_LABELS, VOTES
from studio.errors import InputError


# ------------------------------------------------------------------ votes

def votes_folder(runs_dir: str | os.PathLike, session: str | None = None) -> Path:
    """``<runs_dir>/compare-votes/<session>`` — session defaults to today's date (YYYYmmdd)."""
    name = session or _dt.date.today().strftime("%Y%m%d")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "votes"
    return Path(runs_dir) / "compare-votes" / safe


_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


class VoteLog:
    """Append-only preference file ``<folder>/votes.jsonl`` with media in ``<folder>/media``.

    Row (one JSON object per line)::

        {"id", "timestamp", "prompt", "media": ["media/<sha1>.png", ...], "system",
         "outputs": {"A": text, "B": text}, "models": {"A": ModelSpec dict, "B": ...},
         "modes": {"A": "base"|"chat", "B": ...}, "thinking": {"A": bool, "B": bool},
         "settings": {...},
         "vote": "A"|"B"|"tie"|"both_bad", "stats": {"A": {...}, "B": {...}},
         "turn": n, "history": {"A": [{"role", "content"}, ...], "B": [...]}}   # follow-ups only

    Images are copied as files; PDF pages are saved as PNG images (so the SFT loader sees
    images); a video file is copied as is.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / "votes.jsonl"

    def archive(self) -> Path:
        """Zip ``votes.jsonl`` and ``media/`` into ``<folder>/votes.zip`` (what the UI offers
        to download: the rows' relative media paths resolve after unzipping, so the SFT
        loader reads it as is). Rebuilt on each call; written to a temp name, then renamed."""
        import zipfile

        out = self.folder / "votes.zip"
        tmp = out.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            if self.path.is_file():
                z.write(self.path, "votes.jsonl")
            media = self.folder / "media"
            if media.is_dir():
                for f in sorted(media.iterdir()):
                    if f.is_file():
                        z.write(f, f"media/{f.name}")
        tmp.replace(out)
        return out

    def _copy_media(self, media) -> list[str]:
        """Copy a turn's media beside the votes; return their relative paths.

        ``media`` may carry decoded pixels or only its sources (a session keeps paths,
        :meth:`~studio.engine.infer.media.TurnMedia.paths_only`): image and video files are
        copied as they are, a PDF's pages are rendered (again, if need be) and saved as PNG.
        """
        if media is None or media.kind == "none":
            return []
        out_dir = self.folder / "media"
        out_dir.mkdir(parents=True, exist_ok=True)
        rel: list[str] = []
        if media.kind in ("image", "video") and media.sources:
            for src in map(Path, media.sources):
                h = hashlib.sha1()
                with open(src, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                name = h.hexdigest()[:16] + src.suffix.lower()
                if not (out_dir / name).exists():
                    shutil.copyfile(src, out_dir / name)
                rel.append(f"media/{name}")
            return rel
        images = media.images
        if not images and media.kind == "pdf" and media.sources:
            from studio.engine.infer.media import prepare_turn_media

            images = prepare_turn_media(media.sources[:1]).images
        import io

        for im in images:  # PDF pages, or images without their source files: save the decoded images
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
            data = buf.getvalue()
            name = hashlib.sha1(data).hexdigest()[:16] + ".png"
            if not (out_dir / name).exists():
                (out_dir / name).write_bytes(data)
            rel.append(f"media/{name}")
        return rel

    def record(self, result: CompareResult | None, vote: str) -> dict:
        """Append one row for ``result`` with ``vote``; return the row.

        Raises:
            InputError: no finished comparison yet (the vote is ignored), an unknown vote,
                or this comparison was already voted on.
        """
        if vote not in VOTES:
            raise InputError(f"Unknown vote {vote!r}; use one of {', '.join(VOTES)}.")
        if result is None or not result.complete:
            raise InputError("There is no finished comparison to vote on yet; run one first. The vote was ignored.")
        if result.voted is not None:
            raise InputError(f"This comparison already has a vote ({VOTE_LABELS[result.voted]}); "
                             f"run a new comparison to vote again.")
        with _lock_for(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            row = {
                "id": result.id,
                "timestamp": result.timestamp,
                "prompt": result.prompt,
                "media": self._copy_media(result.media),
                "system": result.system,
                "outputs": {s: result.sides[s].text for s in SIDES},
                "models": {s: result.sides[s].model_spec for s in SIDES},
                "modes": {s: result.sides[s].spec.mode for s in SIDES},
                # thinking on vs off is one model on both sides: without this the row
                # would not say what differed
                "thinking": {s: result.sides[s].spec.thinking and result.sides[s].spec.mode != "base" for s in SIDES},
                "settings": result.settings,
                "vote": vote,
                "stats": {s: dataclasses.asdict(result.sides[s].stats) for s in SIDES},
            }
            if result.turn > 1:  # a follow-up: what each side had read before this question
                row["turn"], row["history"] = result.turn, result.history
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        result.voted = vote
        return row

    def rows(self) -> list[dict]:
        """All rows so far (a half-written last line is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
