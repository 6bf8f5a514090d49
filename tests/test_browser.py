"""The Chat tab in a real browser: Debian chromium driven by Playwright.

Sends the sample photo with a question and watches the reply stream in: a collapsible
*Thinking* block (pending spinner while it streams), the answer below it, the box drawn
on the photo, model HTML shown as text. Then a video and a PDF turn with the (random)
embedded model, and a media-rule error that keeps the user's text. Screenshots go to
tests/artifacts/ (chat.png, chat_video.png, chat_pdf.png).

Needs ``apt-get install chromium``; skipped with the reason when it is missing.
"""

from __future__ import annotations

import re

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import SAMPLE_DATA, launch_tiny_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PHOTO = SAMPLE_DATA / "photos" / "chelsea.jpg"
CLIP = SAMPLE_DATA / "video" / "clip.mp4"
PDF = SAMPLE_DATA / "docs" / "sample.pdf"

SCRIPT = ("<think>The photo shows a cat. Its face fills the middle of the frame, so the box "
          "should cover the centre. <b>not bold</b></think><answer>A cat "
          "<script>window.pwned=1</script> at <|begin_of_box|>[150,100,850,950]<|end_of_box|></answer>")

if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(f"Chromium not found at {CHROMIUM}: run `apt-get update && apt-get install -y chromium` "
                f"(or set STUDIO_CHROMIUM)", allow_module_level=True)




@pytest.fixture(scope="module")
def app(tiny_path):
    ctx, demo = launch_tiny_app(tiny_path)
    try:
        yield ctx, demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    _, demo = app
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.set_default_timeout(30_000)
        pg.goto(demo.local_url)
        pg.wait_for_selector("#chat-input textarea")
        try:
            yield pg
        finally:
            browser.close()


def _send(pg, text: str, files: list[Path]):
    if files:
        pg.set_input_files("#chat-input input[type=file]", [str(f) for f in files])
        pg.wait_for_selector("#visual-estimate :text('visual tokens'), #visual-estimate :text('⚠')")
    pg.fill("#chat-input textarea", text)
    pg.press("#chat-input textarea", "Enter")


def _wait_done(pg):
    # the reply's stats line is there and the sent message left the input box; both at once, since
    # a stats line left from a reply that a Clear cut short also says tok/s
    pg.wait_for_function(
        "() => (document.querySelector('#chat-stats')?.innerText || '').includes('tok/s')"
        " && document.querySelector('#chat-input textarea')?.value === ''")
    assert pg.input_value("#chat-input textarea") == ""
    assert pg.locator("#chat-input .thumbnail-item, #chat-input .thumbnail-image").count() == 0


def _clear(pg):
    pg.click("#clear-btn")
    pg.wait_for_function("() => !document.querySelector('#chatbot .message-row')")


def test_image_question_streams_thinking_answer_and_box(app, page, tiny):
    from test_chat_engine import ForceSequence

    ctx, _ = app
    tok = tiny[1].tokenizer
    ids = tok(SCRIPT, add_special_tokens=False).input_ids

    class Slow(ForceSequence):  # ~30 ms per token so the stream is visible
        def __call__(self, input_ids, scores):
            time.sleep(0.03)
            return super().__call__(input_ids, scores)

    ctx.extra["chat_logits_processors"] = lambda: [Slow(ids, tok.convert_tokens_to_ids("<|user|>"))]
    try:
        _send(page, "Where is the cat?", [PHOTO])
        # streaming: the thinking block shows with its spinner before the answer exists
        page.wait_for_selector("#chatbot .thought-group .loading-spinner")
        assert "Thinking" in page.inner_text("#chatbot .thought-group .title")
        _wait_done(page)
    finally:
        ctx.extra.pop("chat_logits_processors", None)
    pg = page
    assert pg.locator("#chatbot .thought-group .loading-spinner").count() == 0
    bot = pg.inner_text("#chatbot")
    assert "A cat <script>window.pwned=1</script> at [150,100,850,950]" in bot
    assert pg.evaluate("typeof window.pwned") == "undefined"
    assert "<|begin_of_box|>" not in bot and "<answer>" not in bot
    assert pg.locator("#chatbot img[src*='studio-boxes']").count() == 1
    # the thinking block is collapsible: toggle it closed and open again
    title = pg.locator("#chatbot .thought-group .title").first
    content = pg.locator("#chatbot .thought-group .content").first
    if not content.is_visible():
        title.click()
    assert "Its face fills the middle" in content.inner_text()
    assert "<b>not bold</b>" in content.inner_text()
    title.click()
    pg.wait_for_timeout(300)
    assert not content.is_visible()
    title.click()
    content.wait_for(state="visible")
    pg.locator("#chatbot .thought-group").first.evaluate("e => e.scrollIntoView({block: 'center'})")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    assert (ARTIFACTS / "chat.png").stat().st_size > 10_000


