/*
 * formats/types.c - element types, ggml type traits, conversions.
 */
#include "formats/types.h"

#include <math.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define QF_HAVE_F16C_PATH 1
#endif

#include "formats/error.h"
#include "formats/file.h"

/* =====================================================================
 * Element types
 * ===================================================================== */

static const struct {
    const char *name;
    size_t size;
} dtypes[QF_DTYPE_COUNT] = {
    [QF_DTYPE_F64] = { "F64", 8 },         [QF_DTYPE_F32] = { "F32", 4 },
    [QF_DTYPE_F16] = { "F16", 2 },         [QF_DTYPE_BF16] = { "BF16", 2 },
    [QF_DTYPE_F8_E4M3] = { "F8_E4M3", 1 }, [QF_DTYPE_F8_E5M2] = { "F8_E5M2", 1 },
    [QF_DTYPE_I8] = { "I8", 1 },           [QF_DTYPE_I16] = { "I16", 2 },
    [QF_DTYPE_I32] = { "I32", 4 },         [QF_DTYPE_I64] = { "I64", 8 },
    [QF_DTYPE_U8] = { "U8", 1 },           [QF_DTYPE_U16] = { "U16", 2 },
    [QF_DTYPE_U32] = { "U32", 4 },         [QF_DTYPE_U64] = { "U64", 8 },
    [QF_DTYPE_BOOL] = { "BOOL", 1 },
};

size_t qf_dtype_size(qf_dtype t)
{
    return (t > QF_DTYPE_INVALID && t < QF_DTYPE_COUNT) ? dtypes[t].size : 0;
}

const char *qf_dtype_name(qf_dtype t)
{
    return (t > QF_DTYPE_INVALID && t < QF_DTYPE_COUNT) ? dtypes[t].name : "?";
}

qf_dtype qf_dtype_from_name(const char *name, size_t len)
{
    int t;

    for (t = 1; t < QF_DTYPE_COUNT; t++)
        if (strlen(dtypes[t].name) == len && memcmp(dtypes[t].name, name, len) == 0)
            return (qf_dtype)t;
    return QF_DTYPE_INVALID;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- F16 ---------------------------------------------------------------
 * binary16: sign 1, exponent 5 (bias 15), mantissa 10. */

float qf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;

    if (exp == 0x1F) /* inf / NaN: keep the payload */
        return bits_f32(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: man * 2^-24, exact in F32 */
        return sign ? -(float)man * 0x1p-24f : (float)man * 0x1p-24f;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t qf_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFF;

    if (a > 0x7F800000u) { /* NaN: quiet, keep the top payload bits */
        return (uint16_t)(sign | 0x7E00 | ((a >> 13) & 0x3FF));
    }
    if (a >= 0x477FF000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7C00);
    if (a < 0x38800000u) { /* below 2^-14: subnormal or zero in F16 */
        /* value = a_float; F16 subnormal unit is 2^-24. Round to nearest even
         * of (mantissa with implicit bit) >> shift. */
        uint32_t exp = a >> 23;
        uint32_t man, shift, q, rem, half;
        if (exp < 102) /* below 2^-25: rounds to zero (ties included) */
            return sign;
        man = (a & 0x7FFFFF) | 0x800000;
        shift = 126 - exp; /* 14..24 */
        q = man >> shift;
        rem = man & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias and round the 13 dropped bits to nearest even */
    a = a - 0x38000000u; /* exponent bias 127 -> 15 */
    a = a + 0x0FFF + ((a >> 13) & 1);
    return (uint16_t)(sign | (a >> 13));
}

/* ---- BF16 --------------------------------------------------------------
 * The top half of an F32, rounded to nearest even; NaNs become quiet. This is
 * what llama.cpp's converter (gguf-py) and ggml write: F32 subnormals round
 * like any other value (the planted subnormal row of the golden mix-probe
 * BF16 tensor shows it, 256 of 256 values). */

float qf_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t qf_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);

    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x0040);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}

/* ---- F8 ----------------------------------------------------------------
 * E4M3 (fn): bias 7, no infinities, 0x7F/0xFF are NaN, max 448.
 * E5M2: bias 15, IEEE-style infinities (0x7C) and NaNs, max 57344. */

