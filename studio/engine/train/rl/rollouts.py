"""Rollouts and their scores: generation with a thinking budget and forced answering, the reward
scorer, and the lazy curriculum sampler TRL's dataloader draws from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from studio.engine.infer.family import THINK_CLOSE
from studio.engine.rewards import RewardConfig
from studio.engine.train.rl.prompts import RLPrompt, collate, media_groups


# --------------------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """One sampled completion.

    Attributes:
        ids: completion token ids (generated + injected), ending at the first EOS if any.
        loss_mask: 1 for generated tokens, 0 for injected ``</think><answer>`` tokens.
        forced: the thinking budget ran out and the answer was forced.
        truncated: no EOS within the budgets.
        text: decoded with special tokens kept.
    """

    ids: list[int]
    loss_mask: list[int]
    forced: bool = False
    truncated: bool = False
    text: str = ""


class RolloutGenerator:
    """Sample ``G`` completions per prompt with a thinking budget and forced answering.

    Phase 1 samples up to ``thinking_budget`` tokens. Rows that did not stop: if
    ``</think>`` is missing, ``</think><answer>`` is injected (``forced``); either way
    they continue for up to ``answer_budget`` tokens (phase 2). Rows still open after
    that are ``truncated``. The batch is repeated by hand (FACTS.md: ``generate`` with
    ``num_return_sequences > 1`` crashes on video prompts).
    """

    def __init__(self, processor, *, thinking_budget: int, answer_budget: int, temperature: float = 1.0,
                 top_p: float = 1.0, eos_ids: Sequence[int] | None = None, max_batch: int = 64):
        tok = processor.tokenizer
        self.processor, self.tok = processor, tok
        self.T, self.A = thinking_budget, answer_budget
        self.temperature, self.top_p = temperature, top_p
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        from studio.engine.infer import family

        fam = family.of(processor)
        # The family's answer opener: GLM-4.1V </think><answer>, GLM-4.6V </think> + newline.
        self.force_ids = tok.encode(fam.force_text, add_special_tokens=False)
        self.think_close = tok.convert_tokens_to_ids(THINK_CLOSE)
        stop = list(eos_ids or [])
        ans_close = tok.convert_tokens_to_ids(fam.answer_close) if fam.answer_close else None
        if ans_close is not None and ans_close != tok.unk_token_id and ans_close not in stop:
            stop.append(ans_close)  # GLM-4.1V's generation config stops on </answer> too (FACTS.md)
        self.eos_ids = stop
        self.max_batch = max_batch
        # A completion must never contain media placeholders: the log-prob forward would
        # count them as image tokens without features (random/tiny models do emit them).
        media = ["<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>",
                 "<|begin_of_video|>", "<|end_of_video|>"]
        self.suppress = [i for i in tok.convert_tokens_to_ids(media) if i is not None and i != tok.unk_token_id]

    def _gen_config(self, max_new: int, greedy: bool):
        from transformers import GenerationConfig

        if greedy:
            # Neutral values, never None: generate() fills a passed config's None fields from
            # the checkpoint's generation_config (GLM-4.6V-Flash: temperature 0.8, top_p 0.6,
            # top_k 2), and those sampling flags on a greedy config print transformers'
            # "generation flags are not valid" warning. 1.0 / 1.0 / 50 are transformers' own
            # defaults, which its check treats as unset.
            return GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=self.eos_ids,
                                    pad_token_id=self.pad_id, top_k=50, top_p=1.0, temperature=1.0,
                                    suppress_tokens=self.suppress)
        return GenerationConfig(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0,
                                max_new_tokens=max_new, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                                suppress_tokens=self.suppress)

    #: Set by the trainer when ``use_vllm``: a callable ``(prompt_ids, images, max_new) -> completions``.
    vllm_generate: Callable | None = None

    def _generate(self, model, encs, suffixes, max_new: int, greedy: bool) -> list[list[int]]:
        import torch

        if self.vllm_generate is not None and not greedy:
            ids = [e["input_ids"][0].tolist() + (list(suffixes[k]) if suffixes is not None else [])
                   for k, e in enumerate(encs)]
            images = [e.get("_images") for e in encs]
            raw = self.vllm_generate(ids, images if any(images) else None, max_new)
            outs = []
            for row in raw:
                cut = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
                outs.append(list(row) if cut is None else list(row[:cut + 1]))
            return outs

        device = next(model.parameters()).device
        outs: list[list[int] | None] = [None] * len(encs)
        for rows in media_groups(encs):  # Glm4v cannot mix images and videos in one batch
            for s in range(0, len(rows), self.max_batch):
                part = rows[s:s + self.max_batch]
                suf = [suffixes[k] for k in part] if suffixes is not None else None
                batch = {k: v.to(device) for k, v in collate([encs[k] for k in part], self.pad_id, suf).items()}
                with torch.no_grad():
                    seq = model.generate(**batch, generation_config=self._gen_config(max_new, greedy))
                new = seq[:, batch["input_ids"].shape[1]:].tolist()
                for k, row in zip(part, new):
                    cut = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
                    outs[k] = row if cut is None else row[:cut + 1]
        return outs  # type: ignore[return-value]

    def __call__(self, model, encs: Sequence[dict], num_generations: int = 1, greedy: bool = False) -> list[Rollout]:
        """Return ``len(encs) × num_generations`` rollouts, grouped by prompt (prompt-major)."""
        rows = [e for e in encs for _ in range(num_generations)]
        first = self._generate(model, rows, None, self.T, greedy)
        rolls = [Rollout(ids=list(ids), loss_mask=[1] * len(ids)) for ids in first]
        todo = []
        for k, r in enumerate(rolls):
            if r.ids and r.ids[-1] in self.eos_ids:
                continue
            if self.think_close not in r.ids:
                r.ids += self.force_ids
                r.loss_mask += [0] * len(self.force_ids)
                r.forced = True
            todo.append(k)
        if todo:
            cont = self._generate(model, [rows[k] for k in todo], [rolls[k].ids for k in todo], self.A, greedy)
            for k, ids in zip(todo, cont):
                rolls[k].ids += ids
                rolls[k].loss_mask += [1] * len(ids)
        for r in rolls:
            r.truncated = not (r.ids and r.ids[-1] in self.eos_ids)
            r.text = self.tok.decode(r.ids, skip_special_tokens=False)
        return rolls


# --------------------------------------------------------------------------- scoring


class Scorer:
    """Rewards through the registry, on text decoded with special tokens kept.

    The reward of a completion is the sum of ``cfg.functions`` (TRL's equal-weight
    sum); ``__call__(texts, prompts)`` returns (rewards, format_ok) lists.

    Args:
        cfg: the run's :class:`~studio.engine.rewards.RewardConfig`.
        fn: a registry-signature function used instead of ``cfg.functions`` (tests).
    """

    def __init__(self, cfg: RewardConfig, fn: Callable | None = None, family=None):
        from studio.engine.infer import family as family_mod
        from studio.engine import rewards

        # Completions are rewritten into GLM-4.1V's format before scoring (Family.as_reference),
        # so the reward code keeps one format and the loaded family decides what is correct.
        self.family = family or family_mod.DEFAULT
        self.cfg = cfg
        self.fns = [fn] if fn is not None else rewards.build_reward_funcs(cfg)
        self.name = "+".join(getattr(f, "__name__", "reward") for f in self.fns)
        self._format = rewards.get_reward("format", **cfg.settings())

    def fn(self, texts: list[str], **cols) -> list[float]:
        """Summed reward per completion (registry signature)."""
        texts = [self.family.as_reference(t) for t in texts]
        per = [[float(x) for x in f(list(texts), **cols)] for f in self.fns]
        return [sum(v) for v in zip(*per)]

    def __call__(self, texts: Sequence[str], prompts: Sequence[RLPrompt]) -> tuple[list[float], list[bool]]:
        cols = _columns(prompts)
        rewards = self.fn(list(texts), **cols)
        fmt = [float(x) > 0 for x in self._format([self.family.as_reference(t) for t in texts], **cols)]
        return rewards, fmt


def _columns(prompts: Sequence[RLPrompt]) -> dict[str, list]:
    """Every dataset column, one value per completion (TRL's reward-function convention)."""
    keys: list[str] = []
    for p in prompts:
        keys += [k for k in p.row if k not in keys]
    cols = {k: [p.row.get(k) for p in prompts] for k in keys if k not in ("prompt", "completion")}
    cols["answer"] = [p.answer for p in prompts]
    cols["task_type"] = [p.row.get("task_type") or None for p in prompts]
    return cols


def trl_reward(scorer: Scorer, tokenizer) -> Callable:
    """A TRL-signature reward function that re-decodes ``completion_ids`` keeping special tokens.

    TRL decodes completions with ``skip_special_tokens=True``, which can drop the tags;
    this wrapper ignores ``completions`` and decodes ``completion_ids`` itself.
    """

    def reward(prompts, completions, completion_ids, **kwargs):
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=False)
        cols = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(texts)}
        return [float(x) for x in scorer.fn(texts, **cols)]

    reward.__name__ = scorer.name
    return reward


