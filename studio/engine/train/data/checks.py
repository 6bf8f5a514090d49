"""The doctor's single-text checks: media mix, think/answer tags, language, repetition.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from studio.engine.infer.reasoning import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    BOX_CLOSE,
    BOX_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
)


# ------------------------------------------------------------------ doctor
def media_mix_problem(n_images: int, n_videos: int) -> str | None:
    """Why a sample's media cannot go to GLM-4.1V together, or None when they can.

    GLM-4.1V (transformers' ``Glm4vForConditionalGeneration``) holds images *or* one video
    per sample: the image token serves both images and video frames, so a sample with both
    fails in training with "Image features and image tokens do not match" (FACTS.md).

    >>> media_mix_problem(2, 0) is None, media_mix_problem(0, 1) is None
    (True, True)
    >>> media_mix_problem(1, 1)
    'holds 1 image and 1 video; GLM-4.1V takes images or one video per sample, not both'
    >>> media_mix_problem(0, 2)
    'holds 2 videos; GLM-4.1V takes images or one video per sample'
    """
    if n_images and n_videos:
        return (f"holds {plural(n_images, 'image')} and {plural(n_videos, 'video')}; GLM-4.1V takes "
                f"images or one video per sample, not both")
    if n_videos > 1:
        return f"holds {plural(n_videos, 'video')}; GLM-4.1V takes images or one video per sample"
    return None


def plural(n: int, word: str) -> str:
    """``plural(1, "error")`` → ``"1 error"``, ``plural(2, "error")`` → ``"2 errors"``.

    >>> plural(1, "row"), plural(0, "warning"), plural(3, "error")
    ('1 row', '0 warnings', '3 errors')
    """
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_TAG_RE = re.compile("|".join(re.escape(t) for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE,
                                                        BOX_OPEN, BOX_CLOSE)))


def check_tags(text: str, family=None) -> list[tuple[str, str, str, str]]:
    """Check one assistant turn's reasoning tags against the loaded family's format.

    Expected (GLM-4.1V, ``family`` None): ``<think>…</think><answer>…</answer>``
    (whitespace allowed between), each tag once, at most one
    ``<|begin_of_box|>…<|end_of_box|>`` inside the answer. The verdict for a turn with
    thinking is :func:`studio.engine.rewards.check_format`'s — the same judge as the RL
    reward and ``studio eval``; the checks before it only name auto-fixable shapes (missing
    ``</answer>``, answer without thinking) and text outside the tags (a warning: it is
    trained, and the reward would score such an output 0). For a family without answer
    tags (GLM-4.6V) see :func:`check_tags_no_answer`; each format flags the other's.

    Returns: list of (severity, message, fix, auto_fix_key); empty when fine.

    >>> check_tags("<think>a</think><answer>b</answer>")
    []
    >>> check_tags("<think>a</think><answer>b")[0][3]
    'close_answer'
    >>> check_tags("<think>a</think><answer>b<|user|>c</answer>")[0][1]
    'not the GLM format: control token <|user|> inside the completion'
    """
    if family is not None and not family.answer_tags:
        return check_tags_no_answer(text, family.label)
    tags = _TAG_RE.findall(text)
    counts = Counter(tags)
    out: list[tuple[str, str, str, str]] = []
    if not tags:
        return [("warning", "no <think>/<answer> tags: the model learns to answer without the format",
                 "wrap as <think>\\n</think><answer>…</answer> (auto-fix: --fix OUT --add-empty-think) or write the "
                 "reasoning", "add_empty_think")]
    dup = [t for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE) if counts[t] > 1]
    if dup:
        out.append(("error", f"tag {dup[0]} appears {counts[dup[0]]} times", "keep one think and one answer block", ""))
    if counts[BOX_OPEN] > 1 or counts[BOX_CLOSE] > 1:
        out.append(("error", f"{max(counts[BOX_OPEN], counts[BOX_CLOSE])} boxes; at most one is allowed",
                     "keep only the final result in <|begin_of_box|>…<|end_of_box|>", ""))
    if counts[BOX_OPEN] != counts[BOX_CLOSE]:
        out.append(("error", "unbalanced <|begin_of_box|> / <|end_of_box|>", "close or remove the box", ""))
    if out:
        return out
    order = [t for t in tags if t not in (BOX_OPEN, BOX_CLOSE)]
    has_think = THINK_OPEN in counts or THINK_CLOSE in counts
    if has_think and order[:2] != [THINK_OPEN, THINK_CLOSE]:
        what = "missing </think>" if THINK_OPEN in counts and THINK_CLOSE not in counts else (
            "missing <think>" if THINK_CLOSE in counts and THINK_OPEN not in counts else "<think> tags out of order")
        return [("error", what, "write <think>reasoning</think> before <answer>", "")]
    rest = order[2:] if has_think else order
    if not rest:
        return [("error", "no <answer> after the thinking (GLM-4.6V's format: this GLM-4.1V model expects "
                 "<answer> tags)", "add <answer>…</answer> after </think>", "")]
    if rest == [ANSWER_OPEN]:
        return [("error", "missing </answer>", "close the answer with </answer> (auto-fix: --fix OUT)", "close_answer")]
    if rest != [ANSWER_OPEN, ANSWER_CLOSE]:
        return [("error", "answer tags out of order", "write <answer>…</answer> once, after </think>", "")]
    if not text.rstrip().endswith(ANSWER_CLOSE):
        out.append(("warning", "text after </answer> is trained too (the RL reward scores this shape 0)",
                    "move it inside the answer or drop it", ""))
    i_open, i_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    if BOX_OPEN in text and not (i_open < text.find(BOX_OPEN) < text.find(BOX_CLOSE) < i_close):
        out.append(("error", "the box is outside the answer", "put <|begin_of_box|>…<|end_of_box|> inside <answer>", ""))
    if THINK_OPEN not in text:
        out.append(("warning", "answer without thinking: the model learns to skip <think>",
                    "add the reasoning, or convert to <think>\\n</think><answer>…</answer> (auto-fix: --fix OUT "
                    "--add-empty-think)",
                    "add_empty_think"))
    if THINK_OPEN in text and text[:text.find(THINK_OPEN)].strip():
        out.append(("warning", "text before <think> is trained (the RL reward scores this shape 0)",
                    "start the turn with <think>", ""))
    if THINK_OPEN in text and not any(sev == "error" for sev, *_ in out):
        # the one format judge (RL reward, studio eval): whatever it refuses is an error here too
        from studio.engine.rewards import check_format

        fc = check_format(text)
        if not fc.ok and "outside <think>/<answer>" not in fc.reason:
            out.append(("error", f"not the GLM format: {fc.reason}",
                        "write <think>…</think><answer>…</answer> with at most one box, inside the answer", ""))
    return out


def check_tags_no_answer(text: str, label: str = "GLM-4.6V") -> list[tuple[str, str, str, str]]:
    """:func:`check_tags` for the GLM-4.5V/4.6V format: ``<think>…</think>`` then the answer.

    ``<answer>`` / ``</answer>`` are GLM-4.1V's tags: flagged as errors (the model would
    learn tags it never writes). Box rules as for GLM-4.1V, the box after ``</think>``.

    >>> check_tags_no_answer("<think>a</think>\\nb")
    []
    >>> check_tags_no_answer("<think>a</think><answer>b</answer>")[0][1]
    "GLM-4.1V's <answer> tags: GLM-4.6V answers after </think> without them"
    """
    counts = Counter(_TAG_RE.findall(text))
    out: list[tuple[str, str, str, str]] = []
    if counts[ANSWER_OPEN] or counts[ANSWER_CLOSE]:
        out.append(("error", f"GLM-4.1V's <answer> tags: {label} answers after </think> without them",
                    "remove <answer> and </answer> (keep the text; auto-fix: --fix OUT)", "drop_answer_tags"))
    if counts[BOX_OPEN] > 1 or counts[BOX_CLOSE] > 1:
        out.append(("error", f"{max(counts[BOX_OPEN], counts[BOX_CLOSE])} boxes; at most one is allowed",
                    "keep only the final result in <|begin_of_box|>…<|end_of_box|>", ""))
    elif counts[BOX_OPEN] != counts[BOX_CLOSE]:
        out.append(("error", "unbalanced <|begin_of_box|> / <|end_of_box|>", "close or remove the box", ""))
    if counts[THINK_OPEN] > 1 or counts[THINK_CLOSE] > 1:
        return out + [("error", "more than one <think> block", "keep one <think>…</think> at the start", "")]
    if not counts[THINK_OPEN] and not counts[THINK_CLOSE]:
        return out + [("warning", "no <think> block: the model learns to answer without thinking",
                       "write <think>reasoning</think> before the answer (or <think></think> for thinking off)",
                       "")]
    if not counts[THINK_OPEN] or not counts[THINK_CLOSE] or text.find(THINK_OPEN) > text.find(THINK_CLOSE):
        return out + [("error", "missing or misordered <think> / </think>", "write <think>reasoning</think> "
                       "before the answer", "")]
    if text[:text.find(THINK_OPEN)].strip():
        out.append(("warning", "text before <think> is trained", "start the turn with <think>", ""))
    after = text[text.find(THINK_CLOSE) + len(THINK_CLOSE):]
    if not after.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "").strip():
        out.append(("error", "no answer after </think>", "write the answer after </think>", ""))
    if BOX_OPEN in text[:text.find(THINK_CLOSE)]:
        out.append(("error", "the box is inside the thinking", "put the box in the answer after </think>", ""))
    return out


_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _scripts(text: str) -> Counter:
    if text.isascii():  # most training text: one C-level pass instead of a Python loop per character
        n = len(_ASCII_LETTER.findall(text))
        return Counter({"latin": n}) if n else Counter()
    c: Counter = Counter()
    for ch in text:
        if ch.isalpha():
            if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
                c["cjk"] += 1
            elif "\u3040" <= ch <= "\u30ff":
                c["kana"] += 1
            elif "\uac00" <= ch <= "\ud7af":
                c["hangul"] += 1
            elif ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                c["latin"] += 1
            elif unicodedata.name(ch, "").startswith("CYRILLIC"):
                c["cyrillic"] += 1
            else:
                c["other"] += 1
    return c


def _main_script(c: Counter) -> str | None:
    return c.most_common(1)[0][0] if c else None


def check_language(question: str, answer: str) -> str | None:
    """Warn when an answer mixes scripts (≥ 20 % of letters each in two scripts; CJK
    characters weigh 3× since one carries a word) or answers in another script than the
    question. Returns the message or None."""
    body = _TAG_RE.sub(" ", answer)
    c = _scripts(body)
    weighted = Counter({k: v * (3 if k in ("cjk", "kana", "hangul") else 1) for k, v in c.items()})
    total = sum(weighted.values())
    if total >= 20:
        top = weighted.most_common(2)
        if len(top) == 2 and top[1][1] / total >= 0.2:
            return f"the answer mixes {top[0][0]} and {top[1][0]} script"
    qc = _scripts(question)
    q = _main_script(qc)
    a = _main_script(weighted)
    if q and a and q != a and sum(qc.values()) >= 6 and total >= 20:
        return f"the question is in {q} script but the answer in {a}"
    return None


def check_repetition(text: str) -> str | None:
    """Warn on degenerate repetition: a sentence repeated ≥ 3 times, or more than half
    of the word 4-grams being repeats (≥ 12 4-grams). Returns the message or None."""
    body = _TAG_RE.sub(" ", text)
    sentences = [s.strip().lower() for s in re.split(r"[.!?。！？\n]+", body) if len(s.strip()) >= 8]
    if sentences:
        s, n = Counter(sentences).most_common(1)[0]
        if n >= 3:
            return f"the sentence {s[:40]!r} repeats {n} times"
    words = re.findall(r"\w+", body.lower())
    if any("\u4e00" <= ch <= "\u9fff" for ch in body):
        words = [ch for ch in body if not ch.isspace()]
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    if len(grams) >= 12:
        dup = len(grams) - len(set(grams))
        if dup / len(grams) > 0.5:
            return f"{dup} of {len(grams)} word 4-grams are repeats"
    return None
