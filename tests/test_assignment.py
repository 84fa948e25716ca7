"""The Hungarian assignment against brute force."""

from __future__ import annotations

import itertools

import numpy as np

from affectlens.assignment import linear_assignment


def test_matches_brute_force_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        c = rng.random((n, m))
        pairs = linear_assignment(c)
        assert len(pairs) == min(n, m)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        if n <= m:
            best = min(sum(c[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        else:
            best = min(sum(c[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
        assert sum(c[i, j] for i, j in pairs) == np.float64(best) or abs(sum(c[i, j] for i, j in pairs) - best) < 1e-9


def test_empty():
    assert linear_assignment(np.zeros((0, 3))) == []
