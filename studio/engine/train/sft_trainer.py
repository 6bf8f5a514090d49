"""``StudioSFTTrainer``: TRL's ``SFTTrainer`` as the SFT run uses it.

What it adds to TRL 1.16's trainer: a checkpoint save that never leaves a half-written
folder (:class:`DiskFullError` names the last good one), the step's time split into
phases (``data``, ``update``, ``save``; :mod:`studio.engine.train.steptime`), and on CPU
a plain cross-entropy loss in place of TRL's fused LM head (:func:`plain_loss`).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from studio.errors import StudioError


class DiskFullError(StudioError):
    """A checkpoint could not be written (disk full / I/O error); earlier ones are intact."""


def trainer_class():
    """The ``StudioSFTTrainer`` class (built on first call: importing TRL is slow)."""
    from trl import SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        """SFTTrainer whose checkpoint save never leaves a half-written folder behind.

        If writing ``checkpoint-N`` fails (disk full, I/O error), the partial folder is
        removed and :class:`DiskFullError` names the last good checkpoint; the ones
        saved before are untouched (rotation only runs after a successful save).
        """

        studio_clock = None  # a StepClock (studio.engine.train.steptime); set by build_trainer

        def _phase(self, name: str):
            from contextlib import nullcontext

            return self.studio_clock.phase(name) if self.studio_clock is not None else nullcontext()

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            with self._phase("data"):  # waiting for the collator (or its loader worker)
                return super().get_batch_samples(epoch_iterator, num_batches, device)

        def training_step(self, *a, **kw):
            with self._phase("update"):  # forward + backward (the optimizer step is "other")
                return super().training_step(*a, **kw)

        studio_plain_loss = False  # set by build_trainer on CPU: see plain_loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if (self.studio_plain_loss and model.training and not return_outputs
                    and plain_loss_fits(inputs, self.accelerator.unwrap_model(model))):  # DDP wraps it
                return plain_loss(self, model, inputs, num_items_in_batch)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def _save_checkpoint(self, model, trial):
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            try:
                with self._phase("save"):
                    return super()._save_checkpoint(model, trial)
            except OSError as e:
                shutil.rmtree(folder, ignore_errors=True)
                from studio.engine.train.runs import find_last_checkpoint

                prev = find_last_checkpoint(Path(self.args.output_dir))
                why = "the disk is full" if e.errno == errno.ENOSPC else f"of an I/O error ({e})"
                raise DiskFullError(
                    f"Could not save checkpoint-{self.state.global_step} because {why}. "
                    + (f"The previous checkpoint {prev.name} is intact; free space and start again to resume."
                       if prev else "No earlier checkpoint exists; free space and start again.")
                ) from e

    return StudioSFTTrainer


#: Largest batch × length × vocabulary (logits elements, fp32) the plain loss materialises: 2**26 =
#: 256 MB. A toy model's batch (12 × 155 × 796 ≈ 1.5 M) is far below; a 151k-vocabulary GLM row of
#: 4,096 tokens (620 M) is not, and keeps TRL's chunked head, which never builds the logits.
PLAIN_LOSS_MAX_LOGITS = 2 ** 26


def plain_loss_fits(inputs: dict, model) -> bool:
    """Whether the batch's full logits (B × L × vocab) stay under :data:`PLAIN_LOSS_MAX_LOGITS`."""
    vocab = model.get_output_embeddings().weight.shape[0]
    return inputs["input_ids"].numel() * vocab <= PLAIN_LOSS_MAX_LOGITS


def plain_loss(trainer, model, inputs: dict, num_items_in_batch=None):
    """The SFT loss and TRL's per-step metrics from one ordinary forward (full logits).

    TRL 1.16's ``SFTTrainer`` computes the loss through a fused, chunked LM head
    (``trl.trainer.utils.add_fused_lm_head``) that also computes entropy and top-1 hits. On
    GPUs a Triton kernel scores only the trained positions; without Triton (CPU) it runs as
    torch ops over *every* position (prompt, image and padding tokens too), in several passes
    over the (tokens × vocab) tile forward and again in backward, where it recomputes the
    projection. For small models on CPU that costs more than the logits it avoids (measured:
    FACTS.md "Training speed"). Here: the model's own forward → logits (B, L, V) → log-softmax
    of the trained positions only → the same loss (summed NLL ÷ ``num_items_in_batch``, TRL's
    normalisation) and the same metrics (``entropy``, ``mean_token_accuracy``, ``num_tokens``)
    in TRL's ``_metrics``.

    Args:
        trainer: the ``StudioSFTTrainer``; inputs: the collated batch (``labels`` -100 outside
            trained tokens); num_items_in_batch: trained tokens of the whole accumulated step.

    Returns: the scalar loss tensor (float32, with grad).
    """
    import torch

    labels = inputs["labels"]
    fwd = {k: v for k, v in inputs.items() if k != "labels"}
    fwd["use_cache"] = False
    logits = model(**fwd).logits[:, :-1]
    target = labels[:, 1:].to(logits.device)
    mask = target != -100
    sel = logits[mask].float()  # (n trained, V)
    tgt = target[mask]
    logp = torch.log_softmax(sel, -1)
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    n = mask.sum() if num_items_in_batch is None else num_items_in_batch
    loss = nll.sum() / torch.as_tensor(n, device=nll.device).clamp(min=1)
    with torch.no_grad():
        m = trainer._metrics["train"]
        valid = max(1, int(mask.sum()))
        m["entropy"].append(float(-(logp.exp() * logp).sum()) / valid)
        m["mean_token_accuracy"].append(float((sel.argmax(-1) == tgt).sum()) / valid)
        trainer._total_train_tokens += int(inputs["attention_mask"].sum())
        m["num_tokens"] = [trainer._total_train_tokens]
    return loss
