"""``StudioGRPOTrainer``: TRL's ``GRPOTrainer`` with RLCS sampling, expansion, forced answering and video in the loss.

The overrides are grouped by idea into plain mixins (no torch or TRL import at module
level, so the app's pages stay light): :class:`_CurriculumSampling`, :class:`_PoolScoring`,
:class:`_MediaForward`, :class:`_CheckpointExtras`; :func:`_make_trainer_class` puts them in
front of TRL's ``GRPOTrainer`` once TRL is imported.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from studio.engine.train.rl.config import CURRICULUM_FILE, RL_STATE_FILE, STOP_REASON_FILE
from studio.engine.train.rl.rollouts import CurriculumSampler

if TYPE_CHECKING:
    from studio.engine.train.rl.run import _RunContext


class _SkipAndStop:
    """Drop gradients of skipped (no-variance) steps; stop when prompts are too easy."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kw):
        if self.trainer._skip_step:
            for p in self.trainer.model.parameters():
                p.grad = None

    def on_train_begin(self, args, state, control, **kw):
        if state.global_step > 0:  # resumed: steps past the checkpoint are redone
            self.trainer.studio.resumed_at(state.global_step)

    def on_step_end(self, args, state, control, **kw):
        self.trainer._skip_step = False
        if self.trainer.stop_reason:
            control.should_training_stop = True
            control.should_save = True


class _CurriculumSampling:
    """The lazy RLCS sampler in place of TRL's ``RepeatSampler`` (``_get_train_sampler``).

    As TRL's sampler, it yields the *global* generation batch — ``B`` prompts per process —
    the same in every process (each draws from its own copy of the curriculum, kept identical),
    and accelerate's dataloader hands process ``r`` the ``r``-th slice of it.
    """

    def _get_train_sampler(self, dataset=None):
        from studio.engine.train.distributed import world_size

        s = self.studio
        s.drawer.reset()
        repeat = self.num_iterations * self.args.steps_per_generation
        gens = math.ceil(self.args.max_steps * self.args.gradient_accumulation_steps / repeat) + 2
        return CurriculumSampler(s.drawer.draw, s.cfg.prompts_per_step * world_size(), self.num_generations,
                                 repeat, gens)