static float f8_to_f32(uint8_t v, int e4m3)
{
    int ebits = e4m3 ? 4 : 5;
    int mbits = e4m3 ? 3 : 2;
    int bias = e4m3 ? 7 : 15;
    int exp = (v >> mbits) & ((1 << ebits) - 1);
    int man = v & ((1 << mbits) - 1);
    float sign = (v & 0x80) ? -1.0f : 1.0f;

    if (e4m3) {
        if (exp == 15 && man == 7)
            return NAN;
    } else if (exp == 31) {
        return man ? NAN : sign * INFINITY;
    }
    if (exp == 0)
        return sign * ldexpf((float)man, 1 - bias - mbits);
    return sign * ldexpf((float)((1 << mbits) | man), exp - bias - mbits);
}

static uint8_t f32_to_f8(float f, int e4m3)
{
    uint8_t sign = signbit(f) ? 0x80 : 0;
    uint8_t maxcode = e4m3 ? 0x7E : 0x7B; /* largest finite magnitude */
    float a = fabsf(f);
    int lo, hi;

    if (isnan(f))
        return (uint8_t)(sign | 0x7F);
    if (a >= f8_to_f32(maxcode, e4m3)) {
        if (!e4m3 && isinf(a))
            return (uint8_t)(sign | 0x7C);
        if (!e4m3) { /* E5M2 overflows to infinity past the rounding midpoint */
            float next = 61440.0f; /* midpoint between 57344 and 2^16 */
            return (uint8_t)(sign | (a >= next ? 0x7C : maxcode));
        }
        return (uint8_t)(sign | maxcode); /* E4M3: saturate */
    }
    /* Positive codes 0..maxcode increase with value: binary search for the
     * largest code <= a, then round to nearest, ties to the even code. */
    lo = 0;
    hi = maxcode;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (f8_to_f32((uint8_t)mid, e4m3) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo < maxcode) {
        float below = f8_to_f32((uint8_t)lo, e4m3), above = f8_to_f32((uint8_t)(lo + 1), e4m3);
        float d0 = a - below, d1 = above - a;
        if (d1 < d0 || (d1 == d0 && (lo & 1)))
            lo++;
    }
    return (uint8_t)(sign | lo);
}

/* ---- bulk F16 / BF16 -------------------------------------------------------
 * The row conversions every tool spends its time in. Each gives exactly the
 * scalar functions' results: F16C's VCVTPS2PH with round-to-nearest-even
 * rounds like qf_f32_to_f16, subnormals included, and turns a NaN into the
 * quiet NaN with the top 10 payload bits, as qf_f32_to_f16 does
 * (tests/test_types.c compares the two over 16.8 million patterns). It is
 * chosen at run time, so builds stay machine-independent. */

#ifdef QF_HAVE_F16C_PATH
__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const float *src, uint8_t *dst,
                                                                 size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i), h);
    }
    for (; i < n; i++)
        qf_put16(dst + 2 * i, qf_f32_to_f16(src[i]));
}

/* CPUID leaf 1: ECX bit 27 OSXSAVE, 28 AVX, 29 F16C; and the OS must save
 * the YMM registers (XCR0 bits 1 and 2). */
static int have_f16c(void);

/* VCVTPH2PS quiets a signalling NaN; qf_f16_to_f32 keeps its payload as it
 * is. Blocks of 8 holding any NaN take the scalar path, so the results are
 * the same bits. */
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint8_t *src, float *dst,
                                                                 size_t n)
{
    const __m128i mask = _mm_set1_epi16(0x7FFF), inf = _mm_set1_epi16(0x7C00);
    size_t i = 0, k;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i));
        __m128i nan = _mm_cmpgt_epi16(_mm_and_si128(h, mask), inf);
        if (_mm_movemask_epi8(nan)) {
            for (k = i; k < i + 8; k++)
                dst[k] = qf_f16_to_f32(qf_le16(src + 2 * k));
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = qf_f16_to_f32(qf_le16(src + 2 * i));
}

static int have_f16c(void)
{
    static _Atomic int cached = -1;
    int v = cached;
    if (v < 0) {
        unsigned a, b, c, d;
        v = 0;
        if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)) && (c & (1u << 28)) &&
            (c & (1u << 29))) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            v = (lo & 6u) == 6u;
        }
        cached = v;
    }
    return v;
}
#endif

