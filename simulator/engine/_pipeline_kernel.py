"""The per-pass event model as one compiled discrete-event loop.

The same model as the simpy processes of :mod:`._pipeline` (docs/architecture.md §3-§4),
written as a state machine per unit. Time jumps from one work-unit completion to the
next; at each time every zero-cycle transition (hand-offs, frees, zero-duration work
units) is settled to a fixed point, and only then is the shared DRAM interface granted,
to the request with the smallest (request cycle, priority, sequence). Because every
transition of a cycle only ever enables others (an upstream finish, a free of buffer
room), the fixed point, and so every start time, does not depend on the order in
which the units are visited. Work is proportional to work units x units.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["pipeline_kernel"]

# Unit phases.
_IN, _ROOM, _BUS, _BUSY, _DONE = 0, 1, 2, 3, 4
_NEVER = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True)
def pipeline_kernel(service, alloc, free, caps, load_cycles, prefetch_cycles,
                    on_bus, on_dram, priority, has_bus, has_dram, work, acc, completed):
    """Simulate one pass; see :func:`simulator.engine.simulate_pipeline` for the model.

    Parameters
    ----------
    service : int64 [units, items], cycles of each work unit on each unit.
    alloc, free : int64 [units - 1, items], bytes each work unit takes in the buffer
        after a unit when that unit starts it, and frees when the next unit finishes it.
    caps : int64 [units - 1], buffer capacities in bytes.
    load_cycles, prefetch_cycles : cycles of this pass's load and the next pass's prefetch.
    on_bus, on_dram, priority : int64 [units], flags (on the shared interface; moves
        DRAM data) and bus priority (0 read side, 1 write side).
    has_bus : the pass has a shared DRAM interface; has_dram : it has DRAM units.
    work : int64 [10, max(units, items * DRAM units + 2)], acc : int64 [units, 4],
        completed : bool [units]: work arrays from the caller, any contents (NOTE: each
        np.zeros / np.full / np.empty in the kernel would be one more numpy implementation for
        numba to compile, on the critical path of a first run).

    Returns
    -------
    (stats int64 [units, 4] = busy, stall_input, stall_output, stall_dram;
    total cycles, carry cycles, DRAM busy cycles)
    """
    n_units = service.shape[0]
    n_items = service.shape[1]
    item = work[0]
    phase = work[1]
    since = work[2]         # when the current wait began
    until = work[3]         # busy until
    req_seq = work[4]
    finish = work[5]
    done = work[6]
    level = work[7]         # buffer levels (units - 1 of them)
    for k in range(n_units):
        for q in range(8):
            work[q, k] = 0
        since[k] = load_cycles
        for q in range(4):
            acc[k, q] = 0
        completed[k] = False
    n_dram = 0
    for k in range(n_units):
        n_dram += on_dram[k]
    # DRAM transfers, kept sorted by start: the load first, then in the order they start
    # (time never goes back), the prefetch inserted at its place at the end.
    starts = work[8]
    ends = work[9]
    n_tr = 0
    if load_cycles != 0 and has_dram:
        starts[0] = 0
        ends[0] = load_cycles
        n_tr = 1
    # The prefetch: 0 not asked, 1 waiting for the interface, 2 running, 3 over.
    pf_state = 0
    pf_req = 0
    pf_grant = 0
    pf_seq = 0
    pf_until = 0
    bus_busy = False
    seq = 0
    t = load_cycles
    if n_items == 0:
        for k in range(n_units):
            phase[k] = _DONE
    while True:
        # Settle every zero-cycle transition of cycle t.
        changed = True
        while changed:
            changed = False
            for k in range(n_units):
                while True:
                    p = phase[k]
                    i = item[k]
                    if p == _IN:
                        if k > 0 and done[k - 1] <= i:
                            break
                        acc[k, 1] += t - since[k]
                        since[k] = t
                        phase[k] = _ROOM
                        changed = True
                    elif p == _ROOM:
                        if k < n_units - 1:
                            need = alloc[k, i]
                            if level[k] != 0 and level[k] + need > caps[k]:
                                break
                            level[k] += need
                        acc[k, 2] += t - since[k]
                        d = service[k, i]
                        changed = True
                        if d == 0:
                            phase[k] = _BUSY
                            until[k] = t
                        elif on_bus[k] != 0:
                            phase[k] = _BUS
                            since[k] = t
                            seq += 1
                            req_seq[k] = seq
                        else:
                            phase[k] = _BUSY
                            until[k] = t + d
                            if on_dram[k] != 0:
                                starts[n_tr] = t
                                ends[n_tr] = t + d
                                n_tr += 1
                    elif p == _BUSY:
                        if until[k] != t:
                            break
                        d = service[k, i]
                        acc[k, 0] += d
                        if d != 0 and on_bus[k] != 0:
                            bus_busy = False
                        done[k] = i + 1
                        if k > 0:
                            level[k - 1] -= free[k - 1, i]
                        item[k] = i + 1
                        since[k] = t
                        changed = True
                        if i + 1 < n_items:
                            phase[k] = _IN
                        else:
                            phase[k] = _DONE
                            finish[k] = t
                            completed[k] = True
                            if k == 0 and prefetch_cycles != 0:
                                pf_req = t
                                if has_bus:
                                    pf_state = 1
                                    seq += 1
                                    pf_seq = seq
                                else:
                                    pf_state = 3
                                    pf_grant = t
                    else:       # waiting for the interface, or finished
                        break
        if pf_state == 2 and pf_until == t:
            pf_state = 3
            bus_busy = False
        # End of cycle t: grant the interface.
        if has_bus and not bus_busy:
            best = -2
            b_time = _NEVER
            b_prio = 0
            b_seq = 0
            if pf_state == 1:
                best = -1
                b_time = pf_req
                b_prio = 0
                b_seq = pf_seq
            for k in range(n_units):
                if phase[k] == _BUS:
                    if (since[k] < b_time or (since[k] == b_time and (priority[k] < b_prio or (
                            priority[k] == b_prio and req_seq[k] < b_seq)))):
                        best = k
                        b_time = since[k]
                        b_prio = priority[k]
                        b_seq = req_seq[k]
            if best == -1:
                pf_state = 2
                pf_grant = t
                pf_until = t + prefetch_cycles
                bus_busy = True
            elif best >= 0:
                d = service[best, item[best]]
                acc[best, 3] += t - since[best]
                phase[best] = _BUSY
                until[best] = t + d
                bus_busy = True
                if on_dram[best] != 0:
                    starts[n_tr] = t
                    ends[n_tr] = t + d
                    n_tr += 1
        # Advance to the next completion.
        nxt = _NEVER
        for k in range(n_units):
            if phase[k] == _BUSY and until[k] < nxt:
                nxt = until[k]
        if pf_state == 2 and pf_until < nxt:
            nxt = pf_until
        if nxt == _NEVER:
            break
        t = nxt

    # A unit that never finished its work units (a buffer that never drains) reports nothing.
    for k in range(n_units):
        if not completed[k]:
            for c in range(4):
                acc[k, c] = 0
    total = load_cycles
    if n_items > 0:
        total = 0
        for k in range(n_units):
            if finish[k] > total:
                total = finish[k]
    carry = 0
    if prefetch_cycles != 0:
        if n_items == 0:
            requested = total
            granted = total
        elif n_units > 0 and completed[0]:
            requested = pf_req
            granted = pf_grant
        else:
            requested = 0
            granted = 0
        granted = min(granted, total)
        in_pass = min(prefetch_cycles, total - granted)
        if n_units > 0:
            acc[0, 0] += in_pass
            acc[0, 3] += granted - min(requested, total)
        carry = prefetch_cycles - in_pass
        if in_pass != 0:
            # NOTE: an insertion, not a sort: the rest is sorted (and np.argsort costs seconds to compile).
            j = n_tr
            while j > 0 and starts[j - 1] > granted:
                starts[j] = starts[j - 1]
                ends[j] = ends[j - 1]
                j -= 1
            starts[j] = granted
            ends[j] = granted + in_pass
            n_tr += 1
    # Length of the union of the DRAM transfer intervals.
    dram = 0
    end = -1
    for j in range(n_tr):
        a = starts[j]
        b = ends[j]
        if b <= end:
            continue
        dram += b - max(a, end)
        end = b
    return acc, total, carry, dram
