"""``studio toy-train``: train the workshop model (toy-base / toy-thinking) from scratch on CPU.

The arguments and the run are :mod:`studio.engine.workshop.toy_train.cli`'s, the same as
``python -m studio.engine.workshop.toy_train``.
"""

from studio.engine.workshop.toy_train.cli import add_arguments, run  # noqa: F401 - this command's interface
