"""``StudioSFTTrainer``: TRL's ``SFTTrainer`` as the SFT run uses it.

What it adds to TRL 1.16's trainer: a checkpoint save that never leaves a half-written
folder (:class:`DiskFullError` names the last good one), and the step's time split into
phases (``data``, ``update``, ``save``; :mod:`studio.engine.train.steptime`).
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