# --------------------------------------------------------------------------- sampler


class PromptDrawer:
    """Lazy prompt choice from the curriculum, tracking chosen-but-unscored prompts.

    ``draw(B)`` asks :meth:`CurriculumState.draw` for the next rollout pool
    (``draw_size(B)`` prompts in ``rlcs`` mode, ``B`` in ``uniform``), never one that is
    still pending: the dataloader prefetches the next generation batch before the
    current one is scored. The first ``B`` go to the dataloader; the rest (the
    expansion) wait in a FIFO until the trainer asks for them with :meth:`extras_for`.
    :meth:`settle` releases prompts once scored.
    """

    def __init__(self, state, n_prompts: int):
        self.state = state
        self.n = n_prompts
        self.pending: list[int] = []
        self._extras: list[tuple[list[int], list[int]]] = []

    def draw(self, n: int) -> list[int]:
        """The ``n`` dataloader prompts of the next block (its extras are queued)."""
        pool = list(self.state.draw(n, pending=self.pending))
        if len(pool) < n:  # tiny dataset: everything else is pending; repeat pending prompts
            pool += list(self.state.draw(n - len(pool), pending=pool))[: n - len(pool)]
        base, extra = pool[:n], pool[n:]
        self.pending += pool
        self._extras.append((base, extra))
        return base

    def extras_for(self, base: Sequence[int]) -> list[int]:
        """The expansion prompts drawn together with ``base`` (removed from the queue)."""
        for k, (b, extra) in enumerate(self._extras):
            if list(b) == list(base):
                del self._extras[k]
                return extra
        return []

    def pool_for(self, local: Sequence[int], rank: int = 0, world: int = 1) -> tuple[list[int], list[int]]:
        """``(base, extras)`` of the queued draw whose base holds ``local`` as its ``rank``-th
        of ``world`` equal slices (accelerate hands each process its slice of the generation
        batch); removed from the queue. One process: ``extras_for`` of ``local``.

        Raises:
            StudioError: several processes and no queued draw matches (their curricula would
                part ways; never expected).
        """
        if world <= 1:
            return list(local), self.extras_for(local)
        n = len(local)
        for k, (b, extra) in enumerate(self._extras):
            if len(b) == n * world and list(b[rank * n:(rank + 1) * n]) == list(local):
                del self._extras[k]
                return list(b), extra
        from studio.errors import StudioError

        raise StudioError(f"Process {rank}'s prompts {list(local)} belong to no drawn generation batch; the "
                          f"processes' curricula have parted. Start the run again (it resumes from its checkpoint).")

    def settle(self, ids: Sequence[int]) -> None:
        """Mark prompts as scored (removes one pending entry per id)."""
        for i in ids:
            if i in self.pending:
                self.pending.remove(i)

    def reset(self) -> None:
        """Forget pending prompts (a new dataloader iterator starts from scratch)."""
        self.pending.clear()
        self._extras.clear()


