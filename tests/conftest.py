"""Suite-wide fixtures: the loopback lab (``lab``) comes from propylon.lab's pytest plugin."""

pytest_plugins = ["propylon.lab.pytest_plugin"]
