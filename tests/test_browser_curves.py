"""Training curves in a real browser (Debian chromium + Playwright) at 1280×720.

Every chart's legend must name its series, in colour, inside the chart's box — the plots
used to build their colour scale from an empty frame, so lines had no colour and the
legend showed only the word "series", cut off below the x axis. Screenshot:
tests/artifacts/runs_curves.png.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"

if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` (or set STUDIO_CHROMIUM)",
                allow_module_level=True)

LEGEND = """() => Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.offsetWidth > 0).map(e => {
    const box = e.closest('.block').getBoundingClientRect();
    const labels = Array.from(e.querySelectorAll('.role-legend-label text')).map(t => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent, inside: r.bottom <= box.bottom + 0.5 && r.right <= box.right + 0.5};
    });
    const strokes = Array.from(e.querySelectorAll("path[aria-roledescription='line mark']"))
        .map(p => p.getAttribute('stroke'));
    return {labels, strokes};
})"""


@contextlib.contextmanager
def _app_page(tiny_path, runs: Path):
    """The app on the tiny model with ``runs`` as its runs folder, and a 1280×720 page on it."""
    from playwright.sync_api import sync_playwright

    from conftest import free_port
    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.ui.context import AppContext

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=runs)
    demo = launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                pg = browser.new_page(viewport={"width": 1280, "height": 720})
                pg.set_default_timeout(30_000)
                pg.goto(demo.local_url)
                yield pg
            finally:
                browser.close()
    finally:
        demo.close()


def _fake_sft_run(runs: Path) -> Path:
    from studio.engine.train import metrics as M
    from studio.engine.train.runs import write_status

    run = runs / "20260101-000000-sft-demo"
    run.mkdir(parents=True)
    with M.MetricsWriter(run) as w:
        for s in range(1, 41):
            w.log(s, **{"train/loss": 3 * math.exp(-s / 15), "train/learning_rate": 1e-4,
                        "train/grad_norm": 1.0, "train/mean_token_accuracy": s / 50})
            if s % 10 == 0:
                w.log(s, kind="eval", **{"eval/loss": 2 * math.exp(-s / 20)})
    write_status(run, "finished", kind="sft", started=time.time() - 100)
    (run / "config.yaml").write_text("model: embedded\n")
    return run


def test_chart_legends_name_every_series_inside_the_chart(tiny_path, tmp_path):
    _fake_sft_run(tmp_path / "runs")
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        for tab in ("Runs", "SFT"):
            pg.get_by_role("tab", name=tab).click()
            pg.wait_for_function("() => Array.from(document.querySelectorAll('.vega-embed'))"
                                 ".some(e => e.offsetWidth > 0 && e.querySelector('.role-legend-label'))")
            time.sleep(2)  # let every visible plot settle after the tab switch
            plots = pg.evaluate(LEGEND)
            if tab == "Runs":
                pg.locator(".vega-embed").first.scroll_into_view_if_needed()
                ARTIFACTS.mkdir(exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / "runs_curves.png"))
            loss = [x["text"] for x in plots[0]["labels"]]
            assert loss[:3] == ["loss", "loss (smoothed)", "eval loss"], (tab, plots[0])
            for plot in plots:
                assert plot["labels"], (tab, plot)
                assert all(x["inside"] for x in plot["labels"]), (tab, plot)  # not cut off
                assert all(plot["strokes"]), (tab, plot)  # every line has a colour
            assert len(set(plots[0]["strokes"])) == 3  # raw, smoothed and eval loss differ



#: Per visible chart: its title and the y axis's tick labels.
Y_TICKS = """() => Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.offsetWidth > 0).map(e => {
    const ax = Array.from(e.querySelectorAll('g.role-axis'))
        .find(g => (g.getAttribute('aria-label') || '').startsWith('Y-axis'));
    const title = e.querySelector('.role-title-text');
    return {title: title ? title.textContent : '',
            ticks: ax ? Array.from(ax.querySelectorAll('.role-axis-label text')).map(t => t.textContent) : []};
})"""


def test_a_flat_loss_reads_distinct_y_ticks(tiny_path, tmp_path):
    """A 2-step run whose loss barely moved (6.512 → 6.507) read "6.51 6.51 6.51" on its y
    axis (a fixed ".3~g"); the ticks now take the digits their step needs, in the SFT tab
    and in the Runs tab. Screenshot: tests/artifacts/flat_loss_ticks.png."""
    from studio.engine.train import metrics as M
    from studio.engine.train.runs import write_status

    run = tmp_path / "runs" / "20260101-000000-sft-flat"
    run.mkdir(parents=True)
    with M.MetricsWriter(run) as w:
        for s, loss in ((1, 6.512), (2, 6.507)):
            w.log(s, **{"train/loss": loss, "train/learning_rate": 1e-4, "train/grad_norm": 1.0})
    write_status(run, "finished", kind="sft", started=time.time() - 10)
    (run / "config.yaml").write_text("model: embedded\nmax_steps: 2\n")
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        for tab in ("SFT", "Runs"):
            pg.get_by_role("tab", name=tab).click()
            if tab == "Runs":
                _pick(pg, "runs-pick", run.name)
            # this run's loss drawn (not a placeholder's lone "0", nor the other tab's plot)
            pg.wait_for_function(f"() => ({Y_TICKS})().some(p => p.title.startsWith('Loss') && p.ticks.length > 1"
                                 " && p.ticks.every(t => parseFloat(t) > 6))")
            loss = next(p for p in pg.evaluate(Y_TICKS) if p["title"].startswith("Loss"))
            assert len(set(loss["ticks"])) == len(loss["ticks"]), (tab, loss)  # no "6.51 6.51 6.51"
            assert all(6.5 <= float(t) <= 6.52 for t in loss["ticks"]), (tab, loss)
            if tab == "SFT":
                pg.locator(".vega-embed:visible").first.scroll_into_view_if_needed()
                ARTIFACTS.mkdir(exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / "flat_loss_ticks.png"))


def test_hand_over_buttons_open_the_tab_they_hand_to(tiny_path, tmp_path):
    """Issue 28.7: "Try it in Chat" / "Compare with base" set the adapter but left the user
    on the SFT tab; now they open Chat / Compare, Chat's status line names the adapter and
    Compare's note names the pair."""
    import json

    run = _fake_sft_run(tmp_path / "runs")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "base_model_name_or_path": str(tiny_path)}))
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        pg.get_by_role("tab", name="SFT").click()
        for button, tab in (("Try it in Chat", "Chat"), ("Compare with base", "Compare")):
            if pg.get_by_role("tab", name="SFT").get_attribute("aria-selected") != "true":
                pg.get_by_role("tab", name="SFT").click()
            pg.get_by_role("button", name=button).click()
            pg.wait_for_function("name => Array.from(document.querySelectorAll('button[role=tab]'))"
                                 ".some(b => b.textContent.trim() === name && b.getAttribute('aria-selected') === 'true')",
                                 arg=tab)
            if tab == "Chat":  # the handed-over adapter shows above the chat, the Model accordion still closed
                pg.wait_for_selector("#chat-model-status :text('20260101-000000-sft-demo/adapter')")
                assert "Model:" in pg.inner_text("#chat-model-status")
                assert pg.locator("#chat-model-status").is_visible()
        # Compare names the pair it was handed, not the default workshop pair
        pg.wait_for_selector("#compare-default-note :text('Your run against its base')")
        assert str(run / "adapter") in pg.inner_text("#compare-default-note")


