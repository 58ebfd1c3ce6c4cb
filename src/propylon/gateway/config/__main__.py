"""Regenerate the generated files from the models::

    python -m propylon.gateway.config > src/propylon/gateway/schema.json
    python -m propylon.gateway.config --reference   # the reference part of docs/gateway.md
"""

import sys

from . import schema_text
from .reference import reference_markdown

sys.stdout.write(reference_markdown() if sys.argv[1:] == ["--reference"] else schema_text())
