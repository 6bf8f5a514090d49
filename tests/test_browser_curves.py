"""Training curves in a real browser (Debian chromium + Playwright) at 1280×720.

Every chart's legend must name its series, in colour, inside the chart's box — the plots
used to build their colour scale from an empty frame, so lines had no colour and the
legend showed only the word "series", cut off below the x axis. Screenshot:
tests/artifacts/runs_curves.png.
"""

from __future__ import annotations

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
    from playwright.sync_api import sync_playwright

    from conftest import free_port
    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.ui.context import AppContext

    _fake_sft_run(tmp_path / "runs")
    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path / "runs")
    demo = launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            pg = browser.new_page(viewport={"width": 1280, "height": 720})
            pg.set_default_timeout(30_000)
            pg.goto(demo.local_url)
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
            browser.close()
    finally:
        demo.close()


@pytest.mark.slow
def test_refused_start_and_a_new_run_in_the_sft_panel(tiny_path, tmp_path):
    """A refused Start must not leave the previous run's failure in the status box (it reads
    as this Start's); a new run becomes the one the "Watch / resume" picker shows."""
    from playwright.sync_api import sync_playwright

    from conftest import SAMPLE_DATA, free_port
    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.engine.train.runs import list_runs, write_status
    from studio.ui.context import AppContext

    old = tmp_path / "runs" / "20260101-000000-sft-old"
    old.mkdir(parents=True)
    write_status(old, "failed", kind="sft", error="boom: the old run broke", started=1.0, ended=2.0)
    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path / "runs")
    demo = launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    status = "#sft-status textarea"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            pg = browser.new_page(viewport={"width": 1280, "height": 720})
            pg.set_default_timeout(30_000)
            pg.goto(demo.local_url)
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
            browser.close()
    finally:
        demo.close()
