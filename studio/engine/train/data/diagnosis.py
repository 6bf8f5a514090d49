"""The data doctor: one report of every problem with row numbers and fixes, token budgets, auto-fixes.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from studio.engine.infer.reasoning import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from studio.engine.train.data.checks import (check_language, check_repetition, check_tags, check_tags_no_answer,
                                             media_mix_problem, plural)
from studio.engine.train.data.collator import training_messages
from studio.engine.train.data.formats import FIX_FLAGS, FIXES, Problem, Row, RowList, train_template
from studio.engine.train.data.loaders import load_image, load_rows, load_video
from studio.errors import DataError, MediaError


_CODE_SPAN = re.compile(r"(`[^`]*`)")
# a whitespace-delimited word holding a tag: <image>, </answer>, <think>reasoning</think>, <|user|>
_TAGGED_WORD = re.compile(r"[^\s`]*<[^<>\s]+>[^\s`]*")


def md_literal(text: Any) -> str:
    """``text`` for Markdown with every word holding an angle-bracket tag in a code span.

    A Markdown renderer (gradio's, GitHub's) takes ``<image>`` or ``</answer>`` for HTML and
    drops it, so "placeholders vs <image>" read "placeholders vs". A code span shows the tag
    as written and stays readable as plain text in a terminal; leading ``(`` and trailing
    punctuation stay outside the span, existing code spans are left as they are.

    >>> md_literal("2 <image> placeholders; write <think>x</think> (or <answer>).")
    '2 `<image>` placeholders; write `<think>x</think>` (or `<answer>`).'
    """
    def wrap(m: re.Match) -> str:
        word = m.group(0)
        lead = len(word) - len(word.lstrip("("))
        core = word[lead:].rstrip(").,;:!?")
        return f"{word[:lead]}`{core}`{word[lead + len(core):]}"

    parts = _CODE_SPAN.split(str(text))
    return "".join(p if i % 2 else _TAGGED_WORD.sub(wrap, p) for i, p in enumerate(parts))


@dataclass
class Report:
    """The doctor's result: problems and summary counts.

    Attributes:
        problems: every finding, in row order.
        rows: rows checked; visual_tokens: per-row visual token counts;
        total_tokens: per-row token counts after template and media expansion;
        plan: per-row action for ``max_length`` (``"ok"``, ``"resize"``, ``"skip"``)
            and the image scale chosen for resizing.
        skipped: load-time skips (Compare ties) by reason.
        notes: how the data was read (format, why SFT, system prompts, media placed by
            rule) and the loss coverage sentence (:mod:`.coverage`).
        coverage: ``{"policy", "answers", "trained", "untrained": [[row, answer], …]}``.
    """

    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    visual_tokens: list[int] = field(default_factory=list)
    total_tokens: list[int] = field(default_factory=list)
    plan: list[dict] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    max_length: int | None = None
    notes: list[str] = field(default_factory=list)
    coverage: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        """Counts: rows, rows_with_errors, errors, warnings, by_check, resized, skipped_long."""
        by_check = Counter(p.check for p in self.problems)
        return {
            "rows": self.rows,
            "rows_with_errors": len({p.row for p in self.problems if p.severity == "error" and p.row}),
            "errors": sum(p.severity == "error" for p in self.problems),
            "warnings": sum(p.severity == "warning" for p in self.problems),
            "by_check": dict(by_check),
            "resized": sum(1 for p in self.plan if p.get("action") == "resize"),
            "skipped_long": sum(1 for p in self.plan if p.get("action") == "skip"),
            "skipped_on_load": dict(self.skipped),
            "max_visual_tokens": max(self.visual_tokens, default=0),
            "max_tokens": max(self.total_tokens, default=0),
        }

    def error_rows(self) -> set[int]:
        """1-based rows with at least one error."""
        return {p.row for p in self.problems if p.severity == "error" and p.row}

    def table(self) -> list[list]:
        """Rows for a UI table: [row, line, severity, check, message, fix, auto-fix].

        Rows are 1-based; a file-level problem (``row`` 0, e.g. an invalid JSON line that
        never became a row) shows an empty row cell and its line.
        """
        return [[p.row or "", p.line or "", p.severity, p.check, p.message, p.fix, p.auto_fixable]
                for p in self.problems]

    def headline(self) -> str:
        """``"2 rows · 1 error in 1 row · 0 warnings"`` — counts with the right plural."""
        s = self.summary
        head = f"{plural(s['rows'], 'row')} · {plural(s['errors'], 'error')}"
        if s["rows_with_errors"]:
            head += f" in {plural(s['rows_with_errors'], 'row')}"
        return head + f" · {plural(s['warnings'], 'warning')}"

    def to_dict(self) -> dict:
        return {"summary": self.summary, "problems": [asdict(p) for p in self.problems],
                "visual_tokens": self.visual_tokens, "total_tokens": self.total_tokens,
                "plan": self.plan, "max_length": self.max_length, "notes": self.notes,
                "coverage": self.coverage}

    def to_markdown(self, table: bool = True) -> str:
        """A readable report: summary line and a problem table.

        Args:
            table: False leaves the problem table out (the UI shows the problems once, in its
                grid, where ``<answer>`` and other tags read as written; a Markdown view would
                swallow them as HTML tags).
        """
        s = self.summary
        rows, rest = self.headline().split(" · ", 1)
        lines = [f"**{rows}** · {rest} · max {s['max_tokens']} tokens ({s['max_visual_tokens']} visual)"]
        if s["resized"] or s["skipped_long"]:
            lines.append(f"Longer than max_length={self.max_length}: {s['resized']} rows get smaller images, "
                         f"{s['skipped_long']} rows are skipped.")
        if s["skipped_on_load"]:
            lines.append("Skipped while loading: " + ", ".join(f"{n} {k}" for k, n in s["skipped_on_load"].items()))
        lines += [md_literal(n) for n in self.notes]
        fixes = Counter(p.auto_fixable for p in self.problems if p.auto_fixable)
        if fixes:
            lines.append("Auto-fixes: " + "; ".join(f"{FIX_FLAGS[k]} fixes {plural(n, 'turn')} ({k})"
                                                    for k, n in fixes.items() if k in FIX_FLAGS) + ".")
        if not self.problems:
            lines.append("No problems found.")
            return "\n\n".join(lines)
        if not table:
            return "\n\n".join(lines)
        lines.append("| row | severity | check | problem | fix |\n|---|---|---|---|---|")
        for p in self.problems:
            esc = lambda t: md_literal(str(t).replace("\n", " ")).replace("|", "\\|")  # noqa: E731
            row = (f"{p.row}" + (f" (line {p.line})" if p.line else "")) if p.row else \
                (f"line {p.line}" if p.line else "file")
            lines[-1] += f"\n| {row} | {p.severity} | {p.check} | {esc(p.message)} | {esc(p.fix)} |"
        return "\n\n".join(lines)


def _image_tokens(processor, w: int, h: int) -> int:
    ip = processor.image_processor
    return ip.get_number_of_image_patches(h, w, {}) // (ip.merge_size ** 2)


def _video_tokens(processor, clip) -> int:
    """Tokens a ``<|video|>`` expands to (frame groups × (begin + tokens + end + timestamp))."""
    vp = processor.video_processor
    t, h, w = clip.frames.shape[0], clip.frames.shape[1], clip.frames.shape[2]
    t = t + (t % 2)
    patches = vp.get_num_of_video_patches(t, h, w, {})
    groups = t // vp.temporal_patch_size
    per_group = patches // groups // (vp.merge_size ** 2)
    fps = clip.metadata.get("fps") or 24
    idx = clip.metadata.get("frames_indices")
    idx = list(idx) if idx is not None else list(range(t))
    ts = [int(i / fps) for i in idx][::2][:groups]
    ts += [ts[-1] if ts else 0] * (groups - len(ts))
    tok = processor.tokenizer
    ts_tokens = sum(len(tok(str(s), add_special_tokens=False).input_ids) for s in ts)
    return groups * (per_group + 2) + ts_tokens - 1


def _row_lengths(row: Row, processor, sizes: list[tuple[int, int]], video_tokens: list[int],
                 policy: str, scale: float = 1.0) -> tuple[int, int, int]:
    """(total tokens, visual tokens, end index of the last visual span) for ``row``."""
    from studio.engine.infer import family

    fam = family.of(processor)
    text = processor.apply_chat_template(training_messages(row, policy, fam), chat_template=train_template(fam),
                                         tokenize=False)
    ids = processor.tokenizer(text, add_special_tokens=False).input_ids
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image|>")
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video|>")
    img_tok = [_image_tokens(processor, max(28, int(round(w * scale))) if scale < 1 else w,
                             max(28, int(round(h * scale))) if scale < 1 else h) for w, h in sizes]
    total, visual, last_end = 0, 0, 0
    it_i, it_v = iter(img_tok), iter(video_tokens)
    for tid in ids:
        if tid == image_id:
            n = next(it_i, 1)
        elif tid == video_id:
            n = next(it_v, 1) + 1
        else:
            total += 1
            continue
        total += n
        visual += n
        last_end = total
    return total, visual, last_end


def doctor(rows: list[Row], processor=None, max_length: int | None = 2048, *,
           policy: str = "last_thinking", oversize: str = "resize", decode: bool = True,
           fps: float = 2.0, max_frames: int = 32, load_problems: list[Problem] | None = None,
           skipped: dict | None = None, family=None, progress: Callable[[int], Any] | None = None) -> Report:
    """Check rows before training; return a :class:`Report` with a per-row length plan.

    Checks (each a ``Problem.check`` name):
        ``shape``: no assistant turn / last turn not assistant / empty assistant text;
        ``tags``: :func:`check_tags` on every assistant turn;
        ``placeholders``: image / video items vs the ``images`` / ``videos`` lists;
        ``media``: images and a video (or two videos) in one row (:func:`media_mix_problem`);
        ``files``: every media file exists and decodes (``media.load_image`` /
        ``load_video``; ``decode=False`` only checks existence);
        ``length``: visual tokens per row with the processor's smart_resize math (no
        model run) and whether the row fits ``max_length`` without cutting an image span.
        ``oversize="resize"`` plans a smaller image scale (warning), ``"skip"`` drops
        the row (warning); a row that fits no scale is skipped;
        ``language`` / ``repetition``: warnings from :func:`check_language` and
        :func:`check_repetition`.

    Args:
        rows: loaded rows; processor: the model's processor (None skips ``length``).
        load_problems / skipped: carried over from :func:`load_rows` (lenient).
        family: whose tags ``tags`` expects (:mod:`studio.engine.infer.family`); None = the
            processor's family, else GLM-4.1V's.
        progress: called with 1 after each row (e.g. :meth:`~studio.engine.train.phase.PhaseProgress.update`).

    Returns: the report; ``report.plan[i]`` is ``{"action": "ok"|"resize"|"skip"|"error",
        "scale": float, "tokens": int}`` for row i+1.
    """
    from studio.engine.infer import family as family_mod

    from studio.engine.train.data.coverage import loss_coverage, read_notes

    fam = family or (family_mod.of(processor) if processor is not None else family_mod.DEFAULT)
    rep = Report(rows=len(rows), max_length=max_length, skipped=dict(skipped or {}))
    rep.problems.extend(load_problems or [])
    if isinstance(rows, RowList) and rows:
        rep.notes = read_notes(rows, kind=rows.kind, entry=rows.entry)
    if rows and any(m["role"] == "assistant" for r in rows for m in r.messages):
        cov = loss_coverage(rows, policy, fam)
        rep.coverage = {"policy": cov.policy, "answers": cov.answers, "trained": cov.trained,
                        "untrained": [list(x) for x in cov.untrained]}
        rep.notes.append(cov.line())
    for n, row in enumerate(rows, 1):
        def add(sev, check, msg, fix="", af="", _n=n, _row=row):
            rep.problems.append(Problem(_n, sev, check, msg, fix, af, _row.meta.get("line")))

        plan = {"action": "ok", "scale": 1.0, "tokens": 0}
        has_answer = _check_turns(row, fam, add)
        media_ok, sizes, vtok = _check_media(row, processor, add, decode=decode, fps=fps, max_frames=max_frames)
        if processor is not None and media_ok and has_answer:
            total, visual = _plan_length(row, processor, sizes, vtok, plan, add, policy=policy,
                                         max_length=max_length, oversize=oversize)
            rep.visual_tokens.append(visual)
            rep.total_tokens.append(total)
        else:
            rep.visual_tokens.append(0)
            rep.total_tokens.append(0)
        rep.plan.append(plan)
        if progress is not None:
            progress(1)
    for n in rep.error_rows():
        if 0 < n <= len(rep.plan):
            rep.plan[n - 1]["action"] = "error"
    rep.problems.sort(key=lambda p: (p.row, 0 if p.severity == "error" else 1))
    return rep


def _check_turns(row: Row, fam, add) -> bool:
    """The ``shape``, ``tags``, ``language`` and ``repetition`` checks of one row; True when
    it has an assistant turn."""
    roles = [m["role"] for m in row.messages]
    if "assistant" not in roles:
        add("error", "shape", "no assistant turn: nothing to train", "add the target answer")
    elif roles[-1] != "assistant":
        add("warning", "shape", "the conversation ends with a user turn, which is not trained",
            "end with the assistant's answer")
    question = ""
    for m in row.messages:
        if m["role"] == "user":
            question = "".join(i.get("text", "") for i in m["content"])
            continue
        if m["role"] != "assistant":
            continue
        if not m["content"].strip():
            add("error", "shape", "empty assistant turn", "write the answer or drop the row")
            continue
        for sev, msg, fix, af in check_tags(m["content"], fam):
            add(sev, "tags", msg, fix, af)
        if msg := check_language(question, m["content"]):
            add("warning", "language", msg, "answer in the question's language")
        if msg := check_repetition(m["content"]):
            add("warning", "repetition", msg, "remove the repeated text")
    return "assistant" in roles


def _check_media(row: Row, processor, add, *, decode: bool, fps: float, max_frames: int):
    """The ``placeholders``, ``media`` and ``files`` checks of one row:
    ``(media_ok, image sizes, video token counts)``."""
    n_img = sum(i["type"] == "image" for m in row.messages if m["role"] == "user" for i in m["content"])
    n_vid = sum(i["type"] == "video" for m in row.messages if m["role"] == "user" for i in m["content"])
    media_ok = True
    if n_img != len(row.images):
        media_ok = False
        add("error", "placeholders", f"{n_img} <image> placeholders but {len(row.images)} images listed",
            "make the number of <image> tags equal to the images list")
    if n_vid != len(row.videos):
        media_ok = False
        add("error", "placeholders", f"{n_vid} <video> placeholders but {len(row.videos)} videos listed",
            "make the number of <video> tags equal to the videos list")
    if msg := media_mix_problem(max(len(row.images), n_img), max(len(row.videos), n_vid)):
        media_ok = False
        add("error", "media", msg, "split the row: one with the images, one with the video")
    sizes: list[tuple[int, int]] = []
    vtok: list[int] = []
    for path in row.images:
        if not Path(path).is_file():
            media_ok = False
            add("error", "files", f"image {Path(path).name} is missing", f"put the file at {path}")
            continue
        if decode:
            try:
                sizes.append(load_image(path).size)
            except MediaError as e:
                media_ok = False
                add("error", "files", f"image {Path(path).name} cannot be used: {e}",
                    "replace the file or drop the row")
        else:
            from PIL import Image

            with Image.open(path) as im:
                sizes.append(im.size)
    for path in row.videos:
        if not Path(path).is_file():
            media_ok = False
            add("error", "files", f"video {Path(path).name} is missing", f"put the file at {path}")
            continue
        try:
            clip = load_video(path, fps=fps, max_frames=max_frames)
            if processor is not None:
                vtok.append(_video_tokens(processor, clip))
        except MediaError as e:
            media_ok = False
            add("error", "files", f"video {Path(path).name} cannot be decoded: {e}",
                "convert it to MP4 (H.264) or drop the row")
    return media_ok, sizes, vtok


def _plan_length(row: Row, processor, sizes, vtok, plan: dict, add, *, policy: str, max_length: int | None,
                 oversize: str) -> tuple[int, int]:
    """The ``length`` check: tokens of the row and what to do when it exceeds ``max_length``
    (``plan`` updated: resize, skip or cut the answer's end); returns ``(total, visual)``."""
    total, visual, last_end = _row_lengths(row, processor, sizes, vtok, policy)
    plan["tokens"] = total
    if max_length and total > max_length:
        if last_end > max_length or visual and total - visual >= max_length:
            if oversize == "resize" and sizes and not row.videos:
                scale = _fit_scale(row, processor, sizes, vtok, policy, max_length)
                if scale:
                    plan.update(action="resize", scale=scale,
                                tokens=_row_lengths(row, processor, sizes, vtok, policy, scale)[0])
                    add("warning", "length",
                        f"{total} tokens ({visual} visual) exceed max_length={max_length} and would cut "
                        f"an image span; images are shrunk to {scale:.0%} of their side length",
                        "raise max_length, lower the image pixel budget, or skip the row")
                else:
                    plan["action"] = "skip"
                    add("warning", "length",
                        f"{total} tokens exceed max_length={max_length} even with the smallest images; "
                        f"the row is skipped", "raise max_length or shorten the text")
            else:
                plan["action"] = "skip"
                add("warning", "length",
                    f"{total} tokens ({visual} visual) exceed max_length={max_length} and would cut a "
                    f"visual span; the row is skipped", "raise max_length or use oversize=resize")
        else:
            add("warning", "length",
                f"{total} tokens exceed max_length={max_length}: the last {total - max_length} tokens "
                f"(end of the answer) are cut", "raise max_length or shorten the answer")
    return total, visual


def _fit_scale(row, processor, sizes, vtok, policy, max_length) -> float | None:
    """Largest image side scale in (0, 1] (3 % steps) at which the row fits, or None."""
    lo_total = _row_lengths(row, processor, sizes, vtok, policy, scale=1e-6)[0]
    if lo_total > max_length:
        return None
    lo, hi = 0.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        if _row_lengths(row, processor, sizes, vtok, policy, scale=max(mid, 1e-6))[0] <= max_length:
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-6)


