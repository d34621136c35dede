"""``dense``: the baseline that skips nothing.

Every pixel and every weight costs a MAC cycle; activations and kernels move
uncompressed. The same MAC array, memories and DMA as NullHop, so it isolates
what zero-skipping buys (docs/architecture.md §8).
"""
from ._protocol import DataflowTraits, register
from ._stripe import StripeDataflow

DENSE = register(StripeDataflow(
    "dense", "dense baseline: no zero skipping, uncompressed activations and kernels",
    DataflowTraits(skip_activations=False, skip_weights=False, compressed_activations=False,
                   compressed_weights=False)))
