"""Two UI languages: every UI string exists in English and Simplified Chinese.

* the catalog: both languages, non-empty, same placeholders, Chinese really Chinese;
* a static (ast) scan of the UI modules: no user-visible string literal reaches a gradio
  label / info / placeholder / Markdown / Button / gr.Info / gr.Warning / gr.Error without
  going through the catalog (technical tokens allowed), every ``t()`` / ``tr()`` key exists,
  and frontend (``t()``) strings have no ICU braces;
* ``tr()``: English fallback, formatting, request language (session > Accept-Language);
* the header switch exists and the launched app ships both catalogs;
* a handler answers in the language of the request (gradio_client, Accept-Language: zh).
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from conftest import REPO, free_port

from studio.ui import i18n
from studio.ui.i18n import CATALOG, tr

UI_FILES = sorted([REPO / "studio/ui/app.py", REPO / "studio/ui/components.py", REPO / "studio/ui/jobpanel.py",
                   REPO / "studio/ui/render.py", REPO / "studio/ui/evaluation.py", REPO / "studio/ui/overlay.py",
                   *(REPO / "studio/ui/tabs").glob("*.py")])
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
#: Keys whose Chinese text is the same technical term as the English one.
SAME_IN_BOTH = {"common.top_p", "common.lora_alpha", "sft.lora_dropout", "axis.kl", "axis.percent"}
#: Keys that are not prose: the language code the page reads back.
NOT_PROSE = {"app.lang_code"}

#: gradio calls whose first positional argument is shown text.
TEXT_FIRST_ARG = {"Markdown", "Button", "DownloadButton", "UploadButton", "Info", "Warning", "Error", "Tab",
                  "TabItem", "Accordion", "HTML"}
#: Keyword arguments that are shown text in any gradio component.
TEXT_KWARGS = {"label", "info", "placeholder", "title", "message"}
#: Calls whose result is catalog text (their arguments are keys or engine messages).
CATALOG_CALLS = {"t", "tr", "error_text", "gr_error", "unexpected_error", "_text"}
#: Words allowed in literal UI text: names, units, file types, commands, metric names.
ALLOWED_WORDS = {
    "glm", "studio", "lora", "qlora", "grpo", "sft", "rl", "rlcs", "kl", "ema", "ttft", "tok", "vllm", "pdf",
    "jsonl", "json", "yaml", "csv", "parquet", "log", "train", "config", "png", "jpg", "md",
    "duplicate", "this", "space",  # the Hugging Face menu item, English in every UI language
    "step", "value", "series", "id", "px", "top", "nf", "cli", "cuda", "cpu", "gpu", "utf",
    # config values offered as choices (the label/info text explains them)
    "resize", "skip", "rlcs", "uniform", "none",
}


def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


# --------------------------------------------------------------------------- catalog
def test_every_key_has_english_and_chinese():
    assert len(CATALOG) > 150
    for key, entry in CATALOG.items():
        assert set(entry) == {"en", "zh"}, key
        assert entry["en"].strip() and entry["zh"].strip(), key
        assert re.fullmatch(r"[a-z_]+(\.[A-Za-z0-9_]+)+", key), f"key {key!r}: use <area>.<name>"


def test_chinese_strings_are_chinese():
    for key, entry in CATALOG.items():
        if key in SAME_IN_BOTH:
            assert entry["zh"] == entry["en"], key
            continue
        if key in NOT_PROSE:
            assert (entry["en"], entry["zh"]) == ("en", "zh")
            continue
        assert CJK.search(entry["zh"]), f"{key}: zh has no Chinese characters: {entry['zh']!r}"
        assert entry["zh"] != entry["en"], key


def test_placeholders_match_between_languages():
    for key, entry in CATALOG.items():
        assert _placeholders(entry["en"]) == _placeholders(entry["zh"]), key


def test_technical_terms_stay_latin():
    for key, entry in CATALOG.items():
        for term in ("GRPO", "LoRA", "SFT", "RLCS", "QLoRA"):
            if re.search(rf"\b{term}\b", entry["en"]):
                assert term in entry["zh"], f"{key}: keep {term} in the Chinese text"


def test_field_terms_in_chinese():
    zh = {k: v["zh"] for k, v in CATALOG.items()}
    assert "学习率" in zh["common.learning_rate"] and "秩" in zh["common.lora_rank"]
    assert "适配器" in zh["cmp.adapter"] and "思考" in zh["cmp.think_budget"]
    assert "微调" in zh["sft.intro"] and "回答" in zh["render.token_split"]


# --------------------------------------------------------------------------- tr()
def test_tr_falls_back_to_english_and_formats():
    assert tr("common.stop", "en") == "Stop" and tr("common.stop", "zh") == "停止"
    assert tr("common.stop", "fr") == "Stop" and tr("common.stop", "de-DE") == "Stop"
    assert tr("common.stop", "zh-TW") == "停止" and tr("common.stop", "zh_CN") == "停止"
    msg = tr("sft.fixed", "zh", n=3, name="a.fixed.jsonl")
    assert "3" in msg and "a.fixed.jsonl" in msg and CJK.search(msg)
    assert tr("sft.fixed", "en", n=3, name="x") == "Fixed 3 assistant turns; the path now points at x. Run the doctor again."
    with pytest.raises(KeyError):
        tr("no.such_key", "en")
    with pytest.raises(KeyError):
        i18n.t("no.such_key")


def test_engine_errors_keep_english_behind_a_translated_prefix():
    import gradio as gr

    assert i18n.error_text("Pass a smaller --port.", "en") == "Pass a smaller --port."
    assert i18n.error_text("Pass a smaller --port.", "zh") == "错误：Pass a smaller --port."
    err = i18n.gr_error(ValueError("bad rank"), "zh")
    assert isinstance(err, gr.Error) and err.message == "错误：bad rank" and err.title == "错误"
    same = gr.Error("x")
    assert i18n.gr_error(same) is same


def test_accept_language_and_session_choice():
    i18n.set_default("auto")
    assert i18n.from_accept_language("fr-FR,zh-CN;q=0.8,en;q=0.5") == "zh"
    assert i18n.from_accept_language("en-US,en;q=0.9,zh;q=0.8") == "en"
    assert i18n.from_accept_language("de, fr;q=0.5") is None
    assert i18n.from_accept_language("") is None

    class Req:
        def __init__(self, sh, header):
            self.session_hash, self.headers = sh, {"accept-language": header}

    assert i18n.request_language(Req("s-hdr", "zh-CN,zh;q=0.9")) == "zh"
    i18n.set_session_language("s-sw", "zh")
    assert i18n.request_language(Req("s-sw", "en-US")) == "zh"  # the switch wins over the header
    i18n.set_session_language("s-sw", "en")
    assert i18n.request_language(Req("s-sw", "zh-CN")) == "en"
    i18n.forget_session("s-sw")
    assert i18n.request_language(Req("s-sw", "zh-CN")) == "zh"
    assert i18n.request_language(Req(None, "de")) == "en"
    try:  # an explicit app default beats the browser's header; the session choice beats both
        i18n.set_default("zh")
        assert i18n.request_language(Req("s-x", "en-US")) == "zh" and i18n.tr("common.stop") == "停止"
        i18n.set_session_language("s-x", "en")
        assert i18n.request_language(Req("s-x", "zh-CN")) == "en"
    finally:
        i18n.set_default("auto")


# --------------------------------------------------------------------------- static scan
def _module_constants(tree: ast.Module) -> dict[str, ast.AST]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _literal_texts(node: ast.AST, consts: dict[str, ast.AST], seen=()) -> list[str]:
    """String literal fragments in ``node`` that do not pass through a catalog call."""
    if isinstance(node, ast.Call) and _call_name(node) in CATALOG_CALLS:
        return []
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.JoinedStr):  # f-string: its literal parts, with {} where values go
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.Name) and node.id in consts and node.id not in seen:
        return _literal_texts(consts[node.id], consts, (*seen, node.id))
    if isinstance(node, ast.Call):  # e.g. render.escape(x), str(p): only their literal arguments count
        return [s for a in node.args for s in _literal_texts(a, consts, seen)]
    if isinstance(node, (ast.Subscript, ast.Attribute)):
        return []
    return [s for child in ast.iter_child_nodes(node) for s in _literal_texts(child, consts, seen)]


def _is_natural_language(text: str) -> bool:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)        # code blocks
    text = re.sub(r"`[^`]*`", " ", text)                        # code spans
    text = re.sub(r"[\w.<>-]*[/\\][\w./\\<>*-]*", " ", text)   # paths
    text = re.sub(r"\.[a-z0-9]{2,7}\b", " ", text)             # file suffixes
    words = re.findall(r"[A-Za-z]{2,}", text)
    return any(w.lower() not in ALLOWED_WORDS for w in words)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    consts = _module_constants(tree)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "gr"):
            continue
        shown: list[ast.AST] = [kw.value for kw in node.keywords if kw.arg in TEXT_KWARGS]
        if f.attr in TEXT_FIRST_ARG:
            shown += node.args[:1] + [kw.value for kw in node.keywords if kw.arg == "value"]
        if f.attr in ("Radio", "CheckboxGroup", "Dropdown"):
            choices = node.args[:1] + [kw.value for kw in node.keywords if kw.arg == "choices"]
            shown += [e for c in choices if isinstance(c, (ast.List, ast.Tuple)) for e in c.elts]
        if f.attr in ("Error", "Warning", "Info") and node.args:
            a = node.args[0]
            if isinstance(a, ast.Call) and _call_name(a) == "str":
                out.append(f"{path.name}:{node.lineno}: gr.{f.attr}(str(...)) — wrap engine text with "
                           f"error_text()/gr_error() for the translated prefix")
        for expr in shown:
            for text in _literal_texts(expr, consts):
                if _is_natural_language(text):
                    out.append(f"{path.name}:{node.lineno}: gr.{f.attr} shows {text!r} without the catalog")
    return out


def test_scanner_finds_untranslated_text():
    src = ('import gradio as gr\nX = "Some words"\n'
           'gr.Button("Start now")\ngr.Textbox(label=f"Pick {s}")\ngr.Markdown(X)\n'
           'gr.Error(str(e))\ngr.Radio([("Nice label", "v")])\n'
           'gr.Button(t("k"))\ngr.Textbox(label=t("k") + f" {s}")\ngr.Markdown("```bash\\nstudio sft\\n```")\n'
           'gr.Code(label="config.yaml")\ngr.Radio(["rlcs", "uniform"])\n')
    p = Path(__import__("tempfile").mkdtemp()) / "fake.py"
    p.write_text(src)
    found = _violations(p)
    assert [v.split(":")[1] for v in found] == ["3", "4", "5", "6", "7"], found


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_no_ui_text_bypasses_the_catalog(path):
    assert _violations(path) == []


def _catalog_calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in ("t", "tr", "_text") and node.args:
            a = node.args[0]
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                yield _call_name(node), a.value, node.lineno
            elif isinstance(a, ast.IfExp):
                for b in (a.body, a.orelse):
                    if isinstance(b, ast.Constant):
                        yield _call_name(node), b.value, node.lineno


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_catalog_keys_used_exist_and_frontend_text_has_no_braces(path):
    for fn, key, line in _catalog_calls(path):
        assert key in CATALOG, f"{path.name}:{line}: {fn}({key!r}) is not in the catalog"
        if fn in ("t", "_text"):
            for lang in ("en", "zh"):
                assert not re.search(r"[{}]", CATALOG[key][lang]), \
                    f"{key} ({lang}) is shown by the browser (ICU format): no braces"


def test_keys_built_at_runtime_exist():
    from studio.engine.infer import compare as cmp_engine
    from studio.engine.train import data as D
    from studio.ui.app import TABS

    for _, label in TABS:
        assert f"tab.{label.lower()}" in CATALOG
    for k in D.FIXES:
        assert f"sft.fix.{k}" in CATALOG
    for k in D.POLICIES:  # the info text explains every loss policy
        assert k in CATALOG["sft.policy_info"]["en"] and k in CATALOG["sft.policy_info"]["zh"]
    for v in cmp_engine.VOTES:
        assert f"cmp.vote.{v}" in CATALOG
    for side in ("A", "B"):
        assert f"cmp.side_{side}" in CATALOG
    for kind in ("sft", "rl"):
        assert f"app.public_off_{kind}" in CATALOG
    from studio.ui.components import GENERAL_CURVES, RL_CURVES, SFT_CURVES
    from studio.ui.tabs.rl import PLOTS

    for title in [g.title for g in SFT_CURVES + RL_CURVES + GENERAL_CURVES] + [p[0] for p in PLOTS]:
        assert i18n.curve_key(title) in CATALOG, title
    for status in ("running", "finished", "failed", "stopped", "not_started"):
        assert f"job.status.{status}" in CATALOG
    from studio.ui.tabs import runs, sft

    assert i18n.headers("sft.col", sft.TABLE_HEADERS, "en") == sft.TABLE_HEADERS
    assert i18n.headers("runs.col", runs.HEADERS, "en") == runs.HEADERS
    assert all(CJK.search(h) for h in i18n.headers("runs.col", runs.HEADERS, "zh"))


# --------------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def app_config():
    from studio.ui.app import build_app
    from studio.ui.context import AppContext

    demo = build_app(AppContext(language="zh"))
    yield demo, demo.get_config_file()
    i18n.set_default("auto")


def test_header_switch_exists(app_config):
    demo, cfg = app_config
    [switch] = [c for c in cfg["components"] if c["props"].get("elem_id") == i18n.SWITCH_ID]
    assert switch["type"] == "dropdown"
    assert [v for _, v in switch["props"]["choices"]] == ["en", "zh"]
    assert [n for n, _ in switch["props"]["choices"]] == ["English", "简体中文"]
    assert switch["props"]["value"] == "zh"  # AppContext.language is the default
    deps = [d for d in cfg["dependencies"] if d.get("js") and "changeLocale" in d["js"]]
    assert len(deps) == 3  # page load, the switch's input event, the sync after a Settings change
    hidden = {c["props"].get("elem_id"): c for c in cfg["components"]
              if c["props"].get("elem_id") in (i18n.CODE_ID, i18n.SYNC_ID)}
    assert set(hidden) == {i18n.CODE_ID, i18n.SYNC_ID}
    assert all(c["props"].get("visible") == "hidden" for c in hidden.values())
    assert any('"zh"' in d["js"] and "localStorage" in d["js"] for d in deps)
    # the switch re-sends every tab label (the frontend's tab bar is computed once)
    tab_ids = {c["id"] for c in cfg["components"] if c["type"] == "tabitem"}
    assert tab_ids and all(tab_ids <= set(d["outputs"]) for d in deps)


def test_launch_ships_both_catalogs(app_config):
    demo, _ = app_config
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port())
    try:
        tr_ = demo.get_config_file()["i18n_translations"]
        assert set(tr_) == {"en", "zh"} and tr_["zh"]["tab.chat"] == "对话"
    finally:
        demo.close()




def test_handler_answers_in_the_request_language(tiny_path, tmp_path):
    """The SFT tab's config handler, called with Accept-Language zh-CN / en-US."""
    import gradio as gr
    from gradio_client import Client

    from studio.config import ModelSpec
    from studio.ui.context import AppContext
    from studio.ui.tabs import sft

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path)
    i18n.set_default("auto")
    with gr.Blocks() as demo:
        sft.build(ctx)
    demo.queue()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
                show_error=True)
    try:
        args = [None, "", str(tiny_path), "x", 4, 8, 0.0, ["q_proj"], False, False, 0.01, 1, 2, 1, 1, 256, 0, 0,
                0.0, 2, "last_thinking", "resize", "lora", ""]
        for header, expect in (("zh-CN,zh;q=0.9", "错误：请选择数据集"), ("en-US", "Pick a dataset")):
            client = Client(demo.local_url, verbose=False, headers={"Accept-Language": header})
            with pytest.raises(Exception) as err:
                client.predict(*args, api_name="/sft_config")
            assert expect in str(err.value), str(err.value)
    finally:
        demo.close()


