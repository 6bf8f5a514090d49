"""`studio doctor` on an RL prompt file checks every reference against its verifier."""

from __future__ import annotations

import json
import shutil

from conftest import SAMPLE_DATA


def test_rl_file_references_scoreable(capsys):
    from studio.cli import main

    assert main(["doctor", str(SAMPLE_DATA / "rl" / "prompts.jsonl")]) == 0
    assert "every reference answer is scoreable" in capsys.readouterr().out


def test_rl_file_with_unscoreable_reference(tmp_path, capsys):
    from studio.cli import main

    shutil.copytree(SAMPLE_DATA / "rl" / "images", tmp_path / "images")
    img = sorted((tmp_path / "images").iterdir())[0].name
    rows = [{"prompt": "<image>How many circles?", "images": [f"images/{img}"], "answer": "3", "task_type": "count"},
            {"prompt": "<image>How many squares?", "images": [f"images/{img}"], "answer": "abc",
             "task_type": "numeric"}]
    f = tmp_path / "rl.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["doctor", str(f)]) == 1
    out = capsys.readouterr().out
    assert "row 2" in out and "'abc' is not a number" in out