static void f32_to_f16_row(const float *src, uint8_t *dst, size_t n)
{
    size_t i;
#ifdef QF_HAVE_F16C_PATH
    if (have_f16c()) {
        f32_to_f16_f16c(src, dst, n);
        return;
    }
#endif
    for (i = 0; i < n; i++)
        qf_put16(dst + 2 * i, qf_f32_to_f16(src[i]));
}

static void f16_to_f32_row(const uint8_t *p, float *dst, size_t n)
{
    size_t i;
#ifdef QF_HAVE_F16C_PATH
    if (have_f16c()) {
        f16_to_f32_f16c(p, dst, n);
        return;
    }
#endif
    for (i = 0; i < n; i++)
        dst[i] = qf_f16_to_f32(qf_le16(p + 2 * i));
}

static void bf16_to_f32_row(const uint8_t *p, float *dst, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint16_t h;
        uint32_t u;
        memcpy(&h, p + 2 * i, 2); /* plain loads: the compiler vectorizes this loop */
        u = (uint32_t)h << 16;
        memcpy(&dst[i], &u, 4);
#else
        dst[i] = qf_bf16_to_f32(qf_le16(p + 2 * i));
#endif
    }
}

static void f32_to_bf16_row(const float *src, uint8_t *dst, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        uint16_t h;
        memcpy(&u, &src[i], 4);
        /* branch-free form of qf_f32_to_bf16, so the loop vectorizes */
        h = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
        h = (u & 0x7FFFFFFFu) > 0x7F800000u ? (uint16_t)((u >> 16) | 0x0040) : h;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst + 2 * i, &h, 2);
#else
        qf_put16(dst + 2 * i, h);
#endif
    }
}

/* ---- integers ----------------------------------------------------------- */

static double round_sat(float x, double lo, double hi)
{
    double r;

    if (isnan(x))
        return 0.0;
    r = nearbyint((double)x); /* default rounding mode: nearest, ties to even */
    return r < lo ? lo : r > hi ? hi : r;
}