def test_switching_language_redraws_chat_text_on_screen(tiny_path, tmp_path):
    """Issue 28.6: after a switch back to English the Thinking title and the stats line of
    a reply made in Chinese stayed Chinese. The Chat tab registers a redraw that the header
    switch runs in the new language."""
    import gradio as gr

    from studio.config import ModelSpec
    from studio.engine.infer import chat as engine
    from studio.ui import render
    from studio.ui.context import AppContext
    from studio.ui.tabs import chat
    from studio.ui.tabs.chat_state import ChatState, Round

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=tmp_path)
    with gr.Blocks():
        chat.build(ctx)
    (fn, ins, outs), (status_fn, _, _) = ctx.extra["retranslate"]  # the chat, then the model/adapter line
    stats = engine.Stats(new_tokens=18, thinking_tokens=10, answer_tokens=6)
    try:
        i18n.set_default("zh")
        msgs = [render.message("assistant", "t", title=i18n.tr("render.thinking") + i18n.tr("render.truncated_paren")),
                render.message("assistant", "4")]
        st = ChatState([Round(user=engine.ChatTurn("user", "q"), user_msgs=[], reply="x", reply_msgs=msgs,
                              stats=stats)])
        zh_stats = render.stats_line(stats)
        assert "模型" in status_fn(chat.NO_ADAPTER) and "Model" not in status_fn(chat.NO_ADAPTER)
        i18n.set_default("en")
        bot, st2, line = fn(st)
        assert "Model:" in status_fn(chat.NO_ADAPTER)
    finally:
        i18n.set_default("en")
    assert bot[0]["metadata"]["title"] == i18n.tr("render.thinking", "en") + i18n.tr("render.truncated_paren", "en")
    assert bot[1] == msgs[1] and line == render.stats_line(stats) and line != zh_stats and "tokens" in line
