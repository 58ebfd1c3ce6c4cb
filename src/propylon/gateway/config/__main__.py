"""``python -m propylon.gateway.config > src/propylon/gateway/schema.json`` regenerates the schema."""

import sys

from . import schema_text

sys.stdout.write(schema_text())
