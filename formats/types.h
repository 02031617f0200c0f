/*
 * formats/types.h - element types, ggml tensor types, and exact conversions.
 *
 * Two families of types pass through qforge:
 *
 *  1. Element types (qf_dtype): one value per element, as safetensors and
 *     PyTorch store them. Each has a fixed size in bytes. Conversions to and
 *     from F32 are exact where the value fits, and otherwise documented below.
 *
 *  2. ggml types (qf_ggml_type): the tensor types of GGUF, with the numeric
 *     ids ggml uses on disk. Quantized types store blocks of `block_size`
 *     elements in `type_size` bytes; a row length must be a multiple of the
 *     block size. Every id ggml has assigned is known here, even the ones
 *     qforge cannot compute, so files holding them can be listed and copied.
 *
 *     id  name      block  bytes      id  name      block  bytes
 *      0  F32           1      4      20  IQ4_NL       32     18
 *      1  F16           1      2      21  IQ3_S       256    110
 *      2  Q4_0         32     18      22  IQ2_S       256     82
 *      3  Q4_1         32     20      23  IQ4_XS      256    136
 *      6  Q5_0         32     22      24  I8            1      1
 *      7  Q5_1         32     24      25  I16           1      2
 *      8  Q8_0         32     34      26  I32           1      4
 *      9  Q8_1         32     36      27  I64           1      8
 *     10  Q2_K        256     84      28  F64           1      8
 *     11  Q3_K        256    110      29  IQ1_M       256     56
 *     12  Q4_K        256    144      30  BF16          1      2
 *     13  Q5_K        256    176      34  TQ1_0       256     54
 *     14  Q6_K        256    210      35  TQ2_0       256     66
 *     15  Q8_K        256    292      39  MXFP4        32     17
 *     16  IQ2_XXS     256     66
 *     17  IQ2_XS      256     74      ids 4, 5, 31-33 and 36-38 were
 *     18  IQ3_XXS     256     98      assigned once and removed; they are
 *     19  IQ1_S       256     50      rejected as unknown.
 *
 * Rounding: F32 -> F16 and F32 -> BF16 round to nearest, ties to even.
 * F16 keeps subnormals (IEEE binary16, like numpy's astype(float16)).
 * BF16 follows what llama.cpp's converter and ggml write: round to nearest
 * even (F32 subnormals included), NaN becomes a quiet NaN keeping sign and
 * top payload bits, overflow rounds to infinity.
 */
#ifndef QF_TYPES_H
#define QF_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------
 * Element types
 * ------------------------------------------------------------------- */

typedef enum qf_dtype {
    QF_DTYPE_INVALID = 0,
    QF_DTYPE_F64,
    QF_DTYPE_F32,
    QF_DTYPE_F16,
    QF_DTYPE_BF16,
    QF_DTYPE_F8_E4M3,   /* e4m3fn: no infinities, S.1111.111 is NaN, max 448 */
    QF_DTYPE_F8_E5M2,   /* IEEE-like: infinities and NaNs, max 57344 */
    QF_DTYPE_I8,
    QF_DTYPE_I16,
    QF_DTYPE_I32,
    QF_DTYPE_I64,
    QF_DTYPE_U8,
    QF_DTYPE_U16,
    QF_DTYPE_U32,
    QF_DTYPE_U64,
    QF_DTYPE_BOOL,      /* one byte, 0 or 1 */
    QF_DTYPE_COUNT
} qf_dtype;

/* Size of one element in bytes; 0 for QF_DTYPE_INVALID or out of range. */
size_t qf_dtype_size(qf_dtype t);

/* Safetensors spelling ("F32", "BF16", "F8_E4M3", "BOOL", ...); "?" if bad. */
const char *qf_dtype_name(qf_dtype t);

/* Parse a safetensors dtype name (exact, case-sensitive); QF_DTYPE_INVALID
 * when unknown. `len` is the length of `name` (it need not be NUL-ended). */
qf_dtype qf_dtype_from_name(const char *name, size_t len);

/*
 * Convert n elements of type `t` at `src` (any alignment, little-endian) to
 * F32 in `dst`. Integers convert as (float)value (rounded to nearest for
 * magnitudes above 2^24); BOOL gives 0 or 1 (any non-zero byte is true).
 * Returns 0, or QF_EINVAL for an invalid type.
 */
