"""Pass plans: which output channels each MAC slot and PU computes.

The RSNN-style dataflows are **Assumptions** built from the concepts of the
RSNN abstract (docs/sources.md §R2, §R4): processing units (PUs) that own output
channels, a compile-time schedule of non-zero weights instead of mux-based
selection, load-balance-aware pruning (offline, ``workloads``) and kernel
merging (here).

A *pass plan* lists, for one pass, the groups of output channels that share a
MAC slot group (``m`` MACs, one per input-channel lane) and the PU of each
group. Without kernel merging every group holds one channel, in channel order
(NullHop's own assignment [C]). With kernel merging (**Assumption**, our
reading of RSNN's "kernel merging"), compressed sparse kernels are packed so
that the fewest passes hold them all: starting from the kernel-memory bound,
kernels are placed heaviest first on the least-loaded slot group that still
has kernel memory for them (a slot group then computes several output
channels one after the other); then each pass's groups are spread over the
PUs longest-processing-time first with equal group counts, so PU loads even
out. Fewer passes mean fewer input re-reads and kernel-load latencies.
Plain Python over dataclasses and numpy: no timing here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workloads import MappingError

from ._mapping import LayerMapping

__all__ = ["PassPlan", "plan_passes", "kernel_lane_sizes"]

@dataclass(frozen=True)
class PassPlan:
    """Output channels of one pass, grouped per MAC slot group, with PU owners.

    ``channels[group_ptr[g]:group_ptr[g+1]]`` are the output channels of group
    ``g``; its ``m`` MAC slots (slot ``g*m + lane``) belong to the PUs
    ``slot_pu[g*m : (g+1)*m]``.
    """

    channels: np.ndarray   # int64, output channel indices
    group_ptr: np.ndarray  # int64, len = groups + 1
    slot_pu: np.ndarray    # int64, len = groups * m

    @property
    def count(self) -> int:
        """Output channels computed in this pass."""
        return int(len(self.channels))

    @property
    def groups(self) -> int:
        """MAC slot groups used (each of ``m`` MACs)."""
        return int(len(self.group_ptr) - 1)


def kernel_lane_sizes(weights: np.ndarray, mapping: LayerMapping, sm_word_pixels: int = 16) -> np.ndarray:
    """Compressed kernel-memory words of each (output channel, lane).

    A lane holds ``channels_per_lane`` input channels x kh x kw weights, stored
    as SM words plus non-zero values (**Assumption**: weights use the same
    sparsity-map format as activations). Returns int64 ``(C_out, m)``.
    """
    cout = weights.shape[0]
    flat = (weights.reshape(cout, -1, weights.shape[3]) != 0)  # (cout, kh*kw, cin_g)
    cin = mapping.conv_in_channels
    groups = mapping.groups
    cin_g = cin // groups
    m = mapping.m
    per_lane = mapping.channels_per_lane
    out = np.zeros((cout, m), dtype=np.int64)
    taps = flat.shape[1]
    for lane in range(m):
        lo, hi = lane * per_lane, min(cin, (lane + 1) * per_lane)
        if lane == m - 1:
            hi = cin
        if hi <= lo:
            continue
        # Block-diagonal: channel c of kernel k is a real weight only in k's group.
        nnz = np.zeros(cout, dtype=np.int64)
        for k in range(cout):
            g = k // (cout // groups)
            c0, c1 = max(lo, g * cin_g), min(hi, (g + 1) * cin_g)
            if c1 > c0:
                nnz[k] = int(flat[k, :, c0 - g * cin_g:c1 - g * cin_g].sum())
        out[:, lane] = math.ceil((hi - lo) * taps / sm_word_pixels) + nnz
    return out


def _default_plans(mapping: LayerMapping, macs_per_pu: int) -> list[PassPlan]:
    plans = []
    for p in range(mapping.passes):
        first, count = mapping.pass_channels(p)
        g = np.arange(count, dtype=np.int64)
        plans.append(PassPlan(channels=first + g, group_ptr=np.arange(count + 1, dtype=np.int64),
                              slot_pu=np.arange(count * mapping.m, dtype=np.int64) // macs_per_pu))
    return plans


def plan_passes(mapping: LayerMapping, *, num_macs: int, num_pus: int, kernel_memory_words: int,
                merging: bool = False, weights: np.ndarray | None = None,
                work: np.ndarray | None = None) -> list[PassPlan]:
    """Pass plans of a mapped layer.

    Parameters
    ----------
    mapping : the layer's :class:`LayerMapping`.
    num_macs, num_pus : MAC array size and number of PUs (``num_macs % num_pus == 0``).
    kernel_memory_words : kernel memory per MAC, 16-bit words.
    merging : pack sparse kernels into shared slot groups (needs ``weights``).
    weights : int16 ``(C_out, kh, kw, C_in/groups)``; required for merging.
    work : optional per-output-channel work estimate (e.g. non-zero weights) used to
        balance PUs when merging; defaults to the compressed sizes.
    """
    if num_pus < 1 or num_macs % num_pus:
        raise MappingError(f"array.num_pus must divide the {num_macs} MACs, got {num_pus!r}")
    macs_per_pu = num_macs // num_pus
    if not merging:
        return _default_plans(mapping, macs_per_pu)
    if mapping.m > macs_per_pu:
        raise MappingError(f"kernel merging keeps the m={mapping.m} MACs of a kernel group in one PU, but "
                           f"array.num_pus={num_pus} leaves only {macs_per_pu} MACs per PU")
    if weights is None:
        raise MappingError("kernel merging needs the layer's weights")
    sizes = kernel_lane_sizes(weights, mapping)           # (cout, m)
    cost = sizes.max(axis=1)
    if np.any(cost > kernel_memory_words):
        k = int(np.argmax(cost))
        raise MappingError(f"output channel {k} needs {int(cost[k])} kernel-memory words per MAC, more than "
                           f"memory.kernel_memory_words_per_mac={kernel_memory_words}")
    load = cost if work is None else np.asarray(work, dtype=np.int64)
    n_kernels = len(cost)
    groups_per_pass = num_macs // mapping.m
    # Fewest passes whose slot groups can hold every kernel: start from the memory
    # bound and add a pass whenever longest-processing-time placement fails.
    passes = max(1, math.ceil(int(cost.sum()) / (groups_per_pass * kernel_memory_words)))
    order = sorted(range(n_kernels), key=lambda k: (-int(load[k]), -int(cost[k]), k))
    while True:
        n_groups = passes * groups_per_pass
        members: list[list[int]] = [[] for _ in range(n_groups)]
        fill = np.zeros((n_groups, mapping.m), dtype=np.int64)
        gload = np.zeros(n_groups, dtype=np.int64)
        placed = True
        for k in order:
            fits = np.all(fill + sizes[k] <= kernel_memory_words, axis=1)
            if not fits.any():
                placed = False
                break
            # Least-loaded group with room (ties: fewest kernels, lowest index).
            cand = np.flatnonzero(fits)
            gi = int(cand[np.lexsort((cand, [len(members[i]) for i in cand], gload[cand]))[0]])
            members[gi].append(k)
            fill[gi] += sizes[k]
            gload[gi] += int(load[k])
        if placed:
            break
        passes += 1
    groups_per_pu = max(1, macs_per_pu // mapping.m)
    plans = []
    for p in range(passes):
        chunk = [sorted(g) for g in members[p * groups_per_pass:(p + 1) * groups_per_pass] if g]
        if not chunk:
            continue
        gl = [int(load[g].sum()) for g in chunk]
        # Balanced-cardinality LPT: heaviest group to the least-loaded PU with room.
        pu_load = [0] * num_pus
        pu_n = [0] * num_pus
        owner = [0] * len(chunk)
        for gi in sorted(range(len(chunk)), key=lambda i: (-gl[i], i)):
            pu = min((q for q in range(num_pus) if pu_n[q] < groups_per_pu), key=lambda q: (pu_load[q], q))
            owner[gi] = pu
            pu_load[pu] += gl[gi]
            pu_n[pu] += 1
        chans = [np.asarray(g, dtype=np.int64) for g in chunk]
        ptr = np.concatenate(([0], np.cumsum([len(c) for c in chans]))).astype(np.int64)
        plans.append(PassPlan(channels=np.concatenate(chans), group_ptr=ptr,
                              slot_pu=np.repeat(np.asarray(owner, dtype=np.int64), mapping.m)))
    return plans
