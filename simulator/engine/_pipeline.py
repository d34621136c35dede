"""Discrete-event timing of one pass: a pipeline of units joined by buffers sized in bytes.

One event model, two implementations: the simpy processes below (the readable
reference) and the compiled loop of :mod:`._pipeline_kernel` (the default), proven
to give identical results. Each unit is a simpy process. For each work unit it waits until the upstream
unit has finished that work unit, reserves the bytes the work unit will take in
its output buffer (waiting for room: back-pressure), waits for the DRAM
interface if it is a DMA unit on a shared interface, is busy for the work
unit's exact cycle count, then frees the work unit's bytes in its input buffer.
Hand-offs take zero cycles (docs/architecture.md §3.1). The processes only
orchestrate time; every duration and size comes from the dataflow's per-pass
work. Events are proportional to work units x units, never to cycles.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import simpy

from workloads import ConfigError

from ..report import UnitStats
from ._pipeline_kernel import pipeline_kernel

__all__ = ["ENGINES", "PassTiming", "check_engine", "simulate_pipeline"]

#: The implementations of the event model: the compiled loop (default) and the simpy processes.
ENGINES = ("compiled", "simpy")

_READ_FIRST, _WRITE = 0, 1      # bus priorities on a tie: the read side first


@dataclass
class PassTiming:
    """Result of one pass: total cycles, per-unit accounting, the DRAM interface's busy
    cycles, and the part of the next pass's prefetched load still to do when this
    pass ends (``carry_cycles``)."""

    cycles: int
    units: dict[str, UnitStats] = field(default_factory=dict)
    carry_cycles: int = 0
    dram_busy_cycles: int = 0


class _Bus:
    """One shared DRAM interface: one transfer at a time, first come first served by
    request cycle, the read side first on a tie (docs/architecture.md §4.2)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.busy = False
        self.queue: list[tuple[int, int, int, simpy.Event]] = []
        self.pending = False
        self.seq = 0
        self.reads_done = False      # the read side will ask no more in this pass

    def request(self, priority: int) -> simpy.Event | None:
        """An event that fires when the interface is granted, or None when it is granted at once."""
        if not self.busy and not self.queue and not self.pending and (priority == _READ_FIRST or self.reads_done):
            # NOTE: fast path. Nobody asked earlier, and nobody asking later in this cycle
            # could win: the read side wins every tie, and it is done when the write side asks.
            self.busy = True
            return None
        ev = self.env.event()
        self.seq += 1
        self.queue.append((self.env.now, priority, self.seq, ev))
        self._arbitrate()
        return ev

    def release(self) -> None:
        self.busy = False
        self._arbitrate()

    def _arbitrate(self) -> None:
        if not self.pending and not self.busy and self.queue:
            self.pending = True
            _EndOfCycle(self.env, self._grant)

    def _grant(self, _event) -> None:
        self.pending = False
        if self.busy or not self.queue:
            return
        best = min(self.queue)
        self.queue.remove(best)
        self.busy = True
        best[3].succeed()


class _EndOfCycle(simpy.events.Event):
    """An event processed after every other event of the current cycle.

    simpy orders events of one time by priority, then by creation; ours is lower
    than the NORMAL priority of every other event, so that the interface is granted
    only once everything else of the cycle has happened, including events that
    those events schedule, and every request of the cycle competes.
    """

    def __init__(self, env: simpy.Environment, callback) -> None:
        super().__init__(env)
        # NOTE: set up like simpy's own Timeout (triggered at creation), one priority below NORMAL.
        self._ok = True
        self._value = None
        self.callbacks.append(callback)
        env.schedule(self, priority=simpy.events.NORMAL + 1)


def _union_length(intervals: list[tuple[int, int]]) -> int:
    total = 0
    end = -1
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def compiled_engine_cached() -> bool:
    """Whether numba's on-disk cache holds the compiled event loop (False on a first run), or
    numba cannot tell (then True: nothing is to be gained from compiling it elsewhere)."""
    try:
        index = pipeline_kernel._cache._cache_file._index_path   # numba internals, hence guarded
    except AttributeError:
        return True
    return os.path.exists(index)