def _fake_rl_run(runs: Path) -> Path:
    """An RL run of 4 steps with the keys the RL tab's own reward band and tier bars read."""
    from studio.engine.train import metrics as M
    from studio.engine.train.curriculum import TIER_NAMES
    from studio.engine.train.runs import write_status

    run = runs / "20260101-000000-rl-demo"
    run.mkdir(parents=True)
    with M.MetricsWriter(run) as w:
        w.log(0, kind="eval", **{"eval/accuracy": 0.5})
        for s in range(1, 5):
            w.log(s, **{"rewards/mean": s / 5, "rewards/std": 0.1, "train/loss": 0.1, "rollout/format_correct": 0.9,
                        **{f"curriculum/tier_weight/{t}": 0.2 for t in TIER_NAMES},
                        **({"kl/probe": 0.01} if s in (1, 3) else {})})  # a metric logged now and then
        w.log(4, kind="eval", **{"eval/accuracy": 0.75})
    write_status(run, "stopped", kind="rl", started=time.time() - 100)
    (run / "config.yaml").write_text("model: embedded\nmax_steps: 20\n")  # stopped at step 4 of 20
    return run


#: Per visible chart: the x axis's tick labels (Vega names the axis "X-axis …" for screen readers).
X_TICKS = """() => Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.offsetWidth > 0).map(e => {
    const ax = Array.from(e.querySelectorAll('g.role-axis'))
        .find(g => (g.getAttribute('aria-label') || '').startsWith('X-axis'));
    return ax ? Array.from(ax.querySelectorAll('.role-axis-label text')).map(t => t.textContent) : null;
})"""


