"""Regenerate the RL sample prompts (deterministic): ``python sample_data/rl/make_rl.py``.

Writes ``prompts.jsonl`` (36 questions about 112×112 synthetic scenes of four task
families at difficulty 1–3, plus 2 questions about ``videos/clip.mp4``, a copy of
``../video/clip.mp4``: media must sit inside the prompt file's folder), ``eval.jsonl``
(12 held-out questions about other scenes) and the PNGs under ``images/``.

Row format (what ``studio rl --data`` reads): ``prompt`` (``<image>``/``<video>`` then the
question), ``images`` / ``videos`` (paths relative to this file), ``answer`` (reference the
verifier checks), ``task_type`` (verifier: counting, exact, numeric, choice…),
``difficulty`` (optional label: 1 easy … 3 hard), plus free columns (``id``, ``family``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

VIDEO_ROWS = [
    {"id": "clip-q0", "prompt": "<video>How many different photos does the video pan over?",
     "videos": ["videos/clip.mp4"], "answer": "3", "task_type": "counting", "difficulty": 3,
     "family": "video"},
    {"id": "clip-q1", "prompt": "<video>Which animal appears in the video? Answer with one word.",
     "videos": ["videos/clip.mp4"], "answer": "cat", "task_type": "exact", "difficulty": 2,
     "family": "video"},
]


def main() -> None:
    from studio.engine.workshop import tasks

    def slim(path: Path, extra: list[dict]) -> None:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        keep = ("id", "prompt", "images", "answer", "task_type", "difficulty", "family", "choices")
        rows = [{k: r[k] for k in keep if k in r} for r in rows] + extra
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    (HERE / "videos").mkdir(exist_ok=True)
    shutil.copyfile(HERE.parent / "video" / "clip.mp4", HERE / "videos" / "clip.mp4")
    scenes = tasks.generate(36, seed=0, questions_per_image=2)
    tasks.export_rl(scenes, HERE / "prompts.jsonl")
    slim(HERE / "prompts.jsonl", VIDEO_ROWS)
    seen = {s.key() for s in scenes}
    ev = [s for s in tasks.generate(24, seed=1000, questions_per_image=1) if s.key() not in seen][:12]
    tasks.export_rl(ev, HERE / "eval.jsonl")
    slim(HERE / "eval.jsonl", [])
    print(f"wrote {HERE / 'prompts.jsonl'} and {HERE / 'eval.jsonl'}")


if __name__ == "__main__":
    main()
