/*
 * quantize/quant.h - ggml block quantization: quantize and dequantize rows,
 * byte-for-byte what ggml's reference quantizers produce.
 *
 * A row of n_per_row floats becomes n_per_row / block_size blocks of the
 * type's layout (each layout is drawn in quantize/quant_impl.h). Rows are
 * independent, so callers may split them across threads in any way and get
 * the same bytes.
 *
 * Importance weights (imatrix): one non-negative float per column of the row
 * (n_per_row values), or NULL. As in ggml, the legacy and K types use their
 * plain reference quantizers when no weights are given and their weighted
 * search when weights are given; Q8_0 ignores weights; IQ4_NL and IQ4_XS
 * always use their search (with unit weights when none are given).
 *
 * Speed: on x86-64 CPUs with AVX2 or AVX-512 (found at run time with
 * CPUID; builds assume neither) the searches run 8 or 16 groups of weights
 * in the lanes of a vector, every lane doing the scalar reference's float
 * operations in the same order, so each level writes the same bytes
 * (docs/simd.md). QF_NO_SIMD=1 in the environment, read once at the first
 * call, forces the scalar reference. The SIMD row quantizers use up to
 * about 40 KiB of stack.
 */
#ifndef QF_QUANT_H
#define QF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/types.h"

/* 1 if qforge can quantize F32 rows to ggml type `type` (F32, F16 and BF16
 * included: plain conversions), else 0. */
int qf_quant_can_quantize(int type);

/* 1 if qforge can dequantize rows of ggml type `type` to F32. */
int qf_quant_can_dequantize(int type);

/*
 * Quantize nrows rows of n_per_row floats (src, row-major, contiguous) into
 * dst (caller's buffer of nrows * row_size(type, n_per_row) bytes; no
 * alignment needed). `imatrix` is NULL or n_per_row weights, the same for
 * every row (for F32/F16/BF16 it is ignored). Returns 0, or QF_EINVAL: type
 * not supported, n_per_row <= 0 or not a multiple of the block size, nrows
 * < 0, or (quantized types only) a NaN or infinity in src or imatrix. ggml
 * would write meaningless blocks for those (and llama-quantize then refuses
 * its own output); rows before the offending one have been written.
 * Thread-safe: no shared state; concurrent calls on disjoint rows give the
 * same bytes as one call.
 */
int qf_quant_rows(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                  const float *imatrix);

/*
 * Dequantize n elements (a multiple of the block size) of type `type` from
 * src (any alignment) into dst, computing each value as ggml's
 * dequantize_row_* does. Any bytes are accepted. Returns 0 or QF_EINVAL.
 */
int qf_quant_dequantize(int type, const void *src, float *dst, int64_t n);

/*
 * Check nrows rows of `type` (n_per_row elements each, a multiple of the
 * block size) the way ggml's ggml_validate_row_data does before a quantized
 * file is written: every F32, F16 and BF16 value, and every half-precision
 * block scale (d; m or dmin where the type has one), must be finite.
 * Returns -1 when all are, else the index of the first bad row; -2 for a
 * type it does not know.
 */
int64_t qf_quant_check_rows(int type, const void *data, int64_t nrows, int64_t n_per_row);

#endif /* QF_QUANT_H */
