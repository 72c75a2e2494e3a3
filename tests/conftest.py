"""Shared test settings: hypothesis profiles and the dtype fixture.

Profiles (choose with HYPOTHESIS_PROFILE=...): "default" keeps the whole suite fast enough for CI on two
cores and draws the same examples every run (derandomised, so CI is repeatable); "thorough" runs many more,
freshly random examples when you change the maths.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# No deadline: the first call of a Numba kernel compiles it (or loads it from the cache).
settings.register_profile(
    "default", max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