class _PoolScoring:
    """Generation and scoring of a prompt pool: rollouts → rewards → curriculum update →
    group selection → the batch TRL's loss consumes (``_generate_and_score_completions``).

    With several processes each rolls out and scores a round-robin share of the pool's
    prompts (a group's G rollouts stay on one process), the shares are gathered, and every
    process makes the same curriculum update and group selection from the whole pool; each
    then trains on its equal share of the kept groups. Group statistics, the pass-rate table
    and the logged metrics are those of the whole pool, as in a one-process run.
    """

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:  # evaluation through Trainer.evaluate: plain scoring of the batch
            return self._score_pool([x["idx"] for x in inputs[:: self.num_generations_eval]], [], train=False)
        from studio.engine.train.distributed import rank, world_size

        G = self.num_generations
        ids = [int(x["idx"]) for x in inputs[::G]]
        base, extra = self.studio.drawer.pool_for(ids, rank(), world_size())
        return self._score_pool(base, extra, train=True)

    def _roll_out(self, prompts, G: int, shared: bool):
        """Rollouts, rewards and format flags of every prompt, G each, prompt-major; with
        ``shared`` each process does its round-robin share and the shares are gathered."""
        from studio.engine.train.distributed import all_gather_objects, rank, world_size

        s = self.studio
        mine = list(range(rank(), len(prompts), world_size())) if shared else list(range(len(prompts)))
        t0 = time.perf_counter()
        rolls, rewards, fmt = [], [], []
        clock = self.studio_clock
        if mine:
            model = self.accelerator.unwrap_model(self.model)
            encs = [s.encoder(prompts[k], key="train") for k in mine]
            with clock.phase("generate"):
                rolls = s.generator(model, encs, G)
            gen_s = time.perf_counter() - t0
            with clock.phase("reward"):
                rewards, fmt = s.scorer([r.text for r in rolls], [prompts[k] for k in mine for _ in range(G)])
        else:
            gen_s = time.perf_counter() - t0
        if not shared:
            return rolls, list(rewards), list(fmt), gen_s
        all_rolls, all_rewards, all_fmt = [None] * (len(prompts) * G), [0.0] * (len(prompts) * G), [False] * (len(prompts) * G)
        secs = []
        for part_ids, part_rolls, part_rewards, part_fmt, part_s in all_gather_objects((mine, rolls, rewards, fmt, gen_s)):
            secs.append(part_s)
            for j, k in enumerate(part_ids):
                all_rolls[k * G:(k + 1) * G] = part_rolls[j * G:(j + 1) * G]
                all_rewards[k * G:(k + 1) * G] = part_rewards[j * G:(j + 1) * G]
                all_fmt[k * G:(k + 1) * G] = part_fmt[j * G:(j + 1) * G]
        return all_rolls, all_rewards, all_fmt, max(secs)

    def _score_pool(self, base_ids: list[int], extra_ids: list[int], train: bool):
        import torch

        from studio.engine.train.distributed import is_main_process, rank, world_size

        s, G = self.studio, (self.num_generations if train else self.num_generations_eval)
        device = self.accelerator.device
        step = self.state.global_step
        clock = self.studio_clock
        if train and s.cfg.eval_every and step % s.cfg.eval_every == 0:  # the model after `step` updates
            with clock.phase("eval"):
                s.record_eval(step, self.model, self.rollouts_total)
        pool = base_ids + extra_ids
        prompts = [s.train[i] for i in pool]
        shared = train and world_size() > 1
        rolls, rewards, fmt, gen_s = self._roll_out(prompts, G, shared)
        R = torch.tensor(rewards, dtype=torch.float32).view(len(pool), G)
        results = {i: R[k].tolist() for k, i in enumerate(pool)}
        thr = s.state.config.correct_threshold
        correct = (R >= thr).sum(1).tolist()
        zero_var = [bool((R[k].max() - R[k].min()) <= 1e-12) for k in range(len(pool))]
        self.rollouts_total += len(rolls)
        if train:
            s.drawer.settle(pool)
            sel = s.state.select_groups(results, len(base_ids))
            s.state.update(results)
            if shared:
                self._check_in_sync(step + 1)
            pos = {i: k for k, i in enumerate(pool)}
            keep = [pos[i] for i in sel.kept]
            self._skip_step = sel.skip_update
            if self._skip_step:
                s.log(f"step {step + 1}: no group with reward variance among {len(pool)} rolled-out prompts; "
                      f"update skipped")
            if s.state.too_easy() and not self.stop_reason:
                self.stop_reason = s.state.too_easy_message() + f" (stopped at step {step + 1})"
                s.log(self.stop_reason)
                if is_main_process():
                    (s.run_dir / STOP_REASON_FILE).write_text(self.stop_reason + "\n", encoding="utf-8")
        else:
            keep = list(range(len(pool)))
        mine = share_of_kept(keep, len(base_ids), rank(), world_size()) if shared else keep
        rows = [g * G + j for g in mine for j in range(G)]
        Rk = R[mine]
        mean = Rk.mean(1, keepdim=True)
        std = Rk.std(1, keepdim=True) if G > 1 else torch.zeros_like(mean)
        adv = ((Rk - mean) / (std + 1e-4)).view(-1)
        encs = [s.encoder(prompts[g], key="train") for g in mine]
        # TRL's dapo/cispo normaliser: the generation batch's loss tokens over *all* processes
        n_items = sum(sum(rolls[g * G + j].loss_mask) for g in keep for j in range(G))
        out = self._pack(encs, [rolls[r] for r in rows], G, adv, device, n_items)
        mode = "train" if train else "eval"
        self._log_rollout_metrics(mode, rolls, rewards, fmt, correct, zero_var, pool, keep, len(base_ids),
                                  gen_s, prompts)
        if train:
            self._add_logps(out, probe=bool(s.cfg.kl_every) and step % s.cfg.kl_every == 0)
        if train and is_main_process():
            # rollouts of the step being taken: numbered as status, metrics.jsonl and train.log number it
            with clock.phase("log"):
                s.write_rollouts(step + 1, [(prompts[r // G], rolls[r], rewards[r]) for r in range(len(rolls))])
        return out

    def _check_in_sync(self, step: int) -> None:
        """Every process must hold the same curriculum (pass rates, tiers, weights, random
        state) after the update, or their draws part ways: compare digests, log how many
        processes agree (``curriculum/processes_in_sync``), refuse to go on if any differs."""
        import hashlib

        from studio.engine.train.distributed import all_gather_objects
        from studio.errors import StudioError

        state = json.dumps(self.studio.state.to_dict(), sort_keys=True, default=str)
        digests = all_gather_objects(hashlib.sha256(state.encode()).hexdigest())
        if len(set(digests)) > 1:
            raise StudioError(f"After step {step} the processes' curriculum states differ ({len(set(digests))} "
                              f"versions among {len(digests)} processes); the run stops rather than train on "
                              f"diverging prompt draws. Resume continues from the last checkpoint.")
        self._metrics["train"]["curriculum/processes_in_sync"].append(float(len(digests)))

    def _pack(self, encs, rolls, G, advantages, device, num_items: int | None = None):
        """Build the dict TRL's ``_compute_loss`` consumes (+ per-sample ``mm_*`` media).
        ``num_items``: loss tokens of the whole generation batch (all processes); None: these rows'."""
        import torch

        s = self.studio
        pad = s.generator.pad_id
        prompt_rows = [e for e in encs for _ in range(G)]
        P = max(e["input_ids"].shape[1] for e in prompt_rows)
        C = max(1, max(len(r.ids) for r in rolls))
        pid, pmask, mm, cid, cmask, lmask = [], [], [], [], [], []
        for e, r in zip(prompt_rows, rolls):
            x = e["input_ids"][0].tolist()
            t = e["mm_token_type_ids"][0].tolist()
            pid.append([pad] * (P - len(x)) + x)
            pmask.append([0] * (P - len(x)) + [1] * len(x))
            mm.append([0] * (P - len(t)) + t + [0] * C)
            cid.append(r.ids + [pad] * (C - len(r.ids)))
            cmask.append([1] * len(r.ids) + [0] * (C - len(r.ids)))
            lmask.append(r.loss_mask + [0] * (C - len(r.ids)))
        T = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
        completion_mask, tool_mask = T(cmask), T(lmask)
        out = {
            "prompt_ids": T(pid), "prompt_mask": T(pmask),
            "completion_ids": T(cid), "completion_mask": completion_mask,
            "tool_mask": tool_mask,  # injected </think><answer> tokens: attended, no loss
            "mm_token_type_ids": T(mm),
            "advantages": advantages.to(device),
            "num_items_in_batch": (completion_mask * tool_mask).sum() if num_items is None else T(num_items),
        }
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
            if any(e.get(key) is not None for e in prompt_rows):
                out["mm_" + key] = [e.get(key) for e in prompt_rows]
        return out

    def _log_rollout_metrics(self, mode, rolls, rewards, fmt, correct, zero_var, pool, keep, B, gen_s, prompts):
        import torch

        s, m = self.studio, self._metrics[mode]
        n = len(rolls)
        rt = torch.tensor(rewards)
        lengths = torch.tensor([float(sum(r.loss_mask)) for r in rolls])
        m["rewards/mean"].append(rt.mean().item())
        m["rewards/std"].append(rt.std().item() if n > 1 else 0.0)
        m["rollout/format_correct"].append(sum(fmt) / n)
        m["rollout/forced_answer"].append(sum(r.forced for r in rolls) / n)
        m["rollout/truncated"].append(sum(r.truncated for r in rolls) / n)
        m["completions/length_mean"].append(lengths.mean().item())
        m["completions/length_max"].append(lengths.max().item())
        m["rollout/generate_seconds"].append(gen_s)
        m["rollout/rollouts_total"].append(float(self.rollouts_total))
        m["curriculum/informative_groups"].append(float(sum(1 for k in keep if not zero_var[k])))
        if mode == "train":
            m["curriculum/skipped_update"].append(float(self._skip_step))
            for k, v in s.state.metrics().items():  # tiers, weights, r, expansion EMA, draw size
                if v is not None:
                    m[k].append(float(v))
        else:
            m["curriculum/zero_variance_frac"].append(sum(zero_var) / len(zero_var))

    def _completion_logps(self, batch, adapter: bool = True):
        """Per-token log-probs ``(rows, C)`` float32 of the batch's completions under the
        current policy (``adapter``) or the base model (adapter disabled: the reference of a
        LoRA policy, as TRL uses for PEFT models); no gradient."""
        import contextlib

        import torch

        model = self.accelerator.unwrap_model(self.model)
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        keep = batch["completion_ids"].shape[1]
        self._media_stash = {k: v for k, v in batch.items() if k.startswith("mm_") and k != "mm_token_type_ids"}
        try:
            with torch.no_grad(), (contextlib.nullcontext() if adapter else model.disable_adapter()):
                logp, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, ids, att, keep, mm_token_type_ids=batch["mm_token_type_ids"])
        finally:
            self._media_stash = None
        return logp

    def _needs_old_logps(self) -> bool:
        """TRL's rule: the generating policy's log-probs are needed when a generation batch
        feeds more than one optimizer step (μ > 1, or more generation than accumulation
        steps); otherwise the loss's own detached log-probs are the same numbers."""
        return self.num_iterations > 1 or self.args.steps_per_generation > self.args.gradient_accumulation_steps

    def _add_logps(self, out: dict, probe: bool) -> None:
        """Put into ``out`` what TRL's loss reads besides the batch: ``old_per_token_logps``
        (the generating policy, for the clipped ratio of μ > 1; GRPO paper Alg. 1) and
        ``ref_per_token_logps`` (the base model, for the ``beta`` KL term); with ``probe`` also
        log ``kl/probe``. Each is one no-grad forward over the batch, shared between uses."""
        need_old, need_ref = self._needs_old_logps(), self.beta != 0.0
        if not (need_old or need_ref or probe):
            return
        with self.studio_clock.phase("logprob"):
            logp = self._completion_logps(out) if (need_old or probe) else None
            ref = self._completion_logps(out, adapter=False) if (need_ref or probe) else None
        if need_old:
            out["old_per_token_logps"] = logp
        if need_ref:
            out["ref_per_token_logps"] = ref
        if probe:
            self._metrics["train"]["kl/probe"].append(self._kl_probe(out, logp, ref))

    def _kl_probe(self, batch, logp, ref) -> float:
        """KL(π_θ ‖ π_base) on the batch's completions from their per-token log-probs under the
        policy (``logp``) and the base (``ref``, adapter disabled), mean over loss tokens of
        every process; Schulman's k3 estimator, as TRL's ``beta`` term uses."""
        import torch

        from studio.engine.train.distributed import sum_all

        mask = (batch["completion_mask"] * batch["tool_mask"]).float()
        d = ref - logp
        k3 = torch.exp(d) - d - 1
        total, count = sum_all([(k3 * mask).sum().item(), mask.sum().item()])  # over every process's rows
        return total / max(count, 1.0)


def share_of_kept(keep: list[int], batch: int, rank: int, world: int) -> list[int]:
    """Process ``rank``'s equal share of the kept groups (pool positions): the ``rank``-th of
    ``world`` slices of ``batch // world``. Fewer kept than ``batch`` (a pool with repeated
    prompts) are cycled, so every process trains on the same number of groups and DDP's
    gradient mean is the one-process mean.

    >>> share_of_kept([5, 2, 7, 1], 4, 1, 2)
    [7, 1]
    >>> share_of_kept([5, 2, 7], 4, 1, 2)
    [7, 5]
    """
    per = max(1, batch // world)
    full = [keep[k % len(keep)] for k in range(per * world)] if keep else []
    return full[rank * per:(rank + 1) * per]


class _MediaForward:
    """Images *and* videos in the log-prob forward (TRL 1.16 drops videos there)."""

    def _compute_loss(self, model, inputs):
        self._media_stash = {k: v for k, v in inputs.items() if k.startswith("mm_") and k != "mm_token_type_ids"}
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._media_stash = None

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           mm_token_type_ids=None, **unused):
        import torch

        media = self._media_stash or {}
        n = input_ids.size(0)
        batch_size = batch_size or n
        has_video = media.get("mm_pixel_values_videos") or [None] * n
        groups = [g for g in ([k for k in range(n) if has_video[k] is None],
                              [k for k in range(n) if has_video[k] is not None]) if g]
        logps = [None] * n
        ents = [None] * n
        all_aux = []
        for group in groups:  # Glm4v cannot mix images and videos in one forward
            for s in range(0, len(group), batch_size):
                rows = group[s:s + batch_size]
                idx = torch.tensor(rows, device=input_ids.device)
                ids = input_ids[idx]
                att = attention_mask[idx]
                inputs = {"input_ids": ids, "attention_mask": att}
                if mm_token_type_ids is not None:
                    inputs["mm_token_type_ids"] = mm_token_type_ids[idx]
                for key, vals in media.items():
                    parts = [vals[k] for k in rows if vals[k] is not None]
                    if parts:
                        inputs[key[3:]] = torch.cat(parts, 0).to(ids.device)
                if compute_aux_loss:
                    inputs["output_router_logits"] = True
                if self._plain_logps_fit(model, len(rows), logits_to_keep, compute_aux_loss):
                    with self.accelerator.autocast():
                        out = _plain_logps(model, inputs, logits_to_keep, compute_entropy,
                                           entropy_grad=getattr(self, "_entropy_bonus_enabled", False))
                else:
                    labels = ids.masked_fill(att == 0, -100)
                    labels[:, :-logits_to_keep] = -100
                    with self.accelerator.autocast():
                        out = model(**inputs, labels=labels, fused_lm_head=True)
                for j, k in enumerate(rows):
                    logps[k] = out.log_probs[j, -logits_to_keep:]
                    if compute_entropy:
                        ents[k] = out.entropy[j, -logits_to_keep:]
                if compute_aux_loss:
                    all_aux.append(out.aux_loss)
        return (torch.stack(logps, 0), torch.stack(ents, 0) if compute_entropy else None,
                torch.stack(all_aux).mean() if compute_aux_loss else None)

    def _plain_logps_fit(self, model, n: int, keep: int, aux: bool) -> bool:
        """On CPU, without MoE aux loss, when n × (keep + 1) × vocab logits fit 2**26 floats."""
        if aux or self.accelerator.device.type != "cpu":
            return False
        from studio.engine.train.sft_trainer import PLAIN_LOSS_MAX_LOGITS

        vocab = self.accelerator.unwrap_model(model).get_output_embeddings().weight.shape[0]
        return n * (keep + 1) * vocab <= PLAIN_LOSS_MAX_LOGITS


def _plain_logps(model, inputs: dict, keep: int, compute_entropy: bool, entropy_grad: bool = False):
    """Per-token log-probs (and entropies) of the last ``keep`` tokens from one ordinary forward.

    TRL's fused LM head (``fused_lm_head=True``) has no fast path without Triton: on CPU it
    scores every position — the prompt's image tokens included — in several passes and
    recomputes the projection in backward. Here the model's own ``logits_to_keep`` computes
    logits for the last ``keep + 1`` positions only; log-softmax, gather; padding positions
    (attention 0) are 0 like TRL's. Returns an object with ``log_probs`` and ``entropy``
    (None unless ``compute_entropy``; with a gradient only for TRL's entropy bonus,
    ``entropy_grad``), each (n, keep) float32.
    """
    import torch
    from types import SimpleNamespace

    logits = model(**inputs, use_cache=False, logits_to_keep=keep + 1).logits[:, :-1].float()
    target = inputs["input_ids"][:, -keep:]
    pad = inputs["attention_mask"][:, -keep:] == 0
    logp_all = torch.log_softmax(logits, -1)
    logps = logp_all.gather(-1, target.unsqueeze(-1)).squeeze(-1).masked_fill(pad, 0.0)
    ent = None
    if compute_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = (-(logp_all.exp() * logp_all).sum(-1)).masked_fill(pad, 0.0)
    return SimpleNamespace(log_probs=logps, entropy=ent)


class _CheckpointExtras:
    """Checkpoints carry the curriculum state and the rollout count; no hub model card."""

    def _save_checkpoint(self, model, trial):
        with self.studio_clock.phase("save"):
            self._save_checkpoint_and_extras(model, trial)

    def _save_checkpoint_and_extras(self, model, trial):
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        from studio.engine.train.distributed import is_main_process

        ckpt = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if ckpt.is_dir() and is_main_process():  # the same state in every process: written once
            self.studio.save_curriculum(ckpt / CURRICULUM_FILE)
            (ckpt / RL_STATE_FILE).write_text(json.dumps({"rollouts_total": self.rollouts_total}),
                                              encoding="utf-8")

    def create_model_card(self, *a, **kw):  # no hub card in offline run folders
        return None


def _trainer_base():
    from trl import GRPOTrainer

    return GRPOTrainer


def _make_trainer_class():
    from transformers import TrainerCallback

    GRPOTrainer = _trainer_base()
    skip_and_stop = type("_SkipAndStop", (_SkipAndStop, TrainerCallback), {})

    class StudioGRPOTrainer(_CurriculumSampling, _PoolScoring, _MediaForward, _CheckpointExtras, GRPOTrainer):
        """``GRPOTrainer`` with RLCS sampling, expansion, forced answering and video in the loss.

        Overrides (TRL 1.16): ``_get_train_sampler`` (lazy curriculum sampler),
        ``_generate_and_score_completions`` (pool → rollouts → rewards → curriculum
        update → group selection), ``_get_per_token_logps_and_entropies`` (images and
        videos in the log-prob forward; on CPU the completion's logits only, :func:`_plain_logps`), ``_compute_loss`` (hands the per-sample media to
        the forward), ``_save_checkpoint`` (writes ``curriculum.json``), ``training_step`` (timed:
        each step's ``time/*_s`` split, :mod:`studio.engine.train.steptime`).
        """

        def __init__(self, *a, studio: "_RunContext", **kw):
            from studio.engine.train.steptime import StepClock

            self.studio = studio
            self.studio_clock = StepClock()  # time/*_s: where each step's wall time goes
            self._skip_step = False
            self.stop_reason: str | None = None
            self._media_stash: dict | None = None
            self.rollouts_total = 0
            super().__init__(*a, **kw)
            studio.is_main = self.accelerator.is_main_process
            self.add_callback(skip_and_stop(self))
            from studio.engine.train.steptime import make_step_time_callback, metrics_sink

            self.add_callback(make_step_time_callback(self.studio_clock, metrics_sink(self._metrics)))
            if self.use_vllm:
                studio.generator.vllm_generate = self._vllm_generate

        def training_step(self, *a, **kw):
            """TRL's step (rollouts when its buffer is empty, then the loss) timed as ``update``;
            the rollout phases inside it (generate, reward, …) are counted apart."""
            with self.studio_clock.phase("update"):
                return super().training_step(*a, **kw)

        def _vllm_generate(self, prompt_ids, images, max_new):
            """Sample one completion per prompt with TRL's colocated vLLM (weights synced per step).

            Not exercised by the CPU test suite (needs vLLM + CUDA); mirrors
            ``GRPOTrainer._generate_single_turn``'s vLLM branch.
            """
            vg = self.vllm_generation
            if self.state.global_step != self._last_loaded_step:
                vg.sync_weights()
                self._last_loaded_step = self.state.global_step
            old = vg.max_completion_length
            vg.max_completion_length = max_new
            try:
                _, completion_ids, _, _ = vg.generate(prompts=prompt_ids, images=images, num_generations=1)
            finally:
                vg.max_completion_length = old
            return completion_ids

    return StudioGRPOTrainer
