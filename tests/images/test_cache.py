"""LayerCache: content addressing and least-recently-used eviction."""

from __future__ import annotations

import pytest

from fleet_sim.errors import CapacityError
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Layer

A, B, C, D = (Layer.of(name, 100) for name in "abcd")


def test_a_shared_layer_is_stored_once():
    cache = LayerCache(1000)
    cache.add(A)
    assert cache.add(A) == []
    assert len(cache) == 1
    assert cache.used_mb == 100


def test_missing_lists_absent_layers_once_in_order():
    cache = LayerCache(1000)
    cache.add(B)
    assert cache.missing([A, B, C, A]) == [A, C]


def test_least_recently_added_is_evicted_first():
    cache = LayerCache(300)
    for layer in (A, B, C):
        cache.add(layer)
    assert cache.add(D) == [A]
    assert list(cache.digests()) == [B.digest, C.digest, D.digest]


def test_a_layer_used_by_a_pull_is_kept_over_older_ones():
    cache = LayerCache(300)
    for layer in (A, B, C):
        cache.add(layer)
    cache.missing([A])  # a pull found A cached: A is now the most recently used
    assert cache.add(D) == [B]
    assert A.digest in cache
    assert B.digest not in cache


def test_one_big_layer_evicts_several():
    cache = LayerCache(300)
    for layer in (A, B, C):
        cache.add(layer)
    assert cache.add(Layer.of("big", 250)) == [A, B, C]
    assert cache.used_mb == 250


def test_a_layer_larger_than_the_cache_is_refused():
    with pytest.raises(CapacityError, match="exceeds"):
        LayerCache(50).add(A)
