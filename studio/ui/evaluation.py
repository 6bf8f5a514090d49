"""The training tabs' "Evaluate (before / after)": its tables and its progress, in the page's language.

The numbers come from the engine (:func:`studio.engine.train.skill_eval.evaluate_run`,
:func:`studio.engine.workshop.evaluate.before_after_rows` and
:func:`~studio.engine.workshop.evaluate.before_after_answers`); this module only writes
them as Markdown with translated headers and turns the engine's progress dicts into a line
for ``gr.Progress``. Answers come from the run's prompt file: ``|`` and HTML-significant
characters are escaped so a cell cannot break the table or the page.
"""

from __future__ import annotations

import html

from studio.engine.train.runs import format_duration
from studio.engine.workshop.evaluate import Report, before_after_answers, before_after_rows, pct
from studio.ui.i18n import tr

#: A cell with fewer prompts than this moves by more than 10 points per prompt.
SMALL_CELL = 10


def _cell(text) -> str:
    """Text for a Markdown table cell: HTML-escaped, ``|`` escaped, one line."""
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def before_after_markdown(before: Report, after: Report) -> str:
    """The before/after table per family × level with its chance and prior columns, a line
    saying what the baselines are, and a warning when cells are too small to read alone."""
    rows = before_after_rows(before, after)
    cols = ["family", "level", "n", "format", "accuracy", "change", "chance", "prior"]
    lines = [tr("eval.head", before=_cell(before.model), after=_cell(after.model), n=len(after.results)), "",
             _row([tr("eval.col." + c) for c in cols]), "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        level = r["difficulty"] or tr("eval.all")
        family = tr("eval.all") if r["family"] == "all" else _cell(r["family"])
        lines.append(_row([family, str(level), str(r["n"]),
                           f"{pct(r['format_before'])} → {pct(r['format_after'])}",
                           f"{pct(r['accuracy_before'])} → {pct(r['accuracy_after'])}",
                           f"{100 * r['change']:+.0f}", pct(r["chance"]), pct(r["prior"])]))
    lines += ["", tr("eval.baselines")]
    cells = [r for r in rows if r["family"] != "all"]
    small = [r for r in cells if r["n"] < SMALL_CELL]
    if small:
        lines += ["", tr("eval.small_cells", k=len(small), m=len(cells), min=SMALL_CELL,
                         pts=100 // max(1, max(r["n"] for r in small)))]
    return "\n".join(lines)


def by_answer_markdown(before: Report, after: Report, top: int = 6) -> str:
    """Per family: the most frequent reference answers with their share, accuracy before →
    after and how often each was *given* before → after (the answer-prior check)."""
    cols = ["answer", "n", "share", "accuracy", "predicted"]
    lines = [tr("eval.by_answer_intro")]
    for fam in before_after_answers(before, after, top=top):
        lines += ["", f"**{_cell(fam['family'])}** · {tr('eval.prompts', n=fam['n'])}", "",
                  _row([tr("eval.ans." + c) for c in cols]), "|---|---:|---:|---:|---:|"]
        for a in fam["answers"]:
            lines.append(_row([_cell(a["answer"]), str(a["n"]), pct(a["share"]),
                               f"{pct(a['accuracy_before'])} → {pct(a['accuracy_after'])}",
                               f"{pct(a['predicted_before'])} → {pct(a['predicted_after'])}"]))
        if fam["more"]:
            lines += ["", tr("eval.more_answers", k=fam["more"])]
    return "\n".join(lines)


def progress_text(state: dict) -> str:
    """One line for ``gr.Progress``'s description from :func:`evaluate_run`'s progress dict:
    which model is being scored, prompts scored of all, time left (or that it is being
    estimated)."""
    stage = tr("eval.stage." + ("after" if state.get("stage") == "after" else "before"))
    left = (tr("eval.left", t=format_duration(state["eta_s"])) if state.get("eta_s") is not None
            else tr("eval.estimating"))
    return tr("eval.progress", stage=stage, done=int(state.get("done") or 0), total=int(state.get("total") or 0),
              left=left)