class CurriculumSampler:
    """``torch.utils.data.Sampler`` with TRL ``RepeatSampler``'s structure, drawn lazily.

    Yields, per generation batch, ``B`` prompt indices each ``mini_repeat_count`` (G)
    times in a row, and repeats that block ``repeat_count`` (steps_per_generation ×
    num_iterations) times — exactly ``RepeatSampler``'s order — but the ``B`` indices
    come from ``draw(B)`` at the moment the iterator reaches the block.

    Args:
        draw: callable ``n -> list[int]`` (e.g. :meth:`PromptDrawer.draw`).
        batch_size: B, distinct prompts per block.
        mini_repeat_count: G.
        repeat_count: steps_per_generation × num_iterations.
        num_batches: blocks per epoch (``__len__`` = num_batches·B·G·repeat_count).
    """

    def __init__(self, draw: Callable[[int], list[int]], batch_size: int, mini_repeat_count: int,
                 repeat_count: int, num_batches: int):
        self.draw = draw
        self.batch_size, self.mini_repeat_count = batch_size, mini_repeat_count
        self.repeat_count, self.num_batches = repeat_count, num_batches

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_batches):
            chunk = self.draw(self.batch_size)
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.num_batches * self.batch_size * self.mini_repeat_count * self.repeat_count