def plan_rows(rows: list[Row], report: Report, *, skip_errors: bool = True) -> tuple[list[Row], dict]:
    """Apply the doctor's plan: drop error / skip rows, set ``image_scale`` on resized ones and
    ``meta["tokens"]`` (the planned token count) on every kept row.

    Returns: (rows to train, counts ``{"kept", "resized", "skipped_long", "skipped_errors"}``).

    Raises:
        DataError: no row left to train.
    """
    kept, counts = [], Counter()
    for row, plan in zip(rows, report.plan):
        action = plan.get("action", "ok")
        if action == "error" and skip_errors:
            counts["skipped_errors"] += 1
            continue
        if action == "skip":
            counts["skipped_long"] += 1
            continue
        r = copy.deepcopy(row)
        if plan.get("tokens"):
            r.meta["tokens"] = plan["tokens"]  # for length-grouped batches
        if action == "resize":
            r.meta["image_scale"] = plan["scale"]
            counts["resized"] += 1
        kept.append(r)
    counts["kept"] = len(kept)
    if not kept:
        raise DataError(
            f"No row can be trained: {plural(counts['skipped_errors'], 'row')} with errors, "
            f"{plural(counts['skipped_long'], 'row')} too long. Run `studio doctor` on the data and fix them."
        )
    return kept, dict(counts)