def test_rl_tab_legends_name_every_series_inside_the_chart(tiny_path, tmp_path):
    """The RL tab's own plots (reward band, stacked tier weights) follow the shared chart
    options too: the legend shows the series names, not only the word "series", and ticks
    are compact (the KL plot of a run without KL probes used to read "1.000000")."""
    _fake_rl_run(tmp_path / "runs")
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        pg.get_by_role("tab", name="RL").click()
        pg.wait_for_function("() => Array.from(document.querySelectorAll('.vega-embed'))"
                             ".filter(e => e.offsetWidth > 0 && e.querySelector('.role-legend-label')).length >= 3")
        time.sleep(3)  # the timer's first refresh draws the run's data
        plots = pg.evaluate(LEGEND)
        visible = "Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.offsetWidth > 0)"
        legend_titles = pg.evaluate(f"() => {visible}.flatMap(e => Array.from("
                                    "e.querySelectorAll('.role-legend-title text')).map(t => t.textContent.trim()))")
        ticks = pg.evaluate(f"() => {visible}.flatMap(e => Array.from("
                            "e.querySelectorAll('.role-axis-label text')).map(t => t.textContent))")
        axis_titles = pg.evaluate(f"() => {visible}.flatMap(e => Array.from("
                                  "e.querySelectorAll('.role-axis-title text')).map(t => t.textContent.trim()))")
        # issue 28.9: a picture of the upload box (its drop text was cut at height 80; looked at by eye)
        up = pg.locator("#rl-upload")
        up.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        up.screenshot(path=str(ARTIFACTS / "rl_upload.png"))
        x_ticks = pg.evaluate(X_TICKS)
        empty = pg.evaluate("() => Array.from(document.querySelectorAll('.block')).filter(b => b.offsetWidth > 0"
                            " && b.innerText.includes('no data yet')).map(b => ({text: b.innerText.trim(),"
                            " vega: !!b.querySelector('.vega-embed')}))")
        pg.locator(".vega-embed:visible").first.scroll_into_view_if_needed()
        pg.screenshot(path=str(ARTIFACTS / "rl_curves.png"))
        pg.get_by_text("Prompts per tier · no data yet").scroll_into_view_if_needed()
        pg.screenshot(path=str(ARTIFACTS / "rl_curves_empty.png"))
    reward, tiers = plots[0], plots[1]
    assert [x["text"] for x in reward["labels"]] == ["mean reward", "mean+std", "mean-std"], reward
    assert [x["text"] for x in tiers["labels"]] == ["very_hard", "hard", "medium", "easy", "very_easy"], tiers
    for plot in plots:
        assert plot["labels"] and all(x["inside"] for x in plot["labels"]), plot  # not cut off
    assert "series" not in legend_titles, legend_titles
    assert not [t for t in ticks if "." in t and len(t.split(".")[1]) > 3], ticks  # no "1.000000"
    # issue 28.12: real axis titles (never gradio's "value" for these), fractions on a 0–100 % axis
    assert "value" not in axis_titles and {"step", "reward", "%"} <= set(axis_titles), axis_titles
    assert "100%" in ticks and "0%" in ticks, ticks
    # one x range for every chart of the run, [0, its 20 planned steps], in whole steps only
    # (the KL probes at steps 1 and 3 used to get an axis of their own, in half steps)
    assert len(x_ticks) == 6 and all(x_ticks), x_ticks  # reward, tiers, accuracy, format, KL, loss
    assert {tuple(x) for x in x_ticks} == {tuple(x_ticks[0])} and x_ticks[0][0] == "0" and x_ticks[0][-1] == "20", x_ticks
    assert all(t.isdigit() for x in x_ticks for t in x), x_ticks
    # a chart with nothing to draw says so (no axes reading a lone "0")
    assert {e["text"] for e in empty} >= {"Prompts per tier · no data yet", "Grad norm · no data yet"}, empty
    assert not any(e["vega"] for e in empty), empty


