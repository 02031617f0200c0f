/*
 * quantize/affine.h - QFM's own integer types: affine INT4 / INT8 with a
 * scale and a bias per group of columns, and symmetric INT8 per output
 * channel (row). They are not ggml types: only QFM files carry them, by
 * name ("int4-g64"), and qforge dequantizes them for verification and
 * export.
 *
 * Names and layouts (one row of n columns; n a multiple of the group):
 *
 *   int4-g32 | int4-g64 | int4-g128      w = scale * q + bias, q in 0..15
 *     per group of G columns, in column order:
 *       +--------+--------+------------------------------+
 *       | scale  | bias   | q: G/2 bytes                 |
 *       | f16 LE | f16 LE | byte j = q[2j] | q[2j+1] << 4 |
 *       +--------+--------+------------------------------+
 *     4 + G/2 bytes per group: 5, 4.5 and 4.25 bits per weight for
 *     G = 32, 64, 128
 *
 *   int8-g32 | int8-g64 | int8-g128      w = scale * q + bias, q in 0..255
 *       | scale f16 | bias f16 | q: G bytes (unsigned) |
 *     4 + G bytes per group: 9, 8.5 and 8.25 bits per weight
 *
 *   int8-ch                              w = scale * q, q in -127..127
 *       | scale f32 LE | q: n bytes (two's complement) |
 *     4 + n bytes per row; the scale is max |w| / 127 of the row
 *
 * Quantizing a group (affine types): bias = the group's minimum rounded
 * to the nearest F16 (ties to even); scale = (max - bias) / (2^bits - 1)
 * rounded UP to an F16, so that bias + (2^bits - 1) * scale >= max and the
 * top code never clamps by more than half a step (rounding the scale to
 * nearest would lose up to (2^bits - 1) / 2 of its ulps there: many steps
 * when the scale is an F16 subnormal, i.e. for int8 groups spanning less
 * than 255 * 2^-14 ~ 0.0156). q is then computed from the stored values,
 * q = clamp(round((w - bias) / scale), 0, 2^bits - 1), round to nearest,
 * ties to even. Every value thus comes back within scale / 2 of itself,
 * plus |bias - min| (the F16 rounding of the minimum) for values below
 * the rounded bias. A constant group, or one whose values all lie at or
 * below the rounded bias, gets scale 0 (and every q 0): it comes back as
 * the F16 rounding of its minimum.
 *
 * Range: bias and scale are F16, so a group is refused (QF_EINVAL) when
 * either would round to infinity: a minimum of -65520 or below, or a spread
 * (max - bias) / (2^bits - 1) above 65504. Every group whose values lie
 * within F16's finite range (|w| <= 65504) is accepted (its spread is at
 * most 131008 / 15). int8-ch keeps an F32 scale and takes any finite row.
 *
 * int8-ch: scale = max |w| / 127 in F32 (0 for an all-zero row; one ulp
 * less when 127 * scale would overflow to infinity, for rows reaching
 * FLT_MAX), q = clamp(round(w / scale), -127, 127), ties to even: within
 * scale / 2.
 *
 * Rows are independent; the result does not depend on how rows are split
 * among threads.
 */
#ifndef QF_AFFINE_H
#define QF_AFFINE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

typedef struct qf_affine {
    int bits;  /* 4 or 8 */
    int group; /* 32, 64 or 128 columns; 0: symmetric per row (int8-ch only) */
} qf_affine;

/*
 * Parse a type name ("int4-g64", "INT8-CH", ...; case-insensitive) into *t.
 * Returns 0, or QF_EINVAL when `name` is not one of the seven types.
 */
int qf_affine_parse(const char *name, qf_affine *t);

/* The canonical (lower-case) name of t, a static string; NULL if t is not
 * one of the seven types. */
const char *qf_affine_name(qf_affine t);

/*
 * Type codes: one int that holds either a ggml type id (formats/types.h,
 * all below 64) or an affine type, so a table of tensor types (a
 * quantization plan's, convert/quantize_model.h) can hold both. The code of
 * the i-th type in the order int4-g32, int4-g64, int4-g128, int8-g32,
 * int8-g64, int8-g128, int8-ch is QF_AFFINE_CODE_BASE + i.
 */
#define QF_AFFINE_CODE_BASE 1024
#define QF_AFFINE_CODE_COUNT 7

/* The code of t, or -1 if t is not one of the seven types. */
int qf_affine_code(qf_affine t);

/* 1 and *t set if `code` is an affine type code, else 0 (*t untouched). */
int qf_affine_from_code(int code, qf_affine *t);

/* Bytes of one row of n columns, or 0 when t is invalid, n <= 0 or n is
 * not a multiple of t's group. */
uint64_t qf_affine_row_size(qf_affine t, int64_t n);

/*
 * Quantize nrows rows of n floats (src, row-major) into dst (caller's
 * buffer of nrows * qf_affine_row_size(t, n) bytes, any alignment).
 * Returns 0, or QF_EINVAL: t invalid, n not a multiple of the group, a
 * NaN or infinity in src, or a group out of F16 range (see above). Rows
 * before the offending one have been written; its own bytes are undefined.
 */
int qf_affine_quantize(qf_affine t, const float *src, void *dst, int64_t nrows, int64_t n);

/*
 * Dequantize nrows rows of n columns from src (any alignment, any bytes)
 * into dst (nrows * n floats). Returns 0 or QF_EINVAL (t invalid, n not a
 * multiple of the group).
 */
int qf_affine_dequantize(qf_affine t, const void *src, float *dst, int64_t nrows, int64_t n);

#endif /* QF_AFFINE_H */
