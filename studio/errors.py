"""User-facing errors.

Every error a user can fix is a :class:`StudioError` whose message is one or two plain
sentences saying what is wrong and what to change. The UI shows ``str(err)`` in a
``gr.Error``; the CLI prints it and exits with status 2. Anything that is *not* a
StudioError is a bug: the UI logs its traceback and shows a short generic message.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class: an error whose message is meant for the user."""


class InputError(StudioError, ValueError):
    """Bad user input: a file, a setting or a prompt that must be changed."""


class MediaError(InputError):
    """An image, video or PDF that cannot be used (corrupt, too small, too many…)."""


class ConfigError(InputError):
    """A config field with a bad value; the message names the field."""


class ModelLoadError(StudioError):
    """A model could not be loaded (missing folder, no network, wrong architecture…)."""


class JobBusyError(StudioError):
    """A GPU job is already running; only one at a time."""


class DataError(InputError):
    """A dataset file or row that cannot be used."""


class StoppedError(StudioError):
    """The user stopped a long preparation (a recipe's first-use data generation) before it
    finished; nothing half-written is left, and the next start begins it again."""


class TrainingError(StudioError):
    """Training stopped on an unexpected error; the message is one line, the traceback is
    kept in the run folder's ``error.log`` (see :func:`studio.engine.train.runs.track_run`)."""
