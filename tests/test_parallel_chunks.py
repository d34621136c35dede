"""run_chunks: the ranges cover [0, n) once, and a cost splits them at equal work."""
import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import run_chunks
from workloads._parallel import _bounds


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=300), st.integers(1, 8))
def test_cost_bounds_split_at_equal_work(costs, k):
    cost = np.array(costs)
    n = len(cost)
    k = min(k, n)
    b = _bounds(n, k, cost)
    assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) >= 0)
    sums = [cost[b[i]:b[i + 1]].sum() for i in range(k)]
    # no chunk holds more than its share plus one index's cost
    assert max(sums) <= cost.sum() / k + cost.max()


def test_every_index_is_visited_once_with_a_cost():
    seen = np.zeros(1000, dtype=np.int64)
    lock = threading.Lock()

    def visit(lo, hi):
        with lock:
            seen[lo:hi] += 1
    cost = np.zeros(1000)
    cost[900:] = 1.0            # all the work at the end
    run_chunks(visit, 1000, cost=cost)
    assert np.all(seen == 1)