def test_media_rule_error_keeps_the_text(page, tmp_path):
    from PIL import Image

    _clear(page)
    img = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (0, 120, 200)).save(img)
    page.set_input_files("#chat-input input[type=file]", [str(img), str(CLIP)])
    page.fill("#chat-input textarea", "Compare these please")
    page.press("#chat-input textarea", "Enter")
    page.wait_for_selector(":text('cannot be mixed')")
    assert page.input_value("#chat-input textarea") == "Compare these please"
    assert page.locator("#chatbot .message-row").count() == 0
    # The refusal is a toast: the draft stays editable (no error cover on the input box).
    page.fill("#chat-input textarea", "Compare these please, again", timeout=5_000)
    assert page.input_value("#chat-input textarea") == "Compare these please, again"


@pytest.mark.slow  # kept out of the default suite until it has passed 5 of 5 runs alone
def test_clear_during_streaming_empties_the_chat(page):
    """Clear while a long reply streams: the chat empties and *stays* empty (no late update of
    the reply redraws it), and the next question starts a new conversation."""
    _clear(page)
    page.reload()
    page.wait_for_selector("#chat-input textarea")
    _set_max_new_tokens(page, 4000)
    _send(page, "Tell me a very long story.", [])
    page.wait_for_selector("#chatbot .message-row", timeout=30_000)
    time.sleep(0.5)
    page.click("#clear-btn")
    page.wait_for_function("() => !document.querySelector('#chatbot .message-row')", timeout=15_000)
    for _ in range(20):  # 2 s: nothing of the old conversation comes back
        assert page.locator("#chatbot .message-row").count() == 0
        time.sleep(0.1)
    _set_max_new_tokens(page, 20)
    _send(page, "Second question", [])
    _wait_done(page)
    assert "Tell me a very long story." not in page.inner_text("#chatbot")


def test_clear_after_an_image_turn_starts_a_new_conversation(page):
    """Clear when idle, then ask without an image: the old image turn does not come back (an
    estimate of the box, re-run by Clear's own change of the box, once wrote its old copy of the
    conversation back into the session state)."""
    _clear(page)
    page.reload()
    page.wait_for_selector("#chat-input textarea")
    _set_max_new_tokens(page, 20)
    _send(page, "First question about this image", [PHOTO])
    _wait_done(page)
    page.click("#clear-btn")
    page.wait_for_function("() => !document.querySelector('#chatbot .message-row')", timeout=15_000)
    time.sleep(1.0)  # the box's change event (the estimate) runs after Clear
    _send(page, "Second question", [])
    _wait_done(page)
    text = page.inner_text("#chatbot")
    assert "Second question" in text and "First question about this image" not in text, text
    assert page.locator("#chatbot img").count() == 0


def _set_max_new_tokens(pg, n: int):
    if not pg.locator("#max-new-tokens input[type=number]").is_visible():
        pg.click("#sampling button, #sampling .label-wrap")
    box = pg.locator("#max-new-tokens input[type=number]")
    box.fill(str(n))
    box.press("Enter")


def test_video_and_pdf_replies(page):
    _clear(page)
    page.reload()
    page.wait_for_selector("#chat-input textarea")
    _set_max_new_tokens(page, 40)
    _send(page, "What happens in this video?", [CLIP])
    _wait_done(page)
    page.wait_for_selector("#chatbot video", timeout=30_000)  # the user's clip, rendered in the chat
    assert page.locator("#chatbot video").count() == 1
    assert re.search(r"\b\d+ tokens\b", page.inner_text("#chat-stats")), page.inner_text("#chat-stats")
    page.screenshot(path=str(ARTIFACTS / "chat_video.png"), full_page=True)
    _clear(page)
    _send(page, "Summarise this document.", [PDF])
    _wait_done(page)
    assert "sample.pdf:" in page.inner_text("#chatbot") and "sent as images" in page.inner_text("#chatbot")
    page.screenshot(path=str(ARTIFACTS / "chat_pdf.png"), full_page=True)
