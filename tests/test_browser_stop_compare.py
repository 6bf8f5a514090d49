"""Chat and Compare in a real browser (Debian chromium + Playwright): what a newcomer sees
first, Stop (also of a request still queued behind another user's), refusals as toasts,
the Seed box, files shown as the model gets them, and the user's text as a screen reader
reads it; the thinking switches on a model without one. Screenshots go to tests/artifacts/
(first_view_*.png, compare_refused.png, chat_gif_as_mp4.png, chat_thinking_glm41v.png,
compare_thinking_refused.png).

Needs ``apt-get install chromium``; skipped with the reason when it is missing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import launch_tiny_app
from test_browser import ARTIFACTS, CHROMIUM, _set_max_new_tokens

pytestmark = pytest.mark.browser

WJ = "\u2060"  # the word joiner render.plain_text puts after "<"


@pytest.fixture(scope="module")
def app(tiny_path):
    ctx, demo = launch_tiny_app(tiny_path)
    try:
        yield ctx, demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def _page(browser, demo, width=1280, height=720):
    """A fresh browser session (its own context, so its own gradio session_hash)."""
    pg = browser.new_context(viewport={"width": width, "height": height}).new_page()
    pg.set_default_timeout(30_000)
    pg.goto(demo.local_url)
    pg.wait_for_selector("#chat-input textarea")
    return pg


def _send(pg, text):
    pg.fill("#chat-input textarea", text)
    pg.press("#chat-input textarea", "Enter")


def _stats(pg) -> str:
    return pg.inner_text("#chat-stats")


class Slow:
    """LogitsProcessor: ~30 ms per token, so a reply takes long enough to stop it."""

    calls = 0

    def __call__(self, input_ids, scores):
        time.sleep(0.03)
        return scores


def _slow(ctx):
    def factory():
        Slow.calls += 1
        return [Slow()]

    Slow.calls = 0
    ctx.extra["chat_logits_processors"] = factory


# ---------------------------------------------------------------- first view (#18)
@pytest.mark.parametrize("size", [(1280, 720), (1440, 900)])
def test_first_view_shows_the_examples_and_a_grey_stop(app, browser, size):
    _, demo = app
    pg = _page(browser, demo, *size)
    pg.wait_for_selector("#chat-examples button, #chat-examples .gallery")
    pg.wait_for_timeout(500)
    box = pg.evaluate("""() => { const r = document.querySelector('#chat-examples').getBoundingClientRect();
        const i = document.querySelector('#chat-input').getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, input: i.bottom, h: window.innerHeight, y: window.scrollY}; }""")
    assert box["y"] == 0, box  # the input's autofocus did not scroll the page
    assert 0 <= box["top"] and box["bottom"] <= box["h"], box
    assert box["input"] <= box["h"], box
    stop = pg.locator("#stop-btn")
    assert stop.is_disabled() and "secondary" in stop.get_attribute("class")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"first_view_{size[0]}x{size[1]}.png"))
    pg.get_by_role("tab", name="Compare").click()
    assert pg.locator("#cmp-stop").is_disabled()
    pg.context.close()


# ---------------------------------------------------------------- Stop (#14, #15)
@pytest.mark.slow  # 10-40 s: slow replies to stop, or two full comparisons
def test_stop_leaves_the_status_on_the_result(app, browser):
    ctx, demo = app
    pg = _page(browser, demo, 1280, 900)
    _set_max_new_tokens(pg, 400)
    _slow(ctx)
    try:
        for i in range(4):  # the late "Stopping…" came in 3 of 5 tries
            _send(pg, f"Tell me a long story {i}.")
            pg.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('Generating')")
            assert pg.locator("#stop-btn").is_enabled()
            assert "stop" in pg.get_attribute("#stop-btn", "class").split()
            time.sleep(0.5)
            pg.click("#stop-btn")
            pg.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('stopped')")
            time.sleep(1.0)
            assert "Stopping" not in _stats(pg) and "stopped" in _stats(pg), (i, _stats(pg))
            pg.wait_for_function("() => document.querySelector('#stop-btn').disabled")
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    pg.context.close()


@pytest.mark.slow  # 10-40 s: slow replies to stop, or two full comparisons
def test_stop_cancels_a_request_queued_behind_another_users(app, browser):
    ctx, demo = app
    first, second = _page(browser, demo, 1280, 900), _page(browser, demo, 1280, 900)
    for pg in (first, second):
        _set_max_new_tokens(pg, 150)  # ~5 s at 30 ms per token
    _slow(ctx)
    try:
        _send(first, "A long story, please.")
        first.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('Generating')")
        _send(second, "My question waits in the queue.")
        second.wait_for_function("() => !document.querySelector('#stop-btn').disabled")  # queued: Stop works
        second.click("#stop-btn")
        second.wait_for_selector("#chat-stats :text('Stopped before it started')")
        # the first user's reply ends on its own; the queued one must not run afterwards
        first.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('tok/s')",
                                timeout=60_000)
        time.sleep(3.0)
        assert Slow.calls == 1, "the stopped request was generated anyway"
        assert second.locator("#chatbot .message-row").count() == 0
        assert second.input_value("#chat-input textarea") == "My question waits in the queue."
        assert second.locator("#stop-btn").is_disabled()
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    first.context.close()
    second.context.close()


# ---------------------------------------------------------------- what the bubble shows (#17, #19)
def test_a_gif_named_mp4_shows_as_the_image_the_model_gets(app, browser, tmp_path):
    from PIL import Image

    _, demo = app
    frames = [Image.new("RGB", (96, 64), c) for c in ((220, 30, 30), (30, 30, 220))]
    gif = tmp_path / "animation.mp4"
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    pg = _page(browser, demo)
    _set_max_new_tokens(pg, 4)
    pg.set_input_files("#chat-input input[type=file]", [str(gif)])
    pg.wait_for_selector("#visual-estimate :text('1 image')")
    _send(pg, "What colour is this?")
    pg.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('tok/s')")
    assert pg.locator("#chatbot .user-row video").count() == 0
    img = pg.locator("#chatbot .user-row img").first
    img.wait_for()
    assert pg.evaluate("e => e.naturalWidth", img.element_handle()) == 96
    pg.locator("#chatbot .user-row").first.scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "chat_gif_as_mp4.png"))
    pg.context.close()


def test_the_screen_reader_label_is_the_text_as_typed(app, browser):
    _, demo = app
    pg = _page(browser, demo)
    _set_max_new_tokens(pg, 4)
    typed = "Is <b>this</b> & that &amp; bold?"
    _send(pg, typed)
    pg.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('tok/s')")
    msg = pg.locator("#chatbot .user-row [aria-label]").first
    assert msg.get_attribute("aria-label").replace(WJ, "") == f"user's message: {typed}"
    assert msg.inner_text().replace(WJ, "").strip() == typed  # shown as typed, not as HTML
    assert msg.locator("b").count() == 0
    pg.context.close()


# ---------------------------------------------------------------- Compare (#12, #13)
def _compare_tab(pg):
    pg.get_by_role("tab", name="Compare").click()
    pg.wait_for_selector("#cmp-input textarea")


def _error_pills(pg) -> int:
    sel = "#cmp-plan, #cmp-head-a, #cmp-head-b, #cmp-chat-a, #cmp-chat-b, #cmp-stats-a, #cmp-stats-b, #cmp-vote-status"
    return pg.evaluate("""sel => [...document.querySelectorAll(sel)]
        .map(e => e.closest('.block') || e).filter(e => /\\bError\\b/.test(e.innerText)).length""", sel)


def test_thinking_switches_on_glm41v_explain_and_refuse(app, browser):
    """GLM-4.1V models have no thinking switch: Chat's box is greyed out with the reason
    (the examples stay in the first view); Compare with Thinking B off is a toast that says
    what to change, and nothing else on the page moves."""
    _, demo = app
    pg = _page(browser, demo)
    pg.click("#chat-thinking-acc button, #chat-thinking-acc .label-wrap")
    box = pg.locator("#chat-thinking input[type=checkbox]")
    box.wait_for()
    assert box.is_disabled() and box.is_checked()
    assert "always thinks" in pg.inner_text("#chat-thinking")
    ex = pg.evaluate("() => document.querySelector('#chat-examples').getBoundingClientRect().bottom")
    assert ex <= 720
    pg.locator("#chat-thinking").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "chat_thinking_glm41v.png"))
    pg.evaluate("window.scrollTo(0, 0)")
    _compare_tab(pg)
    # issue 28.8: side A is a base (completion) prompt, which never thinks: its box is off and greyed
    think_a = pg.locator("#cmp-thinking-a input[type=checkbox]")
    assert think_a.is_disabled() and not think_a.is_checked()
    pg.locator("#cmp-thinking-b input[type=checkbox]").uncheck()
    pg.wait_for_selector("#cmp-plan :text('no thinking switch')")  # the plan says so at once
    heads = pg.inner_text("#cmp-head-a") + pg.inner_text("#cmp-head-b")
    pg.fill("#cmp-input textarea", "How many red circles?")
    pg.click("#cmp-run")
    pg.wait_for_selector(".toast-body :text('Turn Thinking B back on')")
    pg.wait_for_timeout(500)
    assert _error_pills(pg) == 0 and pg.locator("#cmp-chat-a .message-row, #cmp-chat-b .message-row").count() == 0
    assert pg.inner_text("#cmp-head-a") + pg.inner_text("#cmp-head-b") == heads
    assert pg.input_value("#cmp-input textarea") == "How many red circles?"
    assert pg.locator("#cmp-stop").is_disabled()
    pg.screenshot(path=str(ARTIFACTS / "compare_thinking_refused.png"))
    pg.context.close()


@pytest.mark.slow  # 10-40 s: slow replies to stop, or two full comparisons
def test_compare_refusals_are_toasts_and_the_seed_stays_empty(app, browser):
    _, demo = app
    pg = _page(browser, demo)
    _compare_tab(pg)
    pg.click("#cmp-settings button, #cmp-settings .label-wrap")
    seed = pg.locator("#cmp-seed textarea, #cmp-seed input").first
    seed.wait_for()
    pg.wait_for_timeout(500)
    assert seed.input_value() == ""  # "empty = random" stays empty when Settings opens
    plan = pg.inner_text("#cmp-plan")
    assert "Memory plan" in plan
    # an empty question: a toast, nothing else moves
    pg.click("#cmp-run")
    pg.wait_for_selector(":text('Type a question')")
    pg.wait_for_timeout(800)
    assert _error_pills(pg) == 0
    assert pg.inner_text("#cmp-plan") == plan
    pg.screenshot(path=str(ARTIFACTS / "compare_refused.png"), full_page=True)
    # a seed that is not a number: the same
    seed.fill("abc")
    pg.fill("#cmp-input textarea", "What is 2+2?")
    pg.click("#cmp-run")
    pg.wait_for_selector(":text('Seed must be a whole number')")
    assert _error_pills(pg) == 0 and pg.locator("#cmp-chat-a .message-row").count() == 0
    assert pg.input_value("#cmp-input textarea") == "What is 2+2?"
    # an empty seed runs with a drawn one, reported as such
    seed.fill("")
    for elem, n in (("#cmp-max-new", 16), ("#cmp-base-cap", 8)):
        box = pg.locator(f"{elem} input[type=number]")
        box.fill(str(n))
        box.press("Enter")
    pg.click("#cmp-run")
    pg.wait_for_selector("#cmp-vote-status :text('Which answer is better')", timeout=120_000)
    status = pg.inner_text("#cmp-vote-status")
    assert "Seed 0 " not in status and "Seed " in status, status
    assert seed.input_value() == ""
    # issue 28.2: the box emptied on send (the next question is not glued to this one), the
    # panes hold what was sent, and New comparison clears panes and vote
    assert pg.input_value("#cmp-input textarea") == ""
    assert "What is 2+2?" in pg.inner_text("#cmp-chat-a") and "What is 2+2?" in pg.inner_text("#cmp-chat-b")
    pg.screenshot(path=str(ARTIFACTS / "compare_sent_box_empty.png"))
    pg.click("#cmp-new")
    pg.wait_for_function("() => !document.querySelector('#cmp-chat-a').innerText.includes('2+2')")
    assert pg.locator("#cmp-chat-a .message-row, #cmp-chat-b .message-row").count() == 0
    assert "Which answer" not in pg.inner_text("#cmp-vote-status")
    pg.click("#cmp-vote-a")
    pg.wait_for_selector(".toast-body")  # nothing left to vote on: refused, says why
    pg.context.close()


def test_cosmetics_of_the_first_walk(app, browser):
    """Issue 28.13: the chat's trash/copy icons sat over the first message, the SFT recipe
    button wrapped to three lines, the disabled training Stop was pink, and the loading
    banner's hourglass was a tofu box without an emoji font (a CSS spinner now)."""
    from studio.ui.i18n import CATALOG

    _, demo = app
    pg = _page(browser, demo)
    pad = pg.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#chatbot .bubble-wrap')).paddingTop)")
    assert pad >= 36, pad
    pg.get_by_role("tab", name="SFT").click()
    recipe = pg.locator("#sft-recipe-btn")
    recipe.wait_for()
    assert recipe.bounding_box()["height"] < 50, recipe.bounding_box()
    stop = pg.locator("button.stop:disabled").first
    stop.scroll_into_view_if_needed()
    colours = pg.evaluate("""() => { const s = document.querySelector('button.stop:disabled');
        const r = document.querySelector('#sft-recipe-btn');
        return [getComputedStyle(s).backgroundColor, getComputedStyle(r).backgroundColor]; }""")
    assert colours[0] == colours[1], colours  # grey like a secondary button, not the stop red/pink
    # a disabled Start (primary) is grey too, not a faded salmon that looks clickable
    pg.evaluate("""() => { Array.from(document.querySelectorAll('button.primary'))
        .find(e => e.offsetParent !== null).id = 'studio-test-start'; }""")
    pg.evaluate("() => { document.getElementById('studio-test-start').disabled = true; }")
    pg.wait_for_timeout(800)  # the buttons' colour transition
    start = pg.evaluate("() => getComputedStyle(document.getElementById('studio-test-start')).backgroundColor")
    assert start == colours[1], (start, colours)
    pg.screenshot(path=str(ARTIFACTS / "sft_panel_buttons.png"))
    assert all("⏳" not in CATALOG["chat.loading"][lang] for lang in ("en", "zh"))
    css = pg.evaluate("() => Array.from(document.styleSheets).flatMap(s => { try { return Array.from(s.cssRules) }"
                      " catch (e) { return [] } }).map(r => r.cssText).join(' ')")
    assert "studio-spin" in css and "#model-loading" in css
    # the chat's trash/copy icons (shown once it has messages) get a row of their own, not
    # drawn over the top message after a scroll
    assert re.search(r"#chatbot \.icon-button-wrapper\.top-panel \{[^}]*position: static", css), css[:200]
    pg.context.close()