@pytest.mark.slow
def test_refused_start_and_a_new_run_in_the_sft_panel(tiny_path, tmp_path):
    """A refused Start must not leave the previous run's failure in the status box (it reads
    as this Start's); a new run becomes the one the "Watch / resume" picker shows."""
    from conftest import SAMPLE_DATA
    from studio.engine.train.runs import list_runs, write_status

    old = tmp_path / "runs" / "20260101-000000-sft-old"
    old.mkdir(parents=True)
    write_status(old, "failed", kind="sft", error="boom: the old run broke", started=1.0, ended=2.0)
    status = "#sft-status textarea"
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        pg.get_by_role("tab", name="SFT").click()
        sft = pg.locator("[role=tabpanel]:visible")
        pg.wait_for_function(f"() => document.querySelector('{status}').value.includes('boom')")
        path = pg.locator("#sft-path textarea, #sft-path input").first
        path.fill(str(tmp_path / "missing.jsonl"))
        sft.get_by_role("button", name="Start", exact=True).click()
        time.sleep(4)  # two status polls
        shown = pg.locator(status).input_value()
        assert "boom" not in shown and shown.startswith("Not started"), shown
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "sft_refused_start.png"))

        path.fill(str(SAMPLE_DATA / "sft" / "train.jsonl"))
        sft.get_by_label("Max steps (0 = use epochs)").fill("1")
        sft.get_by_role("button", name="Start", exact=True).click()
        pg.wait_for_function(f"() => document.querySelector('{status}').value.includes('-sft-sft')",
                             timeout=60_000)
        new = [r for r in list_runs(tmp_path / "runs", kind="sft") if r.id != old.name]
        assert len(new) == 1
        pg.wait_for_function("(id) => document.querySelector('#sft-run-pick input').value.endsWith(id)",
                             arg=new[0].id)
        pg.screenshot(path=str(ARTIFACTS / "sft_new_run_picked.png"))
        deadline = time.time() + 180
        while time.time() < deadline and list_runs(tmp_path / "runs", kind="sft")[0].status == "running":
            time.sleep(1)


def _runs_plots(pg) -> list[dict]:
    """Legend labels, line colours and line shapes of the Runs tab's visible plots."""
    return pg.evaluate("""() => Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.offsetWidth > 0)
        .map(e => ({labels: Array.from(e.querySelectorAll('.role-legend-label text')).map(t => t.textContent),
                    lines: Array.from(e.querySelectorAll("path[aria-roledescription='line mark']"))
                        .map(p => ({stroke: p.getAttribute('stroke'), d: p.getAttribute('d') || ''}))}))""")


