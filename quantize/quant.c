/*
 * quantize/quant.c - the public entry points of quantize/quant.h: a table
 * from ggml type to row quantizer and dequantizer, argument checks, and the
 * plain F32/F16/BF16 conversions.
 *
 * Where each type lives:
 *   quantize/quant_legacy.c   Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
 *   quantize/quant_k.c        Q2_K Q3_K Q4_K Q5_K Q6_K
 *   quantize/quant_iq.c       IQ4_NL IQ4_XS
 *   quantize/quant_search.c   the scale searches they share
 *   quantize/quant_impl.h     block layouts (drawn) and helpers
 *
 * What ggml_quantize_chunk does for each type, and so what we do:
 *   - no importance weights: the type's quantize_row_*_ref (IQ4_NL and
 *     IQ4_XS have no plain path: their search runs with x^2 weights);
 *   - weights: quantize_row_*_impl, except Q8_0 which ignores them;
 *   - F16: IEEE round to nearest even (qf_f32_to_f16); F32: copied;
 *   - BF16: round to nearest even, subnormals included (qf_f32_to_bf16).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/quant.h"
#include "quantize/quant_impl.h"

typedef void (*row_quant_fn)(const float *x, void *y, int64_t n, const float *qw);
typedef void (*row_dequant_fn)(const void *x, float *y, int64_t n);

typedef struct quant_entry {
    int type;
    row_quant_fn quant;       /* the scalar reference */
    row_dequant_fn dequant;
    row_quant_fn simd[2];     /* AVX2, AVX-512 versions, or NULL */
} quant_entry;

/* ---------------------------------------------------------------------
 * SIMD level: CPUID leaf 1 ECX bit 27 (OSXSAVE) and 28 (AVX), leaf 7 EBX
 * bit 5 (AVX2) and 16 (AVX512F); XCR0 bits 1-2 (SSE/YMM state) and 5-7
 * (opmask, ZMM state) saved by the OS. CPUID directly, because clang 14's
 * __builtin_cpu_supports lacks some names (as in formats/types.c).
 * ------------------------------------------------------------------- */

#ifdef QF_QUANT_X86
#include <cpuid.h>

static int detect_simd(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 28)))
        return QF_SIMD_SCALAR;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6u) != 6u || __get_cpuid_max(0, NULL) < 7)
        return QF_SIMD_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & (1u << 5)))
        return QF_SIMD_SCALAR;
    if ((b & (1u << 16)) && (xlo & 0xE6u) == 0xE6u)
        return QF_SIMD_AVX512;
    return QF_SIMD_AVX2;
}
#else
static int detect_simd(void)
{
    return QF_SIMD_SCALAR;
}
#endif

static _Atomic int simd_max = -1;   /* detected, ignoring QF_NO_SIMD */
static _Atomic int simd_auto = -1;  /* detected, QF_NO_SIMD applied */
static _Atomic int simd_forced = -1; /* qf_quant_simd_set_level, or -1 */

int qf_quant_simd_max(void)
{
    int v = simd_max;
    if (v < 0)
        simd_max = v = detect_simd();
    return v;
}

int qf_quant_simd_level(void)
{
    int v = simd_forced;
    if (v >= 0)
        return v;
    v = simd_auto;
    if (v < 0) {
        const char *e = getenv("QF_NO_SIMD");
        v = e && *e && strcmp(e, "0") != 0 ? QF_SIMD_SCALAR : qf_quant_simd_max();
        simd_auto = v;
    }
    return v;
}

void qf_quant_simd_set_level(int level)
{
    simd_forced = level < 0 ? -1 : QF_MIN(level, qf_quant_simd_max());
}

#ifdef QF_QUANT_X86
#define SIMD(name) { name##_avx2, name##_avx512 }
#else
#define SIMD(name) { NULL, NULL }
#endif
#define NO_SIMD { NULL, NULL }

static const quant_entry QUANT_TABLE[] = {
    { QF_GGML_Q4_0, qf_quant_row_q4_0, qf_quant_dequant_q4_0, SIMD(qf_quant_row_q4_0) },
    { QF_GGML_Q4_1, qf_quant_row_q4_1, qf_quant_dequant_q4_1, SIMD(qf_quant_row_q4_1) },
    { QF_GGML_Q5_0, qf_quant_row_q5_0, qf_quant_dequant_q5_0, SIMD(qf_quant_row_q5_0) },
    { QF_GGML_Q5_1, qf_quant_row_q5_1, qf_quant_dequant_q5_1, SIMD(qf_quant_row_q5_1) },
    { QF_GGML_Q8_0, qf_quant_row_q8_0, qf_quant_dequant_q8_0, NO_SIMD },
    { QF_GGML_Q2_K, qf_quant_row_q2_k, qf_quant_dequant_q2_k, SIMD(qf_quant_row_q2_k) },
    { QF_GGML_Q3_K, qf_quant_row_q3_k, qf_quant_dequant_q3_k, SIMD(qf_quant_row_q3_k) },
    { QF_GGML_Q4_K, qf_quant_row_q4_k, qf_quant_dequant_q4_k, SIMD(qf_quant_row_q4_k) },
    { QF_GGML_Q5_K, qf_quant_row_q5_k, qf_quant_dequant_q5_k, SIMD(qf_quant_row_q5_k) },
    { QF_GGML_Q6_K, qf_quant_row_q6_k, qf_quant_dequant_q6_k, SIMD(qf_quant_row_q6_k) },
    { QF_GGML_IQ4_NL, qf_quant_row_iq4_nl, qf_quant_dequant_iq4_nl, SIMD(qf_quant_row_iq4_nl) },
    { QF_GGML_IQ4_XS, qf_quant_row_iq4_xs, qf_quant_dequant_iq4_xs, SIMD(qf_quant_row_iq4_xs) },
};

