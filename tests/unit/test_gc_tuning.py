"""Every service collects its young generation less often, and leaves startup's objects be."""

import gc

import pytest

from shared.serve import tune_gc


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_young_generation_threshold_is_the_setting_and_startup_is_frozen(restored_gc):
    _, gen1, gen2 = gc.get_threshold()
    kept = [object() for _ in range(10)]  # allocated before: frozen with the rest
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, gen1, gen2)
    assert gc.get_freeze_count() > len(kept)
