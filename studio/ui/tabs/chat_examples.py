"""The Chat tab's example messages, chosen for the model that is loaded."""

from __future__ import annotations

from pathlib import Path

from studio.engine.infer import media as media_mod
from studio.engine.workshop.evaluate import CHAT_CHECK_QUESTION

SAMPLE_DATA = Path(__file__).resolve().parents[3] / "sample_data"
#: Attachments the examples may carry (the Chat box's file types).
FILE_TYPES = list(media_mod.IMAGE_EXTS + media_mod.VIDEO_EXTS + media_mod.PDF_EXTS)


#: The first workshop example: a held-out grounding scene (the RL recipe's held-out seed 7000,
#: level 1; the red circle at row 3 col 1, off the diagonal), answered with a box. toy-thinking
#: names the right cell and writes its box y-first ([536,36,714,214]: drawn at row 1 col 3);
#: with the RL recipe's adapter the box lands on the circle — the workshop's before/after.
GROUNDING_EXAMPLE = ("grounding-l1-s7000-00044.png", "Where is the red circle?")


def examples(workshop: bool) -> list[list[dict]]:
    """Example messages from sample_data/.

    With the workshop model: workshop scenes only (it was trained on nothing else; a photo
    or a video gets nonsense from it): a held-out grounding question (the reply's box is
    drawn on the image), the two held-out red-circle scenes of the check in
    docs/workshop.md, then the first held-out question of each other scene family in
    ``sample_data/workshop/eval.jsonl``. Otherwise: a photo, a video and a PDF.
    """
    import json

    if workshop:
        examples, images = [], SAMPLE_DATA / "workshop" / "images"
        grounding = images / GROUNDING_EXAMPLE[0]
        if grounding.is_file():  # first: a box, drawn on the image in the reply
            examples.append([{"text": GROUNDING_EXAMPLE[1], "files": [str(grounding)]}])
        for name in ("position-l2-s1000-00001.png",  # held out: 1 red circle
                     "shapes-l3-s1000-00002.png"):   # held out: 2 red circles and a red square
            if (images / name).is_file():
                examples.append([{"text": CHAT_CHECK_QUESTION, "files": [str(images / name)]}])
        evals, seen = SAMPLE_DATA / "workshop" / "eval.jsonl", {"shapes"}
        for line in (evals.read_text(encoding="utf-8").splitlines() if evals.is_file() else []):
            row = json.loads(line)
            scene = SAMPLE_DATA / "workshop" / row["images"][0]
            if row.get("family") not in seen and scene.is_file():
                seen.add(row.get("family"))
                examples.append([{"text": row["prompt"].replace("<image>", "").strip(), "files": [str(scene)]}])
        return examples
    examples = []
    for rel, q in [("photos", "What is in this picture?"),
                   ("video", "What happens in this video?"),
                   ("docs", "Summarise this document.")]:
        folder = SAMPLE_DATA / rel
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in FILE_TYPES and not p.name.startswith("."))
            if files:
                examples.append([{"text": q, "files": [str(files[0])]}])
    return examples
