"""``nullhop-prefetch``: NullHop with a second kernel-memory bank.

NullHop loads each pass's kernels, biases and configuration before the pass
computes, and the whole array waits for it. With two banks per MAC the next
pass's load goes into the idle bank while the current pass runs: the DMA
read channel issues it right after its last input transfer of the current
pass, and the next pass waits only for whatever part of the load is not done
when the current pass has drained. The first pass of a layer still loads
serially. **Assumption**: a design variant, not a published NullHop feature;
each bank has ``memory.kernel_memory_words_per_mac`` words, so the kernel
memory doubles in area (docs/architecture.md §8).
"""
from ._protocol import DataflowTraits, register
from ._stripe import StripeDataflow

NULLHOP_PREFETCH = register(StripeDataflow(
    "nullhop-prefetch", "NullHop with two kernel banks: the next pass's kernels load while this pass computes",
    DataflowTraits(skip_activations=True, skip_weights=False, compressed_activations=True,
                   compressed_weights=False, kernel_banks=2)))
