"""RL prompts: load and check the prompt file, split off the held-out prompts, encode prompts with their media.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from studio.engine.rewards import RewardConfig, row_task_type
from studio.engine.train.data import media_mix_problem
from studio.engine.train.rl.config import RLRunConfig, vllm_available
from studio.errors import ConfigError, DataError, InputError


# --------------------------------------------------------------------------- data


@dataclass
class RLPrompt:
    """One RL prompt.

    Attributes:
        idx: position in the loaded list (the id the curriculum and sampler use).
        text: the user text without media placeholders.
        images: absolute image paths (in order); videos: absolute video paths (0 or 1).
        answer: the reference answer (string; the verifier parses it).
        task_type: verifier kind passed to the reward (``exact``, ``numeric``, ``count`` …).
        difficulty: optional user label (1–5, 1 = easiest, or very_easy … very_hard; see
            :func:`studio.engine.train.curriculum.label_prior`); None if absent.
        row: the original row (every column reaches the reward function; media columns
            hold the resolved paths).
        line: 1-based line/row number in the source file (for messages).
        system: the row's system prompt (a system turn of a messages prompt, or a
            ``system`` column), None when it has none.
        content: the user turn's items in order (``{"type": "image"|"video"}``,
            ``{"type": "text", "text"}``), so ``<image>`` tags keep their place; None =
            media first, then ``text``.
    """

    idx: int
    text: str
    images: list[str]
    videos: list[str]
    answer: str
    task_type: str
    difficulty: Any
    row: dict
    line: int
    system: str | None = None
    content: list[dict] | None = None


class PromptFile(list):
    """:func:`load_prompts`'s result: the prompts (a list) plus how the file was read.

    Attributes:
        text_columns / answer_columns: column → rows whose prompt / reference came from it.
        dropped_turns: rows whose messages prompt had earlier turns that are not used.
        placed: rows whose untagged media were put before the text.
        media_written: embedded media files written to the cache by this load.
    """

    def __init__(self, prompts=()):
        super().__init__(prompts)
        self.text_columns: Counter = Counter()
        self.answer_columns: Counter = Counter()
        self.dropped_turns: list[int] = []
        self.media_written = 0


def load_prompts(path: str | Path | None, *, dataset_info: str | None = None,
                 dataset: str | None = None) -> "PromptFile":
    """Read RL prompts from a JSONL / JSON / CSV / Parquet file, a folder or a ``save_to_disk``
    folder (through :mod:`studio.engine.train.data.sources`, i.e. ``datasets``).

    Rows as the RL projects ship them (:mod:`studio.engine.train.data.readers.rl_rows`): the
    prompt in ``prompt`` (a string with ``<image>``/``<video>`` tags, or a messages list
    whose last user turn is taken), ``question`` or ``problem``, or ``messages``; media in
    ``images``/``image`` and ``videos``/``video`` — paths relative to the file (or absolute),
    ``{"bytes", "path"}`` cells (written once to a cache beside the data) or content items;
    the reference in ``answer``, ``solution``, ``ground_truth`` or
    ``reward_model.ground_truth`` (``<answer>…</answer>`` is fine: the verifiers read
    inside); optional ``task_type`` (default: from the reference) and ``difficulty``.
    Images *or* one video per row.

    Raises:
        DataError: missing file, bad JSON, empty file, audio in a row, rows without text
            or without a reference answer (row numbers listed), a missing media file,
            images and a video in one row.
    """
    from studio.engine.train.data import dataset_info as lf
    from studio.engine.train.data.media_refs import MediaCache
    from studio.engine.train.data.readers.common import Ctx
    from studio.engine.train.data.readers.rl_rows import read_rl
    from studio.engine.train.data.sources import open_sources

    p, entry = lf.resolve(path, dataset_info, dataset)
    if not p.exists() and not re.fullmatch(r"[\w.-]+/[\w.-]+", str(path or "")):
        raise DataError(
            f"Prompt file {str(p)!r} does not exist. Pick a JSONL file, e.g. sample_data/rl/prompts.jsonl, "
            f"or make one with `studio tasks --out DIR`."
        )
    out = PromptFile()
    no_answer, no_text, missing, mixed = [], [], [], []
    for src in open_sources(p):
        cache = MediaCache(src.base)
        for n, rec, line in src.rows():
            n_label = line or n
            where = f"{src.path.name} row {n}" + (f" (line {line})" if line else "")
            r = read_rl(rec, Ctx(where, src.base, cache, entry))
            if not r.text:
                no_text.append(n_label)
                continue
            if r.answer is None:
                no_answer.append(n_label)
                continue
            missing += [f"row {n_label}: {Path(m).name}" for m in r.images + r.videos if not Path(m).is_file()]
            if why := media_mix_problem(len(r.images), len(r.videos)):
                mixed.append(f"row {n_label} {why}")
                continue
            row = r.row
            if row.get("task_type"):
                # a word among the row's ``choices`` is scored by exact match (rewards.row_task_type)
                row = {**row, "task_type": row_task_type(row["task_type"], r.answer, row.get("choices"))}
            diff = row.get("difficulty")
            out.append(RLPrompt(
                idx=len(out), text=r.text, images=r.images, videos=r.videos, answer=str(r.answer).strip(),
                task_type=str(row.get("task_type") or ""), difficulty=None if diff in (None, "") else diff,
                row=row, line=n_label, system=r.system, content=r.content,
            ))
            out.text_columns[r.text_column] += 1
            out.answer_columns[r.answer_column] += 1
            if r.dropped_turns:
                out.dropped_turns.append(n_label)
        out.media_written += cache.written
    if (no_answer or no_text) and not out:
        from studio.engine.train.data.detect import detect_kind

        first = next((src.first() for src in open_sources(p) if len(src)), {})
        kind = detect_kind(first)
        if kind.kind == "sft":
            raise DataError(f"{p.name} holds SFT data ({kind.reason}), not RL prompts with reference answers; "
                            f"train on it with `studio sft --data {p}`.")
    if no_answer:
        raise DataError(
            f"{p}: no reference answer in {_rows(no_answer)}. RL needs a reference the verifier can check "
            f"(`answer`, `solution`, `ground_truth` or `reward_model.ground_truth`); add it or remove those rows."
        )
    if no_text:
        raise DataError(f"{p}: no prompt text in {_rows(no_text)}; add a `prompt` (or `question`/`problem`) column.")
    if mixed:
        raise DataError(f"{p}: {'; '.join(mixed[:3])}{' …' if len(mixed) > 3 else ''}. Split such rows into one "
                        f"with the images and one with the video.")
    if missing:
        raise DataError(f"{p}: media file(s) not found: {'; '.join(missing[:5])}"
                        f"{' …' if len(missing) > 5 else ''}. Relative paths are read against the prompt file's folder.")
    if not out:
        raise DataError(f"{p} has no prompt rows.")
    return out


def _rows(ns: Sequence[int]) -> str:
    """1-based row numbers for a message, the word agreeing with the count.

    >>> _rows([2]), _rows([1, 4]), _rows(list(range(1, 13)))
    ('row 2', 'rows 1, 4', 'rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more')
    """
    s = ", ".join(str(n) for n in ns[:10])
    return ("row " if len(ns) == 1 else "rows ") + s + (f" and {len(ns) - 10} more" if len(ns) > 10 else "")


def check_references(prompts: Sequence[RLPrompt], rewards_cfg: RewardConfig | None = None) -> None:
    """Doctor step: every reference answer must be parseable by its row's verifier.

    The verifier is the row's ``task_type`` (``rewards_cfg.default_task_type`` when a
    row has none; ``"auto"`` infers it from the reference), checked with
    :func:`studio.engine.rewards.check_reference`, which refuses references no answer
    could match and says what to change.

    Raises:
        DataError: listing the rows (file line numbers) and why each one fails.
    """
    from studio.engine import rewards

    cfg = rewards_cfg or RewardConfig()
    bad = []
    for pr in prompts:
        tt = pr.row.get("task_type") or cfg.default_task_type
        problem = rewards.check_reference(pr.answer, tt, row=pr.line)
        if problem:
            bad.append(problem)
    if bad:
        raise DataError(
            f"{len(bad)} reference answer(s) cannot be parsed by their verifier — "
            f"{'; '.join(bad[:5])}{' …' if len(bad) > 5 else ''}. Fix the answers or the rows' task_type."
        )


def split_eval(prompts: list[RLPrompt], fraction: float, max_eval: int, seed: int):
    """Hold out ``fraction`` (at most ``max_eval``) of prompts; returns (train, eval), re-indexed."""
    if fraction <= 0 or len(prompts) < 4:
        return prompts, []
    rng = random.Random(seed)
    order = list(range(len(prompts)))
    rng.shuffle(order)
    n_eval = min(max_eval, max(1, int(round(len(prompts) * fraction))))
    ev = sorted(order[:n_eval])
    tr = sorted(order[n_eval:])
    return ([dataclasses.replace(prompts[i], idx=k) for k, i in enumerate(tr)],
            [dataclasses.replace(prompts[i], idx=k) for k, i in enumerate(ev)])


def check_data(cfg: "RLRunConfig", *, references: bool = True) -> tuple[list[RLPrompt], list[RLPrompt]]:
    """Load and check a run's prompts without a model: what must hold before a run folder
    is made (the CLI and the RL tab call it first) and again when training starts.

    Args:
        cfg: the run config (``data``, ``eval_data``, split and batch settings).
        references: also check that every reference answer parses for its verifier.

    Returns: (training prompts, held-out prompts).

    Raises:
        DataError: see :func:`load_prompts` and :func:`check_references`.
        ConfigError: fewer training prompts than one step needs; ``use_vllm`` with videos
            or without vLLM/CUDA.
    """
    prompts = load_prompts(cfg.data, dataset_info=cfg.dataset_info or None, dataset=cfg.dataset or None)
    if cfg.eval_data:
        train, evals = prompts, load_prompts(cfg.eval_data)[: cfg.max_eval_prompts]
    else:
        train, evals = split_eval(prompts, cfg.eval_fraction, cfg.max_eval_prompts, cfg.seed)
    if references:
        check_references(train + evals, cfg.rewards)
    from studio.engine.train.distributed import world_size

    n_proc = world_size()  # a multi-process launch draws B prompts per process
    B = cfg.prompts_per_step * n_proc
    if len(train) < B:
        each = f" on each of {n_proc} processes" if n_proc > 1 else ""
        raise ConfigError(
            f"`per_device_train_batch_size` asks for {B} prompts per step{each and ' in all'} but the training split "
            f"has only {len(train)}; add prompts or lower per_device_train_batch_size to "
            f"{max(1, len(train) // n_proc) * cfg.num_generations}{each}."
        )
    if any(p.videos for p in train) and cfg.use_vllm:
        raise ConfigError("`use_vllm` supports image and text prompts only; this data has videos. Turn use_vllm off.")
    if cfg.use_vllm:
        ok, why = vllm_available()
        if not ok:
            raise ConfigError(f"`use_vllm` needs vLLM and a CUDA GPU: {why}. Turn use_vllm off to generate "
                              f"with transformers.")
    return train, evals


# --------------------------------------------------------------------------- media & batching


class PromptEncoder:
    """Render + process each prompt once (cached): tensors with batch dim 1.

    Keys: ``input_ids`` (1, L) int64, ``mm_token_type_ids`` (1, L), and when present
    ``pixel_values`` (N_patches, C·T·P·P) float32 + ``image_grid_thw`` (n_images, 3),
    ``pixel_values_videos`` + ``video_grid_thw`` (n_videos, 3).
    """

    def __init__(self, processor, fps: float = 2.0, max_frames: int = 16, cache_size: int = 4096):
        self.processor = processor
        self.fps, self.max_frames = fps, max_frames
        self.cache: dict[tuple, dict] = {}
        self.cache_size = cache_size

    def messages(self, p: RLPrompt) -> list[dict]:
        """Chat-template messages of one prompt: its system prompt if any, then the user turn —
        its items in the row's order (``p.content``), else media first, then the text."""
        if p.content is not None:
            content = [dict(i) for i in p.content]
        else:
            content = [{"type": "image"} for _ in p.images] + [{"type": "video"} for _ in p.videos]
            content.append({"type": "text", "text": p.text})
        system = [{"role": "system", "content": p.system}] if p.system else []
        return system + [{"role": "user", "content": content}]

    def __call__(self, p: RLPrompt, key: Any = None) -> dict:
        key = (key, p.idx, p.text)
        if key in self.cache:
            return self.cache[key]
        text = self.processor.apply_chat_template(self.messages(p), add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if p.images:
            kwargs["images"] = [_load_image(x) for x in p.images]
        if p.videos:
            clips = [_load_video(x, self.fps, self.max_frames) for x in p.videos]
            kwargs["videos"] = [c[0] for c in clips]
            kwargs["video_metadata"] = [c[1] for c in clips]
            kwargs["do_sample_frames"] = False
        enc = dict(self.processor(**kwargs))
        enc.pop("attention_mask", None)
        enc["_images"] = kwargs.get("images")  # PIL images, for vLLM generation
        if len(self.cache) >= self.cache_size:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = enc
        return enc


def _load_image(path: str):
    try:
        from studio.engine.infer import media

        return media.load_image(path)
    except ImportError:
        from PIL import Image

        with Image.open(path) as im:
            return im.convert("RGB")


def _load_video(path: str, fps: float, max_frames: int):
    """(frames uint8 (T,H,W,3), metadata dict) through studio.engine.infer.media (PyAV)."""
    try:
        from studio.engine.infer import media
    except ImportError as e:  # pragma: no cover - media.py ships with the product
        raise InputError("Video prompts need studio.engine.infer.media (PyAV decoding).") from e
    clip = media.load_video(path, fps=fps, max_frames=max_frames)
    return clip.frames, clip.metadata


def collate(encs: Sequence[dict], pad_id: int, suffixes: Sequence[Sequence[int]] | None = None) -> dict:
    """Left-pad a list of per-prompt encodings into one generation batch.

    Args:
        encs: outputs of :class:`PromptEncoder` (batch dim 1 each); may repeat.
        pad_id: pad token id (GLM pads on the left).
        suffixes: optional token ids appended to each prompt (phase-2 continuation);
            ``mm_token_type_ids`` are extended with 0 for them.

    Returns:
        ``input_ids``/``attention_mask``/``mm_token_type_ids`` (N, Lmax) int64 and the
        concatenated media tensors in row order.
    """
    import torch

    ids, mm = [], []
    for k, e in enumerate(encs):
        suf = list(suffixes[k]) if suffixes is not None else []
        ids.append(e["input_ids"][0].tolist() + suf)
        mm.append(e["mm_token_type_ids"][0].tolist() + [0] * len(suf))
    L = max(len(x) for x in ids)
    out = {
        "input_ids": torch.tensor([[pad_id] * (L - len(x)) + x for x in ids], dtype=torch.long),
        "attention_mask": torch.tensor([[0] * (L - len(x)) + [1] * len(x) for x in ids], dtype=torch.long),
        "mm_token_type_ids": torch.tensor([[0] * (L - len(x)) + x for x in mm], dtype=torch.long),
    }
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        parts = [e[key] for e in encs if e.get(key) is not None]
        if parts:
            out[key] = torch.cat(parts, 0)
    return out


def media_groups(encs: Sequence[dict]) -> list[list[int]]:
    """Row indices split into (image/text rows, video rows), empty groups dropped.

    transformers' Glm4v marks video frames with the *image* token, so a batch holding both
    images and videos fails ("Image features and image tokens do not match"); generation
    and the log-prob forward therefore run each group separately.
    """
    img = [k for k, e in enumerate(encs) if e.get("pixel_values_videos") is None]
    vid = [k for k, e in enumerate(encs) if e.get("pixel_values_videos") is not None]
    return [g for g in (img, vid) if g]
