"""Entry point: ``python -m bench`` (also ``make bench ARGS=...``)."""

from .cli import main

raise SystemExit(main())