#: Doctor checks whose verdict needs neither the model nor its processor (``tags`` and
#: ``length`` depend on the model's family and processor: :func:`refuse_untrainable` runs
#: them when given the processor).
MODEL_FREE_CHECKS = frozenset({"shape", "placeholders", "media", "files"})


def refuse_untrainable(rows: list[Row], name: str, *, fps: float = 2.0, max_frames: int = 32,
                       processor=None, max_length: int | None = None, policy: str = "last_thinking",
                       oversize: str = "resize") -> None:
    """Refuse data whose every row training would skip, before a model loads or a run
    folder exists (training skips rows with errors and fails when none is left).

    Runs the checks row by row until one row passes, so good data costs one row's check
    (the full doctor takes about a minute on the 16,800-chat recipe). Without a
    ``processor`` only the model-free checks run (:data:`MODEL_FREE_CHECKS`); with the
    model's processor (no weights needed) the model-dependent ones too — ``tags`` in the
    model family's format and ``length`` against ``max_length`` (a row that fits at no image
    scale is skipped) — so data only the model refuses leaves no run folder either. Files
    are only checked to exist.

    Raises:
        DataError: every row has an error (or is too long); names the first, its problem
            and the fix.
    """
    first = None
    for n, row in enumerate(rows, 1):
        if processor is None:
            report = doctor([row], None, None, decode=False, fps=fps, max_frames=max_frames)
            errors = [p for p in report.problems if p.severity == "error" and p.check in MODEL_FREE_CHECKS]
        else:
            report = doctor([row], processor, max_length, policy=policy, oversize=oversize, decode=False,
                            fps=fps, max_frames=max_frames)
            errors = [p for p in report.problems if p.severity == "error"]
            if not errors and report.plan and report.plan[0].get("action") == "skip":
                errors = [p for p in report.problems if p.check == "length"] or errors
                if not errors:
                    errors = [Problem(1, "error", "length", f"longer than max_length={max_length} at every "
                                      "image scale", "raise max_length or shorten the row")]
        if not errors:
            return
        first = first or (n, errors[0])
    if first is not None:
        n, p = first
        raise DataError(f"No row of {name} can be trained: every row has an error, e.g. row {n}: {p.message}"
                        + (f" ({p.fix})" if p.fix else "") + ". Run `studio doctor` on the data for the full list.")


