"""Evaluate (before / after), issue 28.10: the chance and prior baselines per cell, the
by-answer view before and after, the progress the engine reports, and the tables the
training tabs show (translated headers, escaped answers). No model except one cheap run
of ``evaluate_run`` on the tiny fixture."""

from __future__ import annotations

import pytest


def _res(family: str, level: int, answer: str, pred: str, options: int = 3):
    from studio.engine.workshop.evaluate import Result

    return Result("i", family, level, answer, "", pred, True, answer == pred, 1 / options if options else 0.0)


def _reports():
    """Counting (3 options): the base answers right half the time; the trained model says
    "1" to everything. Arithmetic (free-form numbers): no options, so no chance."""
    from studio.engine.workshop.evaluate import Report

    answers = ["1", "1", "1", "2", "3", "1"]  # level 2: 1 1 1 2 · level 3: 3 1
    levels = [2, 2, 2, 2, 3, 3]
    before = Report("base", "thinking", [_res("shapes", lv, a, a if i % 2 == 0 else "0")
                                         for i, (a, lv) in enumerate(zip(answers, levels))])
    after = Report("base + adapter", "thinking", [_res("shapes", lv, a, "1") for a, lv in zip(answers, levels)])
    for rep, pred in ((before, "7"), (after, "8")):
        rep.results += [_res("arithmetic", 1, "8", pred, options=0), _res("arithmetic", 1, "12", "12", options=0)]
    return before, after


def test_chance_prior_and_before_after_rows():
    from studio.engine.workshop.evaluate import before_after_rows, before_after_table

    before, after = _reports()
    assert after.family_modes() == {"arithmetic": "8", "shapes": "1"}  # tie 8 vs 12: numeric order
    rows = {(r["family"], r["difficulty"]): r for r in before_after_rows(before, after)}
    s2, s3, ar, al = rows[("shapes", 2)], rows[("shapes", 3)], rows[("arithmetic", 1)], rows[("all", 0)]
    assert s2["n"] == 4 and s2["chance"] == pytest.approx(1 / 3) and s2["prior"] == 0.75  # 3 of 4 are "1"
    assert s3["prior"] == 0.5 and s3["accuracy_after"] == 0.5 and s3["accuracy_before"] == 0.5
    assert s2["accuracy_before"] == 0.5 and s2["accuracy_after"] == 0.75 and s2["change"] == pytest.approx(0.25)
    assert ar["chance"] is None and ar["prior"] == 0.5  # free-form: no options to guess from
    # all: 6 counting questions at 1/3, 2 free-form at 0; the prior guesser gets 4 + 1 of 8
    assert al["n"] == 8 and al["chance"] == pytest.approx(0.25) and al["prior"] == pytest.approx(5 / 8)
    table = before_after_table(before, after)
    assert "| chance % | prior % |" in table
    assert "| shapes | 2 | 4 | 100 → 100 | 50 → 75 | +25 | 33 | 75 |" in table
    assert "| arithmetic | 1 | 2 | 100 → 100 | 50 → 100 | +50 | – | 50 |" in table
    assert "chance % | prior % |" in after.table()  # studio eval's own table has both too


def test_by_answer_per_family_before_and_after():
    from studio.engine.workshop.evaluate import before_after_answers

    before, after = _reports()
    fams = {f["family"]: f for f in before_after_answers(before, after, top=2)}
    shapes = fams["shapes"]
    assert shapes["n"] == 6 and shapes["more"] == 1  # answers 1 (4×), 2, 3: the top 2 are 1 and 2
    one, two = shapes["answers"]
    assert (one["answer"], one["n"], one["share"]) == ("1", 4, pytest.approx(4 / 6))
    assert one["predicted_before"] == pytest.approx(2 / 6) and one["predicted_after"] == 1.0
    assert one["accuracy_after"] == 1.0 and two["accuracy_after"] == 0.0 and two["predicted_after"] == 0.0
    # per family: "8" is predicted for 1 of the 2 arithmetic prompts after, not 1 of 8 prompts
    assert after.by_answer("arithmetic")[1] == {"answer": "12", "n": 1, "accuracy": 1.0, "predicted": 0.5}


def test_ui_tables_translate_escape_and_warn_about_small_cells():
    from studio.engine.workshop.evaluate import Report
    from studio.ui.evaluation import before_after_markdown, by_answer_markdown, progress_text
    from studio.ui.i18n import tr

    before, after = _reports()
    md = before_after_markdown(before, after)
    assert "| family | level | n | format % before → after | accuracy % before → after | change (points) | " \
           "chance % | prior % |" in md
    assert "| shapes | 2 | 4 | 100 → 100 | 50 → 75 | +25 | 33 | 75 |" in md and "| all | all | 8 |" in md
    assert "**chance**" in md and "3 of 3 cells hold fewer than 10 prompts" in md and "25 points or more" in md
    ans = by_answer_markdown(before, after)
    assert "**shapes** · prompts: 6" in ans and "| 1 | 4 | 67 | 50 → 100 | 33 → 100 |" in ans
    # an answer from a prompt file cannot break the table or inject markup
    bad = Report("m", "thinking", [_res("size", 1, "<b>a|b</b>", "x")])
    assert "&lt;b&gt;a\\|b&lt;/b&gt;" in by_answer_markdown(bad, bad)
    assert progress_text({"stage": "after", "done": 30, "total": 120, "eta_s": 75}) == \
        "Scoring the trained model (after): 30/120 prompts scored · 1:15 left"
    assert progress_text({"stage": "before", "done": 0, "total": 120, "eta_s": None}).endswith(
        "0/120 prompts scored · estimating the time left")
    assert "训练后" in tr("eval.stage.after", "zh")


def test_evaluate_run_reports_progress_and_refuses_a_folder_without_config(tiny_path, tmp_path):
    from conftest import make_eval_run
    from studio.engine.train.skill_eval import evaluate_run
    from studio.errors import InputError

    with pytest.raises(InputError, match="no readable config.yaml"):
        evaluate_run(tmp_path)
    run = tmp_path / "20260101-000000-sft-x"
    make_eval_run(run, tiny_path, 3)
    seen: list[dict] = []
    before, after = evaluate_run(run, n=3, progress=seen.append, max_new_tokens=4)
    assert len(before.results) == len(after.results) == 3
    assert [(s["stage"], s["done"], s["total"]) for s in seen] == [("before", 0, 6), ("before", 3, 6),
                                                                    ("after", 3, 6), ("after", 6, 6)]
    assert seen[0]["eta_s"] is None and seen[1]["eta_s"] is not None and seen[-1]["eta_s"] == 0