def check_engine(engine) -> str:
    """``engine`` if it names an implementation of the event model, else a ConfigError."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def simulate_pipeline(units: list[str], service: list[np.ndarray], capacities: list[int],
                      alloc: list[np.ndarray] | None = None, free: list[np.ndarray] | None = None,
                      load_cycles: int = 0, load_unit: str | None = None, prefetch_cycles: int = 0,
                      dram_units: tuple[int, ...] = (), shared_dram: bool = False,
                      engine: str = "compiled") -> PassTiming:
    """Run one pass through a linear pipeline.

    Parameters
    ----------
    units : unit names, upstream first.
    service : per unit, int64 array of cycles for each work unit (all equal length).
    capacities : bytes of the buffer after each unit except the last.
    alloc, free : per buffer, int64 bytes each work unit takes when its producer
        starts it, and frees when its consumer finishes it (``free`` defaults to
        ``alloc``; without ``alloc`` every work unit takes one byte).
    load_cycles : cycles spent loading kernels and biases before any work unit
        starts; charged as busy to ``load_unit`` and as a weight stall to the others.
    prefetch_cycles : the next pass's load, issued on the first unit right after
        its last work unit (a second kernel bank). The pass still ends when its
        last work unit drains; the part of the load done by then is busy time of
        the first unit, the rest is returned as ``carry_cycles``.
    dram_units : indices of the units that move data to or from DRAM, read side
        first; their transfers (and the load and prefetch) make up ``dram_busy_cycles``.
    shared_dram : those units take turns on one interface (else each has its own).
    engine : ``"compiled"`` (the compiled event loop) or ``"simpy"`` (the simpy
        processes); both implement the same model and give identical results. A shared
        interface with more than one unit asking on the read side (the prefetch counts
        as the first unit) or on the write side always runs in simpy, whose request
        order decides ties between equals.

    Returns
    -------
    PassTiming with total cycles (load + pipeline drain) and per-unit stats.
    """
    check_engine(engine)
    if engine == "compiled" and _compiled_covers(len(units), prefetch_cycles, dram_units, shared_dram):
        return _simulate_compiled(units, service, capacities, alloc, free, load_cycles, load_unit,
                                  prefetch_cycles, dram_units, shared_dram)
    return _simulate_simpy(units, service, capacities, alloc, free, load_cycles, load_unit,
                           prefetch_cycles, dram_units, shared_dram)


def _priorities(dram_units: tuple[int, ...]) -> dict[int, int]:
    return {k: (_READ_FIRST if r == 0 else _WRITE) for r, k in enumerate(dram_units)}


def _compiled_covers(n_units: int, prefetch_cycles: int, dram_units: tuple[int, ...], shared_dram: bool) -> bool:
    """Whether no two requesters of the shared interface can tie on (cycle, priority)."""
    if not (shared_dram and dram_units):
        return True
    prio = _priorities(dram_units)
    readers = {k for k, p in prio.items() if p == _READ_FIRST} | ({0} if prefetch_cycles else set())
    writers = {k for k, p in prio.items() if p == _WRITE}
    return len(readers) <= 1 and len(writers) <= 1 and all(0 <= k < n_units for k in prio)


def _finish(units: list[str], stats: list[UnitStats], total: int, load_cycles: int,
            load_unit: str | None) -> None:
    for name, st in zip(units, stats):
        if name == load_unit:
            st.busy += load_cycles
        else:
            st.stall_weights += load_cycles
        st.idle = total - (st.busy + st.stall_input + st.stall_output + st.stall_dram + st.stall_weights)


def _simulate_compiled(units, service, capacities, alloc, free, load_cycles, load_unit,
                       prefetch_cycles, dram_units, shared_dram) -> PassTiming:
    n_units = len(units)
    n_items = len(service[0]) if service else 0
    # NOTE: fixed dtypes and layouts so that the kernel compiles once.
    serv = np.empty((n_units, n_items), dtype=np.int64)
    for k, a in enumerate(service):
        serv[k] = a
    nb = max(n_units - 1, 0)
    al = np.ones((nb, n_items), dtype=np.int64)
    if alloc is not None:
        for k in range(nb):
            al[k] = alloc[k]
    fr = al
    if free is not None:
        fr = np.empty((nb, n_items), dtype=np.int64)
        for k in range(nb):
            fr[k] = free[k]
    caps = np.zeros(nb, dtype=np.int64)
    caps[:] = [int(c) for c in capacities[:nb]]
    has_bus = bool(shared_dram and dram_units)
    on_dram = np.zeros(n_units, dtype=np.int64)
    on_dram[list(dram_units)] = 1
    on_bus = on_dram if has_bus else np.zeros(n_units, dtype=np.int64)
    prio = np.zeros(n_units, dtype=np.int64)
    for k, p in _priorities(dram_units).items():
        prio[k] = p
    work = np.empty((10, max(n_units, n_items * len(dram_units) + 2)), dtype=np.int64)
    acc, total, carry, dram = pipeline_kernel(serv, al, fr, caps, int(load_cycles), int(prefetch_cycles),
                                              on_bus, on_dram, prio, has_bus, bool(dram_units), work,
                                              np.empty((n_units, 4), dtype=np.int64), np.empty(n_units, dtype=np.bool_))
    rows = acc.tolist()
    stats = [UnitStats(r[0], r[1], r[2], r[3]) for r in rows]
    _finish(units, stats, int(total), int(load_cycles), load_unit)
    return PassTiming(cycles=int(total), units=dict(zip(units, stats)), carry_cycles=int(carry),
                      dram_busy_cycles=int(dram))


def _simulate_simpy(units, service, capacities, alloc, free, load_cycles, load_unit,
                    prefetch_cycles, dram_units, shared_dram) -> PassTiming:
    n_units = len(units)
    n_items = len(service[0]) if service else 0
    if alloc is None:
        alloc = [np.ones(n_items, dtype=np.int64) for _ in range(n_units - 1)]
    if free is None:
        free = alloc
    env = simpy.Environment()
    stats = [UnitStats() for _ in units]
    finish = [0] * n_units
    done = [0] * n_units                       # work units each unit has finished
    level = [0] * max(n_units - 1, 0)          # bytes held in each buffer
    caps = [int(c) for c in capacities]
    in_wait: list = [None] * n_units           # (work unit, event): waiting for upstream
    room_wait: list = [None] * n_units         # (bytes, event): waiting for room downstream
    running: list = [None] * n_units           # (work unit, timeout): the work unit in progress
    bus = _Bus(env) if shared_dram and dram_units else None
    read_unit = dram_units[0] if dram_units else -1
    on_bus = [bus is not None and k in dram_units for k in range(n_units)]
    priority = _priorities(dram_units)
    transfers: list[tuple[int, int]] = []
    on_dram = [k in dram_units for k in range(n_units)]

    def unit(k: int):
        st = stats[k]
        durations = service[k].tolist()
        sizes = alloc[k].tolist() if k < n_units - 1 else None
        freed = free[k - 1].tolist() if k > 0 else None
        cap = caps[k] if k < n_units - 1 else 0
        stall_in = stall_out = stall_bus = busy = 0
        for i in range(n_items):
            if k > 0 and done[k - 1] <= i:
                t0 = env.now
                run = running[k - 1]
                if run is not None and run[0] == i:
                    # NOTE: the upstream unit is working on item i: wait on its own timeout
                    # (one event for both; its callback, registered first, finishes the item first).
                    yield run[1]
                else:
                    ev = env.event()
                    in_wait[k] = (i, ev)
                    yield ev
                stall_in += env.now - t0
            if sizes is not None:
                need = sizes[i]
                if level[k] and level[k] + need > cap:
                    t1 = env.now
                    ev = env.event()
                    room_wait[k] = (need, ev)
                    yield ev
                    stall_out += env.now - t1
                level[k] += need
            d = durations[i]
            if d:
                if on_bus[k]:
                    t2 = env.now
                    grant = bus.request(priority[k])
                    if grant is not None:
                        yield grant
                        stall_bus += env.now - t2
                if on_dram[k]:
                    transfers.append((env.now, env.now + d))
                tick = env.timeout(d)
                running[k] = (i, tick)
                yield tick
                running[k] = None
                busy += d
                if on_bus[k]:
                    bus.release()
            done[k] = i + 1
            if k > 0:
                b = k - 1
                level[b] -= freed[i]
                w = room_wait[b]
                if w is not None and (not level[b] or level[b] + w[0] <= caps[b]):
                    room_wait[b] = None
                    w[1].succeed()
            if k < n_units - 1:
                w = in_wait[k + 1]
                if w is not None and w[0] < i + 1:
                    in_wait[k + 1] = None
                    w[1].succeed()
        finish[k] = env.now
        st.busy, st.stall_input, st.stall_output, st.stall_dram = busy, stall_in, stall_out, stall_bus
        if k == read_unit and bus is not None and not (k == 0 and prefetch_cycles):
            bus.reads_done = True
        if k == 0 and prefetch_cycles:
            pf_start[0] = env.now
            if bus is not None:
                grant = bus.request(_READ_FIRST)
                if grant is not None:
                    yield grant
                bus.reads_done = True
            pf_start[1] = env.now
            yield env.timeout(prefetch_cycles)
            if bus is not None:
                bus.release()

    pf_start = [0, 0]      # the prefetch's request and grant times

    def start():
        if load_cycles:
            yield env.timeout(load_cycles)
        for k in range(n_units):
            env.process(unit(k))

    env.process(start())
    env.run()
    total = max(finish) if n_items else load_cycles  # finish times are absolute, load included
    if load_cycles and dram_units:
        transfers.append((0, load_cycles))
    carry = 0
    if prefetch_cycles:
        # The first unit has been free since finish[0]; the pass ends at ``total``.
        requested, granted = pf_start if n_items else (total, total)
        granted = min(granted, total)
        done_in_pass = min(prefetch_cycles, total - granted)
        stats[0].busy += done_in_pass
        stats[0].stall_dram += granted - min(requested, total)
        carry = prefetch_cycles - done_in_pass
        if done_in_pass:
            transfers.append((granted, granted + done_in_pass))
    _finish(units, stats, total, load_cycles, load_unit)
    return PassTiming(cycles=int(total), units=dict(zip(units, stats)), carry_cycles=int(carry),
                      dram_busy_cycles=_union_length(transfers))
