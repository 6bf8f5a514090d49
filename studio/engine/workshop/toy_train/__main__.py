"""``python -m studio.engine.workshop.toy_train base|thinking …``."""

from studio.engine.workshop.toy_train.cli import main

raise SystemExit(main())
