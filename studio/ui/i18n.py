"""Two UI languages, English (``en``) and Simplified Chinese (``zh``), switchable at runtime.

One catalog, two ways to use it:

* **Static text** (labels, info, placeholders, buttons, Markdown written at build time):
  ``t("sft.run_name")`` returns a ``gradio.i18n.I18nData``; the browser translates it with
  the catalog sent in the page config (``gr.I18n``), and re-translates it when the locale
  changes, so switching language keeps every value the user typed. A string may hold one
  ``t()`` marker plus literal text around it (``t("x") + "\\n```bash …```"``): gradio's
  frontend replaces the first marker and keeps the rest.
* **Run-time text** (``gr.Info``/``gr.Warning``/``gr.Error`` messages, status lines, chat
  titles produced by handlers): ``tr("key", lang, **fmt)`` on the server, in the language of
  the request being served (:func:`current_language`): the session's choice in the header
  switch, else the app default (``AppContext.language``); with the ``"auto"`` default the
  browser's ``Accept-Language``, else English.

Engine messages (:class:`~studio.errors.StudioError` text from ``studio/engine``) are
dynamic English sentences; :func:`error_text` keeps them English and adds a translated
prefix (``错误：`` in Chinese), :func:`gr_error` makes the ``gr.Error`` with a translated
title.

The header switch (:func:`language_switch`) sets the browser locale through the
frontend's own ``changeLocale`` (the function behind gradio's footer *Settings →
Language* chooser; it finds gradio's ``core-*.js`` module among the loaded resources and
imports it, which returns the same module instance), remembers the choice in
``localStorage`` and tells the server, which keeps it per session
(:func:`set_session_language`). Tab labels are sent again on every switch: gradio computes
the tab bar once, so tabs not opened yet would keep the old language. A change made in the
footer chooser is noticed through a hidden Markdown holding the catalog's language code
(its text changes with the locale) and handled the same way. If a future gradio drops the
``changeLocale`` export, the switch logs a console warning and only server-side text follows.

Not translated: gradio's own texts that its zh-CN bundle lacks (the upload box's "Drop File
Here"), the toast header (gradio shows the capitalised type, "Error"), example questions
(they are inputs), engine sentences (English behind the prefix), model output.

Frontend strings go through svelte-i18n's ICU message format: static (``t()``) strings
must not contain ``{`` or ``}`` (tests/test_i18n.py checks). Run-time strings use
``str.format`` placeholders (``{n}``).
"""

# No `from __future__ import annotations`: gradio finds `gr.Request` by its evaluated annotation.
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

#: Supported UI languages, in switch order.
LANGS = ("en", "zh")
#: Names shown in the header switch (each in its own language).
LANG_NAMES = {"en": "English", "zh": "简体中文"}
#: The gradio frontend locale each language selects (its bundled zh strings are zh-CN).
FRONTEND_LOCALE = {"en": "en", "zh": "zh-CN"}
#: ``elem_id`` of the header switch, and of its hidden language-code text and sync button.
SWITCH_ID = "studio-lang"
CODE_ID = "studio-lang-code"
SYNC_ID = "studio-lang-sync"
#: ``localStorage`` key of the browser's saved choice.
STORAGE_KEY = "studio.lang"

#: The catalog's text, one data file per language: ``studio/ui/locales/<lang>.json`` maps each
#: key ("<area>.<name>", in the order of the tabs) to its text. Keep GRPO / LoRA / SFT / RLCS /
#: QLoRA in Latin letters; use the field's usual Chinese terms (推理/思考, 回答, 微调, 强化学习,
#: 课程采样, 适配器, 奖励, 学习率, 秩 …).
LOCALES_DIR = Path(__file__).resolve().with_name("locales")


def _load_catalog() -> dict[str, dict[str, str]]:
    """key → {lang: text} from the locale files; every key must be in every file."""
    tables = {lang: json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGS}
    keys = list(tables[LANGS[0]])
    for lang, table in tables.items():
        missing = sorted(set(keys) ^ set(table))
        if missing:
            raise RuntimeError(f"studio/ui/locales/{lang}.json and {LANGS[0]}.json differ in keys: {missing[:10]}")
    return {k: {lang: tables[lang][k] for lang in LANGS} for k in keys}


