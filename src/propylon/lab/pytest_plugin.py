"""pytest fixtures that start Propylon City for the test suite."""
