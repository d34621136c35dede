"""A small layer's timeline, written out by hand cycle by cycle, against both timing models.

The equality suite proves the event model and the clock-stepped reference agree;
it cannot see a cost both get wrong the same way (say, a decoder that takes two
cycles per element in both). Here every unit's work is counted by hand from the
data and docs/architecture.md §3-§4, and the whole timeline, with a stall on a
full output buffer and one on the shared DRAM interface, is laid out below.

Layer: 1x1 conv, 16 -> 16 channels, ReLU, input 4 x 2 x 16 (compressed: it follows
another conv). Mapping (§2): m = 8 lanes of 2 channels each, 16 output channels,
128 MAC slots, one pass. Stripes: output rows 0-1 (s0) and 2-3 (s1). With
``array.handoff_columns = 1`` and ``array.min_handoffs_per_stripe = 1`` each stripe
has two work units, output column 0 (c0) and column 1 (c1); for a 1x1 kernel input
column x feeds chunk x.

Data (rows of 2 columns x 16 channels; one SM word starts in each column):

* input row 0: col 0 channels 0,1,2, col 1 channel 5; row 1: col 0 none, col 1
  channels 0..7; rows 2 and 3: every pixel non-zero.
* output row 0: col 0 all 16 non-zero, col 1 none; row 1: col 0 one, col 1 two;
  rows 2 and 3: all zero.

Per work unit (cycles; DMA: 8 B/cycle, latency 5, no register beats):

=====  ===========================  ===============  ==========  ======  ==================  ===========
item   DMA read                     decoder (rate 1)  MAC         PRE     encoder (rate 2)    DMA write
=====  ===========================  ===============  ==========  ======  ==================  ===========
s0c0   5 + (3+5 beats x 8 B)/8 = 13  max(3+1, 0+1) = 4  lane 0: 2   2+4=6   ceil((17+2)/2) = 10  5 + 80/8 = 15
s0c1   0                            max(1+1, 8+1) = 9  lane 2: 3   6       ceil((1+3)/2) = 2    96/8 - 10 = 2
s1c0   5 + (17+17 beats x 8)/8 = 39  max(17, 17) = 17  4           6       ceil(2/2) = 1        5 + 16/8 = 7
s1c1   0                            17                 4           6       1                    0
=====  ===========================  ===============  ==========  ======  ==================  ===========

PRE: 2 rows x 1 column x 1 word + the adder tree log2(8) + 1 = 4. DMA write: a
row's beats go to the chunk that completes them (row 0: 17 then 18 elements ->
9, 0 beats; row 1: 2 then 5 -> 1, 2 beats). Load: 64 bias beats + 128 slots x 1
kernel beat = 192 beats = 1536 B -> 5 + 192 = 197 cycles.

Output buffer: 40 bytes; work units take 2 x encoded elements = 38, 8, 4, 4 bytes.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from dataflows import AcceleratorConfig, schedule_network, with_overrides
from simulator.engine import ENGINES, time_layer
from simulator.oracle import clocked_layer
from workloads import NetworkBuilder

#: The event model under each of its engines, and the clock-stepped reference.
MODELS = [functools.partial(time_layer, engine=e) for e in ENGINES] + [clocked_layer]
MODEL_IDS = [f"event-{e}" for e in ENGINES] + ["clocked"]

OVERRIDES = {"array.handoff_columns": 1, "array.min_handoffs_per_stripe": 1, "dma.latency_cycles": 5,
             "dma.config_beats_per_pass": 0, "memory.output_buffer_kib": 40 / 1024}


def _case(interface: str):
    cfg = with_overrides(AcceleratorConfig(), {**OVERRIDES, "dma.interface": interface})
    b = NetworkBuilder("timeline", (4, 2, 16))
    b.conv("prev", 16, 1)
    b.conv("layer", 16, 1, activation="relu")
    sched = next(s for s in schedule_network(b.build(), cfg) if s.layer.name == "layer")
    x = np.zeros((4, 2, 16), dtype=np.int16)
    x[0, 0, [0, 1, 2]] = 7
    x[0, 1, 5] = 7
    x[1, 1, 0:8] = 7
    x[2:4] = 3
    out = np.zeros((4, 2, 16), dtype=np.int16)
    out[0, 0, :] = 1
    out[1, 0, 3] = 1
    out[1, 1, [4, 9]] = 1
    return sched, x, out, cfg


# Timeline on one shared DRAM interface (start and end cycles, [start, end)):
#   load                      [0, 197): DMA read busy, every other unit stall_weights
#   DMA read   s0c0 [197,210)  s0c1 at 210 (0)   s1c0 [210,249) (the image is resident, no wait)
#   decoder    s0c0 [210,214)  s0c1 [214,223)    s1c0 waits 223..249, [249,266)   s1c1 [266,283)
#   MAC        s0c0 [214,216)  s0c1 [223,226)    s1c0 [266,270)                   s1c1 [283,287)
#   PRE        s0c0 [216,222)  s0c1 [226,232)    s1c0 [270,276)                   s1c1 [287,293)
#   encoder    s0c0 [222,232) takes 38 of the 40 buffer bytes; s0c1 (8 bytes) is ready at 232
#              but waits for room until DMA write frees s0c0 at 264 (full buffer: 32 cycles),
#              [264,266); s1c0 [276,277); s1c1 [293,294)
#   DMA write  s0c0 ready at 232, but the read of s1c0 holds the interface until 249
#              (DRAM stall: 17 cycles), [249,264); s0c1 [266,268); s1c0 [277,284); s1c1 0 at 294
SHARED = {
    "dma_read": dict(busy=197 + 13 + 39, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=45),
    "decoder": dict(busy=4 + 9 + 17 + 17, stall_input=13 + 26, stall_output=0, stall_dram=0, stall_weights=197,
                    idle=11),
    "mac_array": dict(busy=2 + 3 + 4 + 4, stall_input=17 + 7 + 40 + 13, stall_output=0, stall_dram=0,
                      stall_weights=197, idle=7),
    "pre": dict(busy=4 * 6, stall_input=19 + 4 + 38 + 11, stall_output=0, stall_dram=0, stall_weights=197, idle=1),
    "encoder": dict(busy=10 + 2 + 1 + 1, stall_input=25 + 10 + 16, stall_output=32, stall_dram=0,
                    stall_weights=197, idle=0),
    "dma_write": dict(busy=15 + 2 + 7, stall_input=35 + 2 + 9 + 10, stall_output=0, stall_dram=17,
                      stall_weights=197, idle=0),
}

# On separate channels the write of s0c0 runs [232,247) at once; the encoder then waits
# 232..247 only, s0c1 is encoded [247,249) and written [249,251); stripe s1 is unchanged.
SEPARATE_CHANGES = {
    "encoder": dict(stall_output=15, stall_input=25 + 27 + 16),
    "dma_write": dict(stall_input=35 + 2 + 26 + 10, stall_dram=0),
}


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
def test_hand_timeline_on_a_shared_dram_interface(model):
    sched, x, out, cfg = _case("shared")
    t = model(sched, x, out, cfg)
    assert t.cycles == 294
    assert {u: s.as_dict() for u, s in t.units.items()} == SHARED
    assert t.dram_busy_cycles == 197 + 13 + 39 + 15 + 2 + 7      # one transfer at a time
    assert t.handoff_columns == 1 and t.resident
    assert t.dram_read_bytes == {"activations": (8 + 34) * 8, "weights": 128 * 8, "biases": 64 * 8, "config": 0}
    assert t.dram_write_bytes == {"activations": (12 + 2) * 8}
    assert t.mac_ops == (3 + 1 + 8 + 64) * 16                    # non-zero pixels x output channels


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
def test_hand_timeline_on_separate_dram_channels(model):
    sched, x, out, cfg = _case("separate")
    t = model(sched, x, out, cfg)
    expect = {u: {**d, **SEPARATE_CHANGES.get(u, {})} for u, d in SHARED.items()}
    assert t.cycles == 294
    assert {u: s.as_dict() for u, s in t.units.items()} == expect
    # Busy intervals overlap now: [0,249) read side, write [232,247), [249,251), [277,284).
    assert t.dram_busy_cycles == 251 + 7