def test_vote_buttons_draw_each_label_in_one_font(app, browser):
    """Compare's vote buttons read "A is better" with an odd first letter: gradio 6.31's
    semibold Source Sans file holds only "A", "B" and the space, so those came from it and
    the rest from the fallback font. Every label is now drawn in one font (Chromium's own
    account of the fonts it used). Screenshot: tests/artifacts/compare_vote_buttons.png."""
    _, demo = app
    pg = _page(browser, demo)
    _compare_tab(pg)
    pg.wait_for_selector("#cmp-vote-a")
    pg.evaluate("() => document.fonts.ready")
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    used = {}
    for v in ("a", "b", "tie", "both_bad"):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": f"#cmp-vote-{v}"})["nodeId"]
        used[v] = [f["familyName"] for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]]
    assert all(len(fonts) == 1 for fonts in used.values()), used
    assert len({fonts[0] for fonts in used.values()}) == 1, used
    pg.locator("#cmp-vote-a").scroll_into_view_if_needed()
    pg.locator("#cmp-vote-a").locator("xpath=..").screenshot(path=str(ARTIFACTS / "compare_vote_buttons.png"))
    pg.context.close()


def _pick(pg, elem: str, value: str):
    """Type ``value`` into the dropdown ``elem`` (custom values allowed) and leave it."""
    box = pg.locator(f"{elem} input").first
    box.fill(value)
    box.press("Enter")
    box.blur()


