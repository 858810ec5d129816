"""Shared test setup: a non-interactive Matplotlib backend before anything imports pyplot."""

import matplotlib

matplotlib.use("Agg")
