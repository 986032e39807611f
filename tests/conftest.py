"""Test-wide settings: hypothesis profiles (deterministic in CI) and a headless backend."""

from __future__ import annotations

import os

import matplotlib
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

# CI runs the same examples every time (a red CI is then reproducible); locally the
# examples vary from run to run and so keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