int qf_dtype_to_f32(qf_dtype t, const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    size_t i;

    switch (t) {
    case QF_DTYPE_F32:
        memcpy(dst, p, n * 4);
        return 0;
    case QF_DTYPE_F64:
        for (i = 0; i < n; i++) {
            uint64_t u = qf_le64(p + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        return 0;
    case QF_DTYPE_F16:
        f16_to_f32_row(p, dst, n);
        return 0;
    case QF_DTYPE_BF16:
        bf16_to_f32_row(p, dst, n);
        return 0;
    case QF_DTYPE_F8_E4M3:
    case QF_DTYPE_F8_E5M2:
        for (i = 0; i < n; i++)
            dst[i] = f8_to_f32(p[i], t == QF_DTYPE_F8_E4M3);
        return 0;
    case QF_DTYPE_I8:
        for (i = 0; i < n; i++)
            dst[i] = (float)(int8_t)p[i];
        return 0;
    case QF_DTYPE_U8:
        for (i = 0; i < n; i++)
            dst[i] = (float)p[i];
        return 0;
    case QF_DTYPE_BOOL:
        for (i = 0; i < n; i++)
            dst[i] = p[i] ? 1.0f : 0.0f;
        return 0;
    case QF_DTYPE_I16:
        for (i = 0; i < n; i++)
            dst[i] = (float)(int16_t)qf_le16(p + 2 * i);
        return 0;
    case QF_DTYPE_U16:
        for (i = 0; i < n; i++)
            dst[i] = (float)qf_le16(p + 2 * i);
        return 0;
    case QF_DTYPE_I32:
        for (i = 0; i < n; i++)
            dst[i] = (float)(int32_t)qf_le32(p + 4 * i);
        return 0;
    case QF_DTYPE_U32:
        for (i = 0; i < n; i++)
            dst[i] = (float)qf_le32(p + 4 * i);
        return 0;
    case QF_DTYPE_I64:
        for (i = 0; i < n; i++)
            dst[i] = (float)(int64_t)qf_le64(p + 8 * i);
        return 0;
    case QF_DTYPE_U64:
        for (i = 0; i < n; i++)
            dst[i] = (float)qf_le64(p + 8 * i);
        return 0;
    default:
        return QF_EINVAL;
    }
}

int qf_f32_to_dtype(qf_dtype t, const float *src, void *dst, size_t n)
{
    uint8_t *p = dst;
    size_t i;

    switch (t) {
    case QF_DTYPE_F32:
        memcpy(p, src, n * 4);
        return 0;
    case QF_DTYPE_F64:
        for (i = 0; i < n; i++) {
            double d = (double)src[i];
            uint64_t u;
            memcpy(&u, &d, 8);
            qf_put64(p + 8 * i, u);
        }
        return 0;
    case QF_DTYPE_F16:
        f32_to_f16_row(src, p, n);
        return 0;
    case QF_DTYPE_BF16:
        f32_to_bf16_row(src, p, n);
        return 0;
    case QF_DTYPE_F8_E4M3:
    case QF_DTYPE_F8_E5M2:
        for (i = 0; i < n; i++)
            p[i] = f32_to_f8(src[i], t == QF_DTYPE_F8_E4M3);
        return 0;
    case QF_DTYPE_BOOL:
        for (i = 0; i < n; i++)
            p[i] = src[i] != 0.0f;
        return 0;
    case QF_DTYPE_I8:
        for (i = 0; i < n; i++)
            p[i] = (uint8_t)(int8_t)round_sat(src[i], -128.0, 127.0);
        return 0;
    case QF_DTYPE_U8:
        for (i = 0; i < n; i++)
            p[i] = (uint8_t)round_sat(src[i], 0.0, 255.0);
        return 0;
    case QF_DTYPE_I16:
        for (i = 0; i < n; i++)
            qf_put16(p + 2 * i, (uint16_t)(int16_t)round_sat(src[i], -32768.0, 32767.0));
        return 0;
    case QF_DTYPE_U16:
        for (i = 0; i < n; i++)
            qf_put16(p + 2 * i, (uint16_t)round_sat(src[i], 0.0, 65535.0));
        return 0;
    case QF_DTYPE_I32:
        for (i = 0; i < n; i++)
            qf_put32(p + 4 * i, (uint32_t)(int32_t)round_sat(src[i], -2147483648.0, 2147483647.0));
        return 0;
    case QF_DTYPE_U32:
        for (i = 0; i < n; i++)
            qf_put32(p + 4 * i, (uint32_t)round_sat(src[i], 0.0, 4294967295.0));
        return 0;
    case QF_DTYPE_I64:
        for (i = 0; i < n; i++) {
            /* the largest float below 2^63 is exact; clamp below 2^63 */
            double r = round_sat(src[i], -9223372036854775808.0, 9223372036854774784.0);
            qf_put64(p + 8 * i, (uint64_t)(int64_t)r);
        }
        return 0;
    case QF_DTYPE_U64:
        for (i = 0; i < n; i++) {
            double r = round_sat(src[i], 0.0, 18446744073709549568.0);
            qf_put64(p + 8 * i, (uint64_t)r);
        }
        return 0;
    default:
        return QF_EINVAL;
    }
}

/* =====================================================================
 * ggml types
 * ===================================================================== */

static const qf_ggml_traits ggml_traits[QF_GGML_TYPE_COUNT] = {
    [QF_GGML_F32] = { "F32", 1, 4, 0 },        [QF_GGML_F16] = { "F16", 1, 2, 0 },
    [QF_GGML_Q4_0] = { "Q4_0", 32, 18, 1 },    [QF_GGML_Q4_1] = { "Q4_1", 32, 20, 1 },
    [QF_GGML_Q5_0] = { "Q5_0", 32, 22, 1 },    [QF_GGML_Q5_1] = { "Q5_1", 32, 24, 1 },
    [QF_GGML_Q8_0] = { "Q8_0", 32, 34, 1 },    [QF_GGML_Q8_1] = { "Q8_1", 32, 36, 1 },
    [QF_GGML_Q2_K] = { "Q2_K", 256, 84, 1 },   [QF_GGML_Q3_K] = { "Q3_K", 256, 110, 1 },
    [QF_GGML_Q4_K] = { "Q4_K", 256, 144, 1 },  [QF_GGML_Q5_K] = { "Q5_K", 256, 176, 1 },
    [QF_GGML_Q6_K] = { "Q6_K", 256, 210, 1 },  [QF_GGML_Q8_K] = { "Q8_K", 256, 292, 1 },
    [QF_GGML_IQ2_XXS] = { "IQ2_XXS", 256, 66, 1 },
    [QF_GGML_IQ2_XS] = { "IQ2_XS", 256, 74, 1 },
    [QF_GGML_IQ3_XXS] = { "IQ3_XXS", 256, 98, 1 },
    [QF_GGML_IQ1_S] = { "IQ1_S", 256, 50, 1 }, [QF_GGML_IQ4_NL] = { "IQ4_NL", 32, 18, 1 },
    [QF_GGML_IQ3_S] = { "IQ3_S", 256, 110, 1 }, [QF_GGML_IQ2_S] = { "IQ2_S", 256, 82, 1 },
    [QF_GGML_IQ4_XS] = { "IQ4_XS", 256, 136, 1 },
    [QF_GGML_I8] = { "I8", 1, 1, 0 },          [QF_GGML_I16] = { "I16", 1, 2, 0 },
    [QF_GGML_I32] = { "I32", 1, 4, 0 },        [QF_GGML_I64] = { "I64", 1, 8, 0 },
    [QF_GGML_F64] = { "F64", 1, 8, 0 },        [QF_GGML_IQ1_M] = { "IQ1_M", 256, 56, 1 },
    [QF_GGML_BF16] = { "BF16", 1, 2, 0 },      [QF_GGML_TQ1_0] = { "TQ1_0", 256, 54, 1 },
    [QF_GGML_TQ2_0] = { "TQ2_0", 256, 66, 1 }, [QF_GGML_MXFP4] = { "MXFP4", 32, 17, 1 },
};

const qf_ggml_traits *qf_ggml_type_traits(int t)
{
    if (t < 0 || t >= QF_GGML_TYPE_COUNT || !ggml_traits[t].name)
        return NULL;
    return &ggml_traits[t];
}

const char *qf_ggml_type_name(int t)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(t);
    return tr ? tr->name : NULL;
}

int qf_ggml_type_from_name(const char *name)
{
    int t;

    for (t = 0; t < QF_GGML_TYPE_COUNT; t++)
        if (ggml_traits[t].name && strcasecmp(ggml_traits[t].name, name) == 0)
            return t;
    return -1;
}

int qf_ggml_row_size(int t, uint64_t n_elements, uint64_t *nbytes)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(t);
    uint64_t blocks;

    if (!tr)
        return QF_EINVAL;
    if (n_elements % tr->block_size != 0)
        return QF_EFORMAT;
    blocks = n_elements / tr->block_size;
    if (blocks > UINT64_MAX / tr->type_size)
        return QF_ELIMIT;
    *nbytes = blocks * tr->type_size;
    return 0;
}