def _wait_plots(pg, ok, timeout: float = 30.0) -> list[dict]:
    """:func:`_runs_plots` once ``ok(plots)`` holds (updates reach a 2-core test machine late)."""
    deadline = time.time() + timeout
    while True:
        plots = _runs_plots(pg)
        if ok(plots) or time.time() > deadline:
            return plots
        time.sleep(0.5)


def _segments(line: dict) -> int:
    return line["d"].count("L")


def _pick(pg, elem_id: str, option: str) -> None:
    """Choose ``option`` in the gradio dropdown ``#elem_id``."""
    pg.locator(f"#{elem_id} input").click()
    pg.locator("ul[role=listbox] li", has_text=option).first.click()


def test_runs_tab_held_out_curve_overlay_and_new_runs_appear(tiny_path, tmp_path):
    """Issue 28.11: an SFT run's held-out format/accuracy curve in the Runs tab; a second run
    overlaid on the same charts (a colour pair per series: dark for the run, light for the
    overlay) and cleared again; a run started after the page loaded appears without Refresh.
    Screenshot: tests/artifacts/runs_overlay.png."""
    from studio.engine.train import metrics as M
    from studio.engine.train.runs import write_status
    from studio.ui.overlay import PAIRS

    runs = tmp_path / "runs"
    sft = _fake_sft_run(runs).rename(runs / "20260101-090000-sft-demo")
    with M.MetricsWriter(sft) as w:  # SkillEvalCallback's records
        for step, fmt, acc in ((0, 0.0, 0.0), (20, 0.8, 0.5), (40, 1.0, 0.7)):
            w.log_dict(step, {"skill/format_rate": fmt, "skill/accuracy": acc, "skill/n": 60}, kind="skill")
    _fake_rl_run(runs).rename(runs / "20260102-100000-rl-demo")
    with _app_page(tiny_path, runs) as pg:
        pg.get_by_role("tab", name="Runs").click()
        _pick(pg, "runs-pick", "20260101-090000-sft-demo")
        pg.wait_for_function("() => document.querySelector('#runs-pick input').value.endsWith('sft-demo')")
        # the SFT run's format and accuracy: two curves of 3 points (the RL run has one of 2)
        held = _wait_plots(pg, lambda ps: len(ps) > 1 and sum(_segments(x) >= 3 for x in ps[1]["lines"]) == 2)[1]
        assert held["labels"] == ["skill format_rate", "skill accuracy", "eval accuracy"], held
        assert sum(_segments(x) >= 3 for x in held["lines"]) == 2, held

        _pick(pg, "runs-overlay", "20260102-100000-rl-demo")
        # both runs drawn: the RL run's held-out accuracy (2 points) joins the SFT curves, all in colour
        plots = _wait_plots(pg, lambda ps: len(ps) > 1 and sum(_segments(x) >= 2 for x in ps[1]["lines"]) >= 3
                            and all(x["stroke"] for p in ps for x in p["lines"]))
        pg.locator("#runs-overlay").evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "runs_overlay.png"))
        key = pg.inner_text("#runs-overlay-key")
        assert "Dark lines: 20260101-090000-sft-demo" in key and "light lines" in key and "rl-demo" in key, key
        loss, held = plots[0], plots[1]
        assert loss["labels"] == ["loss", "loss (smoothed)", "eval loss"], loss  # the legend: one row, first run
        assert len(loss["lines"]) == 6, loss  # raw, smoothed and eval loss of each run
        palette = {c for pair in PAIRS for c in pair}
        strokes = {x["stroke"] for x in loss["lines"]}
        assert strokes <= palette and {PAIRS[0][0], PAIRS[0][1]} <= strokes, loss  # loss: dark and light blue
        for plot in plots:
            assert plot["lines"] and all(x["stroke"] in palette for x in plot["lines"]), plot
        for plot in pg.evaluate(LEGEND):  # every legend label inside its chart, none cut off
            assert plot["labels"] and all(x["inside"] for x in plot["labels"]), plot

        pg.get_by_role("button", name="Clear overlay").click()
        plots = _wait_plots(pg, lambda ps: len(ps[0]["lines"]) == 3)  # the first run's loss lines only
        assert len(plots[0]["lines"]) == 3 and plots[0]["labels"] == ["loss", "loss (smoothed)", "eval loss"], plots
        assert all(x["stroke"] in palette for p in plots for x in p["lines"]), plots
        pg.wait_for_function("() => document.querySelector('#runs-overlay-key').innerText.trim() === ''")
        new = runs / "20260103-000000-sft-late"
        new.mkdir()
        write_status(new, "running", kind="sft", started=time.time())
        pg.wait_for_function("() => document.body.innerText.includes('20260103-000000-sft-late')",
                             timeout=15_000)  # no Refresh pressed
        assert pg.locator("#runs-pick input").input_value().endswith("sft-demo")  # the pick stays


