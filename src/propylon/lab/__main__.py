"""``python -m propylon.lab``: see :mod:`propylon.lab.cli`."""

import sys

from .cli import main

sys.exit(main())