int qf_ggml_type_from_dtype(qf_dtype t)
{
    switch (t) {
    case QF_DTYPE_F32: return QF_GGML_F32;
    case QF_DTYPE_F16: return QF_GGML_F16;
    case QF_DTYPE_BF16: return QF_GGML_BF16;
    case QF_DTYPE_F64: return QF_GGML_F64;
    case QF_DTYPE_I8: return QF_GGML_I8;
    case QF_DTYPE_I16: return QF_GGML_I16;
    case QF_DTYPE_I32: return QF_GGML_I32;
    case QF_DTYPE_I64: return QF_GGML_I64;
    default: return -1;
    }
}

qf_dtype qf_dtype_from_ggml_type(int t)
{
    switch (t) {
    case QF_GGML_F32: return QF_DTYPE_F32;
    case QF_GGML_F16: return QF_DTYPE_F16;
    case QF_GGML_BF16: return QF_DTYPE_BF16;
    case QF_GGML_F64: return QF_DTYPE_F64;
    case QF_GGML_I8: return QF_DTYPE_I8;
    case QF_GGML_I16: return QF_DTYPE_I16;
    case QF_GGML_I32: return QF_DTYPE_I32;
    case QF_GGML_I64: return QF_DTYPE_I64;
    default: return QF_DTYPE_INVALID;
    }
}