def _with_empty_curve_labels(catalog: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Add ``curve_empty.<name>`` for every plot title ``curve.<name>``: the title and
    ``chart.no_data`` in one key, the label of that plot while it has no point (a frontend
    string replaces one catalog marker only, so the two texts cannot be joined there)."""
    out = dict(catalog)
    for key, entry in catalog.items():
        if key.startswith("curve."):
            out["curve_empty." + key[len("curve."):]] = {
                lang: catalog["chart.no_data"][lang].format(title=entry[lang]) for lang in LANGS}
    return out


#: The catalog: key → {"en": …, "zh": …}.
CATALOG: dict[str, dict[str, str]] = _with_empty_curve_labels(_load_catalog())

_default_lang = "en"
_default_auto = True  # no app default set: honour the browser's Accept-Language
_SESSIONS: "OrderedDict[str, str]" = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 10_000
_I18N = None


def normalize(lang: str | None) -> str | None:
    """A language tag → ``"en"`` / ``"zh"``, or None when it is neither.

    ``zh``, ``zh-CN``, ``zh_Hans``, ``zh-TW`` … → ``"zh"`` (the catalog is Simplified
    Chinese; it is the closest we have for Traditional readers); ``en-US`` → ``"en"``.
    """
    if not lang:
        return None
    base = re.split(r"[-_]", str(lang).strip().lower(), maxsplit=1)[0]
    return base if base in LANGS else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an HTTP ``Accept-Language`` header (q-weights honoured).

    >>> from_accept_language("fr-FR,zh-CN;q=0.8,en;q=0.5")
    'zh'
    """
    best, best_q = None, -1.0
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        lang = normalize(tag)
        if lang and q > best_q:  # earlier wins ties
            best, best_q = lang, q
    return best


def set_default(lang: str | None) -> str:
    """Set the app-wide default language (``AppContext.language``); returns the one in use.

    ``"en"`` / ``"zh"``: every page starts in it (until the visitor switches) and requests
    without a session choice get it. ``"auto"`` (or an unknown value): the browser's
    language — the page starts in the browser locale and the server reads
    ``Accept-Language`` — with English as the last fallback. One default per process
    (the last app built sets it).
    """
    global _default_lang, _default_auto
    fixed = normalize(lang)
    _default_lang, _default_auto = fixed or "en", fixed is None
    return _default_lang


def default_language() -> str:
    """The app-wide fallback language (``"en"`` unless :func:`set_default` said otherwise)."""
    return _default_lang


def set_session_language(session_hash: str | None, lang: str | None) -> str:
    """Remember ``lang`` for a browser session (the header switch calls this).

    Returns the normalized language (English for an unknown value). At most
    10 000 sessions are kept (oldest dropped).
    """
    lang = normalize(lang) or _default_lang
    if session_hash:
        with _SESSIONS_LOCK:
            _SESSIONS[session_hash] = lang
            _SESSIONS.move_to_end(session_hash)
            while len(_SESSIONS) > _MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
    return lang


def forget_session(session_hash: str | None) -> None:
    """Drop a session's language (on page unload)."""
    with _SESSIONS_LOCK:
        _SESSIONS.pop(session_hash or "", None)


def request_language(request: Any = None) -> str:
    """Language of a request: session choice → app default, or with the ``"auto"`` default
    session choice → ``Accept-Language`` → English.

    Args:
        request: a ``gr.Request``; None means the request gradio is serving in this
            thread (``gradio.context.LocalContext.request``), if any.
    """
    if request is None:
        ctx_mod = sys.modules.get("gradio.context")  # not loaded (CLI): no request is being served
        request = ctx_mod.LocalContext.request.get(None) if ctx_mod is not None else None
    if request is None:
        return _default_lang
    sh = getattr(request, "session_hash", None)
    if sh:
        with _SESSIONS_LOCK:
            lang = _SESSIONS.get(sh)
        if lang:
            return lang
    if not _default_auto:
        return _default_lang
    headers = getattr(request, "headers", None)
    header = None
    if headers is not None:
        try:
            header = headers.get("accept-language")
        except (AttributeError, TypeError):
            header = None
    return from_accept_language(header) or _default_lang


def current_language() -> str:
    """Language of the request being served now (see :func:`request_language`)."""
    return request_language(None)


def tr(key: str, lang: str | None = None, **fmt: Any) -> str:
    """The text of ``key`` in ``lang`` (default: :func:`current_language`), formatted.

    Unknown languages fall back to English; a ``fmt`` placeholder missing in one language
    is an error in the catalog (tests check both languages use the same placeholders).

    Raises:
        KeyError: ``key`` is not in :data:`CATALOG` (a programming error, caught by tests).
    """
    entry = CATALOG[key]
    lang = normalize(lang) if lang is not None else current_language()
    text = entry.get(lang or "en") or entry["en"]
    return text.format(**fmt) if fmt else text


def t(key: str):
    """Static UI text for ``key``: a ``gradio.i18n.I18nData`` the browser translates.

    Raises:
        KeyError: ``key`` is not in :data:`CATALOG` (fails when the app is built).
    """
    from gradio.i18n import I18nData

    if key not in CATALOG:
        raise KeyError(f"i18n key {key!r} is not in studio.ui.i18n.CATALOG")
    return I18nData(key)


def headers(prefix: str, names: Sequence[str], lang: str | None = None) -> list[str]:
    """Table column names in ``lang`` (gradio's frontend does not translate Dataframe headers).

    ``headers("runs.col", ["id", "loss/reward"])`` reads ``runs.col.id``, ``runs.col.loss_reward``.
    """
    return [tr(f"{prefix}.{re.sub(r'[^A-Za-z0-9_]', '_', n)}", lang) for n in names]


def curve_key(title: str) -> str:
    """Catalog key of a plot title: ``"Tokens / s"`` → ``"curve.tokens_s"``."""
    return "curve." + "_".join(re.findall(r"[a-z0-9]+", title.lower()))


def curve_label(title: str):
    """A plot title as static UI text (:func:`t`) when the catalog has it, else as given."""
    key = curve_key(title)
    return t(key) if key in CATALOG else title


def empty_curve_label(title: str):
    """The label of plot ``title`` while it has no point: "<title> · no data yet", as static
    UI text (:func:`t`) when the catalog has the title, else with the title as given."""
    key = "curve_empty." + curve_key(title)[len("curve."):]
    return t(key) if key in CATALOG else tr("chart.no_data", title=title)


def gradio_i18n():
    """The ``gr.I18n`` with the whole catalog (``en`` and ``zh``), built once."""
    global _I18N
    if _I18N is None:
        import gradio as gr

        _I18N = gr.I18n(**{lang: {k: v[lang] for k, v in CATALOG.items()} for lang in LANGS})
    return _I18N


def error_text(message: Any, lang: str | None = None) -> str:
    """An engine error sentence (kept in English) behind the translated prefix."""
    return tr("err.prefix", lang, msg=str(message))


def user_error(message: str, lang: str | None = None):
    """``gr.Error`` toast for an expected refusal (bad input, busy GPU, nothing to do): a
    translated title, and one INFO line in the server log instead of gradio's full
    traceback (``print_exception=False``). Bugs are logged with their traceback by the
    caller (``log.exception``) before they get here."""
    import gradio as gr

    log.info("refused: %s", message)
    return gr.Error(message, title=tr("err.title", lang), print_exception=False)


def gr_error(e: BaseException | str, lang: str | None = None):
    """``gr.Error`` for a StudioError (or a message) with a translated title and prefix."""
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    return user_error(error_text(e, lang), lang)


def unexpected_error(e: BaseException, lang: str | None = None):
    """``gr.Error`` for a bug (already logged with its traceback): one translated line
    naming the exception type."""
    return user_error(tr("err.unexpected", lang, kind=type(e).__name__), lang)


# --------------------------------------------------------------------------- header switch
_SET_LOCALE_JS = """
async function studioSetLocale(lang) {
  window.__studioLang = lang;
  const code = %(locales)s[lang] || "en";
  const names = performance.getEntriesByType("resource").map((e) => e.name)
    .concat(Array.from(document.querySelectorAll("script[src], link[rel=modulepreload]"),
                       (el) => el.src || el.href));
  const url = names.find((n) => /\\/core-[^/?#]*\\.js(\\?|$)/.test(n));
  if (!url) { console.warn("studio: gradio core module not found; language not switched"); return; }
  const core = await import(url);
  if (typeof core.changeLocale === "function") core.changeLocale(code);
  document.documentElement.lang = code;
}
function studioShownLang() {
  const el = document.querySelector("#%(code_id)s");
  const code = ((el && (el.innerText || el.textContent)) || "").trim();
  return %(langs)s.includes(code) ? code : null;
}
"""


def _js(body: str) -> str:
    import json

    return "async (lang) => {\n" + _SET_LOCALE_JS % {
        "locales": json.dumps(FRONTEND_LOCALE), "langs": json.dumps(list(LANGS)), "code_id": CODE_ID,
    } + body + "\n}"


def switch_js() -> str:
    """JS of the switch's ``input`` event: save the choice, switch the frontend locale."""
    return _js(f"""
  try {{ localStorage.setItem({STORAGE_KEY!r}, lang); }} catch (e) {{}}
  await studioSetLocale(lang);
  return lang;""")


def load_js(default: str) -> str:
    """JS of the page-load event: saved choice, else ``default`` (``auto``: the browser's).

    It also watches the hidden language-code text (:data:`CODE_ID`): when gradio's own
    *Settings → Language* chooser changes the locale, that text changes and the hidden
    sync button (:data:`SYNC_ID`) tells the server and the header switch.
    """
    import json

    return _js(f"""
  let want = null;
  try {{ want = localStorage.getItem({STORAGE_KEY!r}); }} catch (e) {{}}
  if (!{json.dumps(list(LANGS))}.includes(want)) want = {json.dumps(default)};
  if (want === "auto") want = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  await studioSetLocale(want);
  const codeEl = document.querySelector("#{CODE_ID}");
  if (codeEl && !window.__studioLangObserver) {{
    window.__studioLangObserver = new MutationObserver(() => {{
      const shown = studioShownLang();
      if (shown && shown !== window.__studioLang) {{
        window.__studioLang = shown;
        const btn = document.querySelector("#{SYNC_ID}");
        if (btn) btn.click();
      }}
    }});
    window.__studioLangObserver.observe(codeEl, {{subtree: true, childList: true, characterData: true}});
  }}
  return want;""")


def sync_js() -> str:
    """JS of the hidden sync button: the language the page shows now (saved as the choice)."""
    return _js(f"""
  const shown = studioShownLang() || lang;
  window.__studioLang = shown;
  try {{ localStorage.setItem({STORAGE_KEY!r}, shown); }} catch (e) {{}}
  return shown;""")


@dataclass
class LanguageSwitch:
    """The header switch: the dropdown plus two hidden helpers (see :func:`load_js`)."""

    dropdown: Any
    code: Any
    sync: Any


def language_switch(default: str = "en") -> LanguageSwitch:
    """Add the header language dropdown (English / 简体中文); wire it with :func:`connect_switch`.

    Also adds, visually hidden, a Markdown holding the catalog's language code (the
    browser shows ``en`` or ``zh`` in the current locale) and a sync button.

    Returns:
        :class:`LanguageSwitch` (the dropdown's ``elem_id`` is :data:`SWITCH_ID`).
    """
    import gradio as gr

    start = normalize(default) or "en"
    dd = gr.Dropdown([(LANG_NAMES[x], x) for x in LANGS], value=start, label=t("app.lang_label"),
                     show_label=False, container=False, interactive=True, elem_id=SWITCH_ID, scale=0,
                     min_width=130)
    code = gr.Markdown(t("app.lang_code"), elem_id=CODE_ID, visible="hidden")
    sync = gr.Button(t("app.lang_label"), elem_id=SYNC_ID, visible="hidden")
    return LanguageSwitch(dd, code, sync)


def connect_switch(switch: LanguageSwitch, default: str = "en", relabel: Sequence[tuple[Any, str]] = (),
                   retranslate: Sequence[tuple[Any, list, list]] = ()) -> None:
    """Events of the header switch; call once the whole page (all tabs) is built.

    On page load the saved choice (``localStorage``), else ``default`` (``"auto"``: the
    browser's language) is applied; choosing a language switches every static label at
    once, keeps all component values, and makes this session's run-time messages use it.
    A change made in gradio's footer *Settings → Language* is picked up the same way.

    Args:
        switch: what :func:`language_switch` returned.
        default: ``ctx.language``.
        relabel: ``(gr.Tab, key)`` pairs. The frontend computes the tab bar once, so a tab
            not yet opened keeps its old label after a locale change unless its label is
            sent again; these updates do that.
        retranslate: ``(fn, inputs, outputs)`` triples run after a switch, in the new
            language: each redraws run-time text already on screen (chat titles, stats
            lines) that the browser cannot translate itself.
    """
    import gradio as gr
    from gradio.context import Context

    tabs = [c for c, _ in relabel]
    dd = switch.dropdown

    def labels():
        return [gr.update(label=t(key)) for _, key in relabel]

    def remember(lang, request: gr.Request):
        return [set_session_language(getattr(request, "session_hash", None), lang), *labels()]

    def on_input(lang, request: gr.Request):
        set_session_language(getattr(request, "session_hash", None), lang)
        return labels() if tabs else None

    switched = dd.input(on_input, [dd], tabs or None, js=switch_js(), queue=False, show_progress="hidden",
                        api_visibility="undocumented")
    synced = switch.sync.click(remember, [dd], [dd, *tabs], js=sync_js(), queue=False, show_progress="hidden",
                               api_visibility="undocumented")
    for fn, ins, outs in retranslate:
        for ev in (switched, synced):
            ev.then(fn, ins, outs, queue=False, show_progress="hidden", api_visibility="undocumented")
    root = Context.root_block
    if root is not None:
        root.load(remember, [dd], [dd, *tabs], js=load_js(str(default or "en")), queue=False,
                  show_progress="hidden", api_visibility="undocumented")