def test_compare_headers_follow_the_pickers_then_name_what_ran(app, browser):
    """Issue 28.7: the pane headers followed the last comparison, not the pickers. A picker
    change names the new pick above its pane at once, before any run (after a comparison:
    the next test)."""
    _, demo = app
    pg = _page(browser, demo)
    _compare_tab(pg)
    pg.wait_for_selector("#cmp-plan :text('Memory plan')")
    head_b = pg.inner_text("#cmp-head-b")
    _pick(pg, "#cmp-adapter-b", "my-run/adapter")  # typed, not listed: the header follows it all the same
    pg.wait_for_selector("#cmp-head-b :text('+ adapter my-run')")
    assert pg.inner_text("#cmp-head-a") != pg.inner_text("#cmp-head-b") and head_b != pg.inner_text("#cmp-head-b")
    _pick(pg, "#cmp-adapter-b", "none")
    pg.wait_for_function("h => document.querySelector('#cmp-head-b').innerText === h", arg=head_b)
    _pick(pg, "#cmp-model-a", "embedded")
    pg.wait_for_selector("#cmp-head-a :text('embedded')")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.locator("#cmp-head-a").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "compare_headers_follow_pickers.png"))
    pg.context.close()


@pytest.mark.slow  # a full comparison (~10 s on 2 cores)
def test_compare_header_says_whose_answers_the_pane_holds(app, browser):
    """Issue 28.7, after a run: the headers name what ran; a pick changed afterwards is named,
    with a line saying whose answers the pane still holds (until New comparison)."""
    _, demo = app
    pg = _page(browser, demo)
    _compare_tab(pg)
    pg.click("#cmp-settings button, #cmp-settings .label-wrap")
    for elem, n in (("#cmp-max-new", 16), ("#cmp-base-cap", 8)):
        box = pg.locator(f"{elem} input[type=number]")
        box.fill(str(n))
        box.press("Enter")
    ran_b = pg.inner_text("#cmp-head-b")
    pg.fill("#cmp-input textarea", "How many red circles?")
    pg.click("#cmp-run")
    pg.wait_for_selector("#cmp-vote-status :text('Which answer is better')", timeout=120_000)
    assert pg.inner_text("#cmp-head-b") == ran_b and "answers below" not in ran_b
    _pick(pg, "#cmp-model-b", "embedded")
    pg.wait_for_selector("#cmp-head-b :text('The answers below are from')")
    head = pg.inner_text("#cmp-head-b")
    assert head.startswith("B · embedded") and "toy-thinking" in head.split("are from", 1)[1], head
    assert "answers below" not in pg.inner_text("#cmp-head-a")  # side A still holds what is picked
    pg.locator("#cmp-head-b").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "compare_header_after_run.png"))
    pg.click("#cmp-new")  # the panes are empty: nothing to attribute
    pg.wait_for_function("() => !document.querySelector('#cmp-head-b').innerText.includes('answers below')")
    pg.context.close()