def auto_fix(rows: list[Row], choices: Iterable[str]) -> tuple[list[Row], int]:
    """Apply safe fixes to assistant turns; returns (new rows, number of turns changed).

    ``close_answer``: a turn that opens ``<answer>`` but never closes it gets ``</answer>``
    appended. ``add_empty_think``: ``<answer>…</answer>`` without thinking becomes
    ``<think>\\n</think><answer>…</answer>``; a turn with no tags becomes
    ``<think>\\n</think><answer>TEXT</answer>``. ``drop_answer_tags``: GLM-4.1V's answer
    tags are removed (for GLM-4.6V data). Other problems are left alone.

    Raises: DataError for an unknown choice.
    """
    choices = set(choices)
    bad = choices - set(FIXES)
    if bad:
        raise DataError(f"Unknown auto-fix {sorted(bad)[0]!r}; choose from {', '.join(FIXES)}.")
    out, changed = [], 0
    for row in rows:
        r = copy.deepcopy(row)
        for m in r.messages:
            if m["role"] != "assistant":
                continue
            before = m["content"]
            keys = {p[3] for p in check_tags(before)} | {p[3] for p in check_tags_no_answer(before)}
            text = before
            if "drop_answer_tags" in choices and "drop_answer_tags" in keys:
                text = text.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "")
            if "close_answer" in choices and "close_answer" in keys:
                text = text.rstrip() + ANSWER_CLOSE
            if "add_empty_think" in choices and "add_empty_think" in keys:
                if ANSWER_OPEN in text:
                    text = f"{THINK_OPEN}\n{THINK_CLOSE}" + text.lstrip()
                else:
                    text = f"{THINK_OPEN}\n{THINK_CLOSE}{ANSWER_OPEN}{text.strip()}{ANSWER_CLOSE}"
            if text != before:
                m["content"] = text
                changed += 1
        out.append(r)
    return out, changed


def diagnose(path: str | os.PathLike | None, processor=None, max_length: int | None = 2048, *,
             dataset_info: str | None = None, dataset: str | None = None, kind=None,
             **kw) -> tuple[RowList, Report]:
    """Load leniently and run :func:`doctor`; a file that cannot load at all (empty,
    unreadable) becomes a report with one file-level error instead of an exception.
    ``dataset_info`` / ``dataset`` / ``kind``: see :func:`load_rows`."""
    try:
        rows = load_rows(path, lenient=True, dataset_info=dataset_info, dataset=dataset, kind=kind)
    except DataError as e:
        rep = Report(rows=0, max_length=max_length)
        check = "empty" if "empty" in str(e) or "no rows" in str(e) else "json" if "JSON" in str(e) else "shape"
        rep.problems.append(Problem(0, "error", check, str(e), "fix the file and run the doctor again"))
        return RowList(source=str(path)), rep
    rep = doctor(rows, processor, max_length, load_problems=rows.problems, skipped=dict(rows.skipped), **kw)
    return rows, rep
