"""``rsnn``: RSNN-style weight skipping on raw activations.

Processing units (PUs) own output-channel slots and skip zero-weight taps
from a compile-time schedule; kernels move in sparsity-map form; activations
move raw and zero pixels cost cycles. RSNN's internals are unpublished, so
every choice here is an **Assumption** built from the concepts of its
abstract (docs/sources.md §R2, §R4; docs/architecture.md §8).
"""
from ._protocol import DataflowTraits, register
from ._stripe import StripeDataflow

RSNN = register(StripeDataflow(
    "rsnn", "RSNN-style: skips zero weights on load-balanced PUs, compressed kernels, raw feature maps",
    DataflowTraits(skip_activations=False, skip_weights=True, compressed_activations=False,
                   compressed_weights=True)))