@pytest.mark.slow  # ~30 s on 2 busy cores; the tables and the progress states are checked cheaply in
# tests/test_evaluate_views.py, the "pick a run" answer in tests/test_sft_ui.py
def test_evaluate_shows_progress_chance_and_by_answer(tiny_path, tmp_path, monkeypatch):
    """Issue 28.10: Evaluate (before / after) shows a progress bar with prompts scored of all
    and the time left while it runs, then the table with chance and prior columns and the
    by-answer view. The scoring is slowed (each batch of 2 waits 0.6 s) so the bar stays long
    enough to be seen; the numbers are the tiny model's own. Screenshots:
    tests/artifacts/evaluate_progress.png, evaluate_done.png, evaluate_by_answer.png."""
    from conftest import make_eval_run
    from studio.engine.workshop import evaluate as E

    run = _fake_sft_run(tmp_path / "runs")
    make_eval_run(run, tiny_path, 6)
    real = E.generate_outputs

    def slowed(model, processor, rows, *, progress=None, **kw):
        def tick(k):
            time.sleep(0.6)
            progress(k)
        return real(model, processor, rows, **{**kw, "batch_size": 2, "max_new_tokens": 8}, progress=tick)

    monkeypatch.setattr(E, "generate_outputs", slowed)
    with _app_page(tiny_path, tmp_path / "runs") as pg:
        pg.get_by_role("tab", name="SFT").click()
        pg.wait_for_function("() => document.querySelector('#sft-status textarea').value.includes('sft-demo')")
        btn = pg.locator("#sft-evaluate-btn")
        btn.scroll_into_view_if_needed()
        btn.click()
        # gradio's progress bar over the panel's message: which model, prompts scored of all, time left
        pg.wait_for_function("() => /[1-9][0-9]*\\/12 prompts scored · [0-9:]+ left/.test("
                             "document.querySelector('#sft-after-msg').closest('.block').innerText)", timeout=60_000)
        shown = pg.evaluate("() => document.querySelector('#sft-after-msg').closest('.block').innerText")
        line = next(x for x in shown.splitlines() if "prompts scored" in x)
        assert line.startswith("Scoring the "), line
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "evaluate_progress.png"))
        pg.wait_for_selector("#sft-after-msg :text('chance %')", timeout=120_000)
        msg = pg.inner_text("#sft-after-msg")
        assert "prior %" in msg and "6 held-out prompts" in msg and "random pick" in msg, msg
        pg.locator("#sft-by-answer").get_by_text("Accuracy by answer").click()
        pg.wait_for_selector("#sft-by-answer :text('predicted % before → after')")
        assert "shapes" in pg.inner_text("#sft-by-answer")
        pg.locator("#sft-after-msg").evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(0.5)
        pg.screenshot(path=str(ARTIFACTS / "evaluate_done.png"))
        pg.locator("#sft-by-answer").evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(0.5)
        pg.screenshot(path=str(ARTIFACTS / "evaluate_by_answer.png"))
