"""``combined``: NullHop's activation skipping and RSNN-style weight skipping together.

A MAC cycle is spent only on a non-zero pixel times a non-zero weight;
activations and kernels both move in sparsity-map form (**Assumption**,
docs/architecture.md §8).
"""
from ._protocol import DataflowTraits, register
from ._stripe import StripeDataflow

COMBINED = register(StripeDataflow(
    "combined", "NullHop + RSNN-style: skips zero activations and zero weights, everything compressed",
    DataflowTraits(skip_activations=True, skip_weights=True, compressed_activations=True,
                   compressed_weights=True)))