int qf_dtype_to_f32(qf_dtype t, const void *src, float *dst, size_t n);

/*
 * Convert n F32 values to type `t` at `dst` (little-endian). F16 and BF16
 * round as described at the top. Integer targets round to nearest even and
 * saturate; NaN becomes 0. F8 targets round to nearest even and saturate to
 * the largest finite value (E4M3) or become infinity (E5M2). BOOL is x != 0.
 * Returns 0, or QF_EINVAL for an invalid type.
 */
int qf_f32_to_dtype(qf_dtype t, const float *src, void *dst, size_t n);

/* Scalar conversions used by the bulk ones (exposed for quantizers). */
float qf_f16_to_f32(uint16_t h);
uint16_t qf_f32_to_f16(float f);
float qf_bf16_to_f32(uint16_t h);
uint16_t qf_f32_to_bf16(float f);

/* ---------------------------------------------------------------------
 * ggml types
 * ------------------------------------------------------------------- */

typedef enum qf_ggml_type {
    QF_GGML_F32 = 0,
    QF_GGML_F16 = 1,
    QF_GGML_Q4_0 = 2,
    QF_GGML_Q4_1 = 3,
    QF_GGML_Q5_0 = 6,
    QF_GGML_Q5_1 = 7,
    QF_GGML_Q8_0 = 8,
    QF_GGML_Q8_1 = 9,
    QF_GGML_Q2_K = 10,
    QF_GGML_Q3_K = 11,
    QF_GGML_Q4_K = 12,
    QF_GGML_Q5_K = 13,
    QF_GGML_Q6_K = 14,
    QF_GGML_Q8_K = 15,
    QF_GGML_IQ2_XXS = 16,
    QF_GGML_IQ2_XS = 17,
    QF_GGML_IQ3_XXS = 18,
    QF_GGML_IQ1_S = 19,
    QF_GGML_IQ4_NL = 20,
    QF_GGML_IQ3_S = 21,
    QF_GGML_IQ2_S = 22,
    QF_GGML_IQ4_XS = 23,
    QF_GGML_I8 = 24,
    QF_GGML_I16 = 25,
    QF_GGML_I32 = 26,
    QF_GGML_I64 = 27,
    QF_GGML_F64 = 28,
    QF_GGML_IQ1_M = 29,
    QF_GGML_BF16 = 30,
    QF_GGML_TQ1_0 = 34,
    QF_GGML_TQ2_0 = 35,
    QF_GGML_MXFP4 = 39,
    QF_GGML_TYPE_COUNT = 40
} qf_ggml_type;

/* Type traits; name is NULL for ids that are unassigned or removed. */
typedef struct qf_ggml_traits {
    const char *name;    /* "Q4_K", as ggml and gguf_dump spell it */
    uint32_t block_size; /* elements per block (1 for plain types) */
    uint32_t type_size;  /* bytes per block */
    int is_quantized;    /* 1 for block-quantized types */
} qf_ggml_traits;

/* Traits of type id `t`, or NULL if the id is unknown (removed, unassigned,
 * negative or >= QF_GGML_TYPE_COUNT). The pointer is static. */
const qf_ggml_traits *qf_ggml_type_traits(int t);

/* Name of type id `t`, or NULL if unknown. */
const char *qf_ggml_type_name(int t);

/* Type id for a name (case-insensitive), or -1 if unknown. */
int qf_ggml_type_from_name(const char *name);

/*
 * Bytes taken by `n_elements` elements of type `t` in one row.
 * Returns 0 and sets *nbytes, or QF_EINVAL if the type is unknown, or
 * QF_EFORMAT if n_elements is not a multiple of the block size, or
 * QF_ELIMIT if the result overflows uint64.
 */
int qf_ggml_row_size(int t, uint64_t n_elements, uint64_t *nbytes);

/* Map between element types and the plain ggml types (F32, F16, BF16, F64,
 * I8..I64); -1 / QF_DTYPE_INVALID when there is no counterpart. */
int qf_ggml_type_from_dtype(qf_dtype t);
qf_dtype qf_dtype_from_ggml_type(int t);

#endif /* QF_TYPES_H */