# ---------------------------------------------------------------- SFT recipe: Stop before the run (#16)
@pytest.mark.slow  # 12-20 s; tests/test_recipes.py checks the same handlers in the default suite
def test_sft_stop_ends_the_recipes_data_generation(app, browser, tmp_path, monkeypatch):
    """Issue 28.16: Stop during the SFT recipe's first-use data generation was honoured only
    after it. Now the panel's Stop is live from the click on, ends the generation within a
    scene, deletes the partial data, makes no run folder, and the status line says so."""
    from studio.ui.tabs import sft

    ctx, demo = app
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("name: stop-demo\nmodel: {name_or_path: embedded}\ndata: gen/sft.jsonl\n"
                      "tasks: {scenes: 100000, eval_n: 0}\nmax_steps: 1\n")
    monkeypatch.setattr(sft, "RECIPE", recipe)  # what the recipe button runs, read at each click
    before = set(Path(ctx.runs_dir).glob("*")) if Path(ctx.runs_dir).is_dir() else set()
    pg = _page(browser, demo)
    pg.get_by_role("tab", name="SFT").click()
    pg.click("#sft-recipe-btn")
    pg.wait_for_function("() => document.querySelector('#sft-status textarea').value.startsWith('preparing')")
    images = tmp_path / "gen" / "images"
    deadline = time.monotonic() + 60
    while not (images.is_dir() and any(images.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert images.is_dir() and any(images.iterdir()), "the generation did not start"
    stop = pg.locator("#sft-stop-btn")
    assert stop.is_enabled()
    stop.click()
    pg.wait_for_function("() => document.querySelector('#sft-status textarea').value"
                         ".startsWith('stopped before the run started')", timeout=15_000)
    pg.wait_for_timeout(2500)  # a poll later the line still says it
    status = pg.input_value("#sft-status textarea")
    assert "partial data deleted" in status and "no run folder" in status, status
    assert not (tmp_path / "gen").exists()
    after = set(Path(ctx.runs_dir).glob("*")) if Path(ctx.runs_dir).is_dir() else set()
    assert after == before  # no run folder
    assert pg.locator("#sft-recipe-btn").is_enabled() and stop.is_disabled()
    pg.locator("#sft-status").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "sft_recipe_stopped.png"))
    pg.context.close()


def test_sft_recipe_start_and_what_it_runs_are_in_the_first_view(app, browser):
    """Issue 28.4: at 1280×720 the SFT tab shows, without scrolling, the button that starts
    the workshop recipe and what it runs (method, model, steps); "Load into the form" fills
    the form with it (the rest of the form still works)."""
    _, demo = app
    pg = _page(browser, demo)
    pg.get_by_role("tab", name="SFT").click()
    btn, summary = pg.locator("#sft-recipe-btn"), pg.locator("#sft-recipe-summary")
    btn.wait_for()
    for el in (btn, summary):
        box = el.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 720, box
    text = summary.inner_text()
    assert all(s in text for s in ("full fine-tune", "toy-base", "1,300 steps")), text
    assert btn.is_enabled()
    pg.screenshot(path=str(ARTIFACTS / "sft_first_view.png"))
    pg.click("#sft-load-recipe")
    pg.wait_for_function("() => (document.querySelector('#sft-path textarea, #sft-path input')?.value || '')"
                         ".endsWith('thinking-sft-15600/sft.jsonl')")
    pg.context.close()
