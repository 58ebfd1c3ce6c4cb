"""The ready-to-run gateway. Today: the embedded demo that ``propylon run`` starts."""
