"""Q8.8 numerics: the sparsity-map stream codec, the numba kernels on the compressed
stream, and the plain numpy reference they are checked against (docs/numerics.md)."""
from ._codec import (SM_WORD_BITS, as_activation, as_stream, sm_words_per_row, encode, decode, check_stream,
                     compressed_row_values, compressed_size_bits, interleave)
from ._kernels import (ACT_NONE, ACT_RELU, ACT_RELU6, RELU6_MAX, activation_code, conv_accumulate, requantize,
                       conv2d, conv2d_accumulators, maxpool, avgpool, add, fc, fc_accumulators, PairTable, pair_table,
                       pair_table_shape, PAIR_TABLE_VERSION)
from ._reference import (blas_conv2d_accumulators, ref_conv2d_accumulators, ref_conv2d, ref_maxpool, ref_avgpool, ref_add, ref_fc,
                         release_work_arrays)

__all__ = ["release_work_arrays", "ACT_NONE", "blas_conv2d_accumulators", "ACT_RELU", "ACT_RELU6", "RELU6_MAX", "SM_WORD_BITS", "activation_code", "add",
           "as_activation", "as_stream", "avgpool", "check_stream", "compressed_row_values", "compressed_size_bits",
           "conv2d", "conv2d_accumulators", "conv_accumulate", "decode", "encode", "fc", "fc_accumulators", "interleave", "maxpool", "PairTable", "pair_table", "pair_table_shape", "PAIR_TABLE_VERSION",
           "ref_add", "ref_avgpool", "ref_conv2d", "ref_conv2d_accumulators", "ref_fc", "ref_maxpool", "requantize",
           "sm_words_per_row"]
