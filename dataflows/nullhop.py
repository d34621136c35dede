"""``nullhop``: the published NullHop dataflow.

Zero activations are skipped: they never leave the sparsity-map + non-zero
stream, so they cost no MAC cycle [P] (docs/sources.md §N1), and activations
move compressed [C]; kernels are stored and moved raw [C]. One kernel bank:
each pass loads its kernels before it computes.
"""
from ._protocol import DataflowTraits, register
from ._stripe import StripeDataflow

NULLHOP = register(StripeDataflow(
    "nullhop", "NullHop: skips zero activations, compressed feature maps, raw kernels",
    DataflowTraits(skip_activations=True, skip_weights=False, compressed_activations=True,
                   compressed_weights=False)))