/* The row quantizer for entry e at the current SIMD level. */
static row_quant_fn row_quantizer(const quant_entry *e)
{
    const int level = qf_quant_simd_level();
    for (int l = level; l > QF_SIMD_SCALAR; l--)
        if (e->simd[l - 1])
            return e->simd[l - 1];
    return e->quant;
}

static const quant_entry *find_entry(int type)
{
    for (size_t i = 0; i < sizeof QUANT_TABLE / sizeof QUANT_TABLE[0]; i++)
        if (QUANT_TABLE[i].type == type)
            return &QUANT_TABLE[i];
    return NULL;
}

/* The element type of a plain ggml type we convert, else INVALID. */
static qf_dtype plain_dtype(int type)
{
    switch (type) {
    case QF_GGML_F32: return QF_DTYPE_F32;
    case QF_GGML_F16: return QF_DTYPE_F16;
    case QF_GGML_BF16: return QF_DTYPE_BF16;
    default: return QF_DTYPE_INVALID;
    }
}

int qf_quant_can_quantize(int type)
{
    return find_entry(type) != NULL || plain_dtype(type) != QF_DTYPE_INVALID;
}

int qf_quant_can_dequantize(int type)
{
    return qf_quant_can_quantize(type);
}

/* 1 if no value is inf or NaN. Written on the bits, in chunks of fixed
 * length, so that the compiler vectorizes it at -O2 (it runs over every
 * row before it is quantized; isfinite() one value at a time cost 10% of a
 * SIMD Q4_K row). */
static int all_finite(const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (int k = 0; k < 64; k++) {
            uint32_t u;
            memcpy(&u, &x[i + k], sizeof u);
            bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (bad)
            return 0;
    }
    for (; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

typedef int (*finite_fn)(const float *x, int64_t n);

/* The finiteness check at the current SIMD level. */
static finite_fn finite_check(void)
{
#ifdef QF_QUANT_X86
    switch (qf_quant_simd_level()) {
    case QF_SIMD_AVX512: return qf_quant_all_finite_avx512;
    case QF_SIMD_AVX2: return qf_quant_all_finite_avx2;
    default: break;
    }
#endif
    return all_finite;
}

int qf_quant_rows(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                  const float *imatrix)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(type);
    if (!tr || !qf_quant_can_quantize(type) || nrows < 0 || n_per_row <= 0 ||
        n_per_row % tr->block_size != 0)
        return QF_EINVAL;
    if (nrows == 0)
        return 0;
    if (!src || !dst || (uint64_t)nrows > UINT64_MAX / (uint64_t)n_per_row)
        return QF_EINVAL;
    uint64_t row_size;
    if (qf_ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0 ||
        (uint64_t)nrows > SIZE_MAX / row_size)
        return QF_EINVAL;

    const qf_dtype plain = plain_dtype(type);
    if (plain != QF_DTYPE_INVALID)
        return qf_f32_to_dtype(plain, src, dst, (size_t)nrows * (size_t)n_per_row);

    const quant_entry *e = find_entry(type);
    const row_quant_fn quant = row_quantizer(e);
    const finite_fn finite = finite_check();
    if (imatrix && !finite(imatrix, n_per_row))
        return QF_EINVAL;
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        if (!finite(x, n_per_row))
            return QF_EINVAL;
        quant(x, (uint8_t *)dst + (size_t)r * row_size, n_per_row, imatrix);
    }
    return 0;
}

int qf_quant_dequantize(int type, const void *src, float *dst, int64_t n)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(type);
    if (!tr || !qf_quant_can_dequantize(type) || n < 0 || n % tr->block_size != 0)
        return QF_EINVAL;
    if (n == 0)
        return 0;
    if (!src || !dst)
        return QF_EINVAL;
    const qf_dtype plain = plain_dtype(type);
    if (plain != QF_DTYPE_INVALID)
        return qf_dtype_to_f32(plain, src, dst, (size_t)n);
    find_entry(type)->dequant(src, dst, n);
    return 0;
}
