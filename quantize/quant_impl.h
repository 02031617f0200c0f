/*
 * quantize/quant_impl.h - internal to quantize/: block layouts, the shared
 * rounding helpers and scale searches, and the per-type row functions that
 * quantize/quant.c dispatches to. Not installed as part of the public API
 * (callers use quantize/quant.h).
 *
 * Bit-exactness with ggml (llama.cpp b4747, ggml/src/ggml-quants.c) rests on
 * a few rules every file here follows:
 *
 *   - float arithmetic in ggml's order, one operation at a time, in float
 *     (the Makefile passes -ffp-contract=off, so no fused multiply-adds);
 *     an int operand is converted to float where C converts it, e.g.
 *     `w*l*l` is ((w*(float)l)*(float)l);
 *   - nearest_int() below, not rintf/lroundf: it is ggml's magic-number
 *     rounding (ties to even for |x| < 2^22) and gives the same integer
 *     for every input, in or out of range;
 *   - scales are stored with qf_f32_to_f16 (IEEE round to nearest even, as
 *     ggml's GGML_FP32_TO_FP16) and read back with qf_f16_to_f32 wherever
 *     ggml re-reads the stored half to requantize.
 *
 * Blocks are declared with byte arrays only, so they have alignment 1 and
 * may sit anywhere in a caller's buffer; half-precision fields are read and
 * written little-endian with load_f16/store_f16.
 */
#ifndef QF_QUANT_IMPL_H
#define QF_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "formats/types.h"

#define QK_LEGACY 32 /* elements per block of Q4_0 .. Q8_0 and IQ4_NL */
#define QK_K 256     /* elements per super-block of the K types and IQ4_XS */

/* GROUP_MAX_EPS: a group whose largest magnitude is below this is treated
 * as all zero by the scale searches (ggml's value since mid-2024). */
#define GROUP_MAX_EPS 1e-15f

#define QF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QF_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---------------------------------------------------------------------
 * Block layouts. Every multi-byte field is little-endian.
 * ------------------------------------------------------------------- */

/*
 * Q4_0: 32 weights, x = d * (q - 8), q in 0..15.
 *
 *   byte 0      2                                  18
 *        +------+-----------------------------------+
 *        | d f16| qs[16]: lo nibble = x[j],          |
 *        |      |        hi nibble = x[j + 16]      |
 *        +------+-----------------------------------+
 */
typedef struct qf_block_q4_0 {
    uint8_t d[2];
    uint8_t qs[QK_LEGACY / 2];
} qf_block_q4_0;
_Static_assert(sizeof(qf_block_q4_0) == 18, "block_q4_0 is 18 bytes");

/*
 * Q4_1: 32 weights, x = d * q + m, q in 0..15.
 *
 *   byte 0      2      4                                   20
 *        +------+------+-----------------------------------+
 *        | d f16| m f16| qs[16]: lo = x[j], hi = x[j + 16]  |
 *        +------+------+-----------------------------------+
 */
typedef struct qf_block_q4_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[QK_LEGACY / 2];
} qf_block_q4_1;
_Static_assert(sizeof(qf_block_q4_1) == 20, "block_q4_1 is 20 bytes");

/*
 * Q5_0: 32 weights, x = d * (q - 16), q in 0..31: the low 4 bits in qs as
 * Q4_0, the 5th bit of element j in bit j of qh (a little-endian uint32).
 *
 *   byte 0      2             6                                  22
 *        +------+-------------+-----------------------------------+
 *        | d f16| qh u32      | qs[16]: lo nibble = x[j],          |
 *        |      | bit j: x[j] |        hi nibble = x[j + 16]      |
 *        +------+-------------+-----------------------------------+
 */
typedef struct qf_block_q5_0 {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[QK_LEGACY / 2];
} qf_block_q5_0;
_Static_assert(sizeof(qf_block_q5_0) == 22, "block_q5_0 is 22 bytes");

/*
 * Q5_1: 32 weights, x = d * q + m, q in 0..31, bits stored as Q5_0.
 *
 *   byte 0      2      4             8                           24
 *        +------+------+-------------+----------------------------+
 *        | d f16| m f16| qh u32      | qs[16]                      |
 *        +------+------+-------------+----------------------------+
 */
typedef struct qf_block_q5_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[QK_LEGACY / 2];
} qf_block_q5_1;
_Static_assert(sizeof(qf_block_q5_1) == 24, "block_q5_1 is 24 bytes");

/*
 * Q8_0: 32 weights, x = d * q, q an int8.
 *
 *   byte 0      2                                  34
 *        +------+-----------------------------------+
 *        | d f16| qs[32] int8, in element order      |
 *        +------+-----------------------------------+
 */
typedef struct qf_block_q8_0 {
    uint8_t d[2];
    int8_t qs[QK_LEGACY];
} qf_block_q8_0;
_Static_assert(sizeof(qf_block_q8_0) == 34, "block_q8_0 is 34 bytes");

/*
 * Q2_K: 256 weights in 16 groups of 16; group g has a 4-bit scale and a
 * 4-bit min: x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4),
 * q in 0..3.
 *
 *   byte 0            16                        80      82         84
 *        +------------+-------------------------+-------+----------+
 *        | scales[16] | qs[64]: 2 bits/weight   | d f16 | dmin f16 |
 *        | lo: scale  |                         |       |          |
 *        | hi: min    |                         |       |          |
 *        +------------+-------------------------+-------+----------+
 *
 *   qs: for each half h (elements 128h .. 128h+127), byte 32h + l holds
 *   elements 128h + l (bits 0-1), +32 (bits 2-3), +64 (4-5), +96 (6-7).
 */
typedef struct qf_block_q2_k {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint8_t d[2];
    uint8_t dmin[2];
} qf_block_q2_k;
_Static_assert(sizeof(qf_block_q2_k) == 84, "block_q2_K is 84 bytes");

/*
 * Q3_K: 256 weights in 16 groups of 16, 6-bit signed group scales:
 * x = d * (s[g] - 32) * (q - 4), q in 0..7 (2 low bits in qs, high bit in
 * hmask).
 *
 *   byte 0           32                   96            108    110
 *        +-----------+--------------------+-------------+------+
 *        | hmask[32] | qs[64]: low 2 bits  | scales[12]  | d f16|
 *        +-----------+--------------------+-------------+------+
 *
 *   hmask: bit b of byte m is the high bit of element 32b + m.
 *   qs: as Q2_K.
 *   scales (6 bits each, s[0..15]):
 *     bytes 0..7:  lo nibble = low 4 bits of s[j],  hi nibble = of s[j+8]
 *     bytes 8..11: bits 2k..2k+1 of byte 8+i = high 2 bits of s[i + 4k]
 */
typedef struct qf_block_q3_k {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint8_t d[2];
} qf_block_q3_k;
_Static_assert(sizeof(qf_block_q3_k) == 110, "block_q3_K is 110 bytes");

/*
 * Q4_K: 256 weights in 8 groups of 32, 6-bit scale sc[g] and min m[g]:
 * x = d * sc[g] * q - dmin * m[g], q in 0..15.
 *
 *   byte 0       2          4             16                         144
 *        +-------+----------+-------------+---------------------------+
 *        | d f16 | dmin f16 | scales[12]  | qs[128]: 4 bits/weight    |
 *        +-------+----------+-------------+---------------------------+
 *
 *   scales (the "k4" packing shared with Q5_K):
 *     g < 4:  sc[g] = scales[g] & 63,          m[g] = scales[g+4] & 63
 *     g >= 4: sc[g] = (scales[g+4] & 15) | (scales[g-4] >> 6) << 4
 *             m[g]  = (scales[g+4] >> 4) | (scales[g]   >> 6) << 4
 *   qs: for each 64 elements c (c = 0..3), byte 32c + l holds element
 *   64c + l (lo nibble) and 64c + 32 + l (hi nibble).
 */
typedef struct qf_block_q4_k {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} qf_block_q4_k;
_Static_assert(sizeof(qf_block_q4_k) == 144, "block_q4_K is 144 bytes");

/*
 * Q5_K: as Q4_K with a fifth bit per weight, q in 0..31.
 *
 *   byte 0       2          4             16          48                   176
 *        +-------+----------+-------------+-----------+--------------------+
 *        | d f16 | dmin f16 | scales[12]  | qh[32]    | qs[128]: low 4 bits |
 *        +-------+----------+-------------+-----------+--------------------+
 *
 *   qh: bit 2c of byte l is the 5th bit of element 64c + l, bit 2c+1 that
 *   of element 64c + 32 + l.
 */
typedef struct qf_block_q5_k {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} qf_block_q5_k;
_Static_assert(sizeof(qf_block_q5_k) == 176, "block_q5_K is 176 bytes");

/*
 * Q6_K: 256 weights in 16 groups of 16, int8 group scales:
 * x = d * scales[g] * (q - 32), q in 0..63.
 *
 *   byte 0               128            192             208    210
 *        +----------------+--------------+---------------+------+
 *        | ql[128] low 4  | qh[64] high 2| scales[16] i8 | d f16|
 *        +----------------+--------------+---------------+------+
 *
 *   For each half h (128 elements, ql + 64h, qh + 32h), l in 0..31:
 *     ql[l]      lo: elem l       hi: elem l + 64
 *     ql[l + 32] lo: elem l + 32  hi: elem l + 96
 *     qh[l]      bits 0-1: l, 2-3: l + 32, 4-5: l + 64, 6-7: l + 96
 */
typedef struct qf_block_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint8_t d[2];
} qf_block_q6_k;
_Static_assert(sizeof(qf_block_q6_k) == 210, "block_q6_K is 210 bytes");

/*
 * IQ4_NL: 32 weights, x = d * kvalues_iq4nl[q], q in 0..15 (a non-linear
 * 16-level grid).
 *
 *   byte 0      2                                  18
 *        +------+-----------------------------------+
 *        | d f16| qs[16]: lo = x[j], hi = x[j + 16]  |
 *        +------+-----------------------------------+
 */
typedef struct qf_block_iq4_nl {
    uint8_t d[2];
    uint8_t qs[QK_LEGACY / 2];
} qf_block_iq4_nl;
_Static_assert(sizeof(qf_block_iq4_nl) == 18, "block_iq4_nl is 18 bytes");

/*
 * IQ4_XS: 256 weights in 8 groups of 32 with 6-bit group scales ls[g]:
 * x = d * (ls[g] - 32) * kvalues_iq4nl[q].
 *
 *   byte 0      2            4             8                          136
 *        +------+------------+-------------+---------------------------+
 *        | d f16| scales_h   | scales_l[4] | qs[128]: 16 bytes per      |
 *        |      | u16 LE     |             | group, each as IQ4_NL's qs |
 *        +------+------------+-------------+---------------------------+
 *
 *   ls[g] = (nibble g%2 of scales_l[g/2]) | (bits 2g..2g+1 of scales_h) << 4
 */
typedef struct qf_block_iq4_xs {
    uint8_t d[2];
    uint8_t scales_h[2];
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} qf_block_iq4_xs;
_Static_assert(sizeof(qf_block_iq4_xs) == 136, "block_iq4_xs is 136 bytes");

/* The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl). */
extern const int8_t qf_quant_kvalues_iq4nl[16];

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */

static inline float load_f16(const uint8_t p[2])
{
    return qf_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

static inline void store_f16(uint8_t p[2], float f)
{
    uint16_t h = qf_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/*
 * ggml's nearest_int: add 1.5 * 2^23 so that the FPU rounds (to nearest,
 * ties to even) into the low mantissa bits, then read them back. Exact for
 * |fval| <= 2^22 - 1; outside that range (and for inf/NaN) it still returns
 * a well-defined integer, the same one ggml gets, which callers clamp.
 */
static inline int nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/*
 * (int)v, C's truncation toward zero, for every v that fits an int; 0 for
 * NaN and values out of range (where the C cast would be undefined). ggml
 * writes `(int8_t)(x + 8.5f)`; all its in-range results are kept.
 */
static inline int trunc_int(float v)
{
    return (v > -2147483648.0f && v < 2147483648.0f) ? (int)v : 0;
}

/* ---------------------------------------------------------------------
 * Scale searches shared by several types (quantize/quant_search.c).
 * Each follows the ggml function of the same name; see the comments there.
 * ------------------------------------------------------------------- */

float qf_quant_make_qx(int n, int nmax, const float *x, int8_t *L, int rmse_type,
                       const float *qw);
float qf_quant_make_q3(int n, int nmax, const float *x, int8_t *L);
float qf_quant_make_qkx2(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                         float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                         int use_mad);
float qf_quant_make_qkx3(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                         float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                         int use_mad);
float qf_quant_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights);

/* ---------------------------------------------------------------------
 * Pieces of the K quantizers (quantize/quant_k.c) shared with the SIMD
 * versions: each works on one super-block, after the group searches.
 * ------------------------------------------------------------------- */

/* Scale and min of group j (0..7) of Q4_K/Q5_K's "k4" packing (ggml's
 * get_scale_min_k4). */
static inline void k4_get(const uint8_t *q, int j, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Store Q3_K's 6-bit group scale l (0..63) of group j into the 12 scale
 * bytes (which must start zeroed). */
static inline void q3_k_put_scale(uint8_t *scales, int j, int l)
{
    if (j < 8)
        scales[j] = (uint8_t)(l & 0xF);
    else
        scales[j - 8] = (uint8_t)(scales[j - 8] | ((l & 0xF) << 4));
    scales[j % 4 + 8] = (uint8_t)(scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
}

/* Q3_K's signed group scale (-32..31) of group j. */
static inline int q3_k_get_scale(const uint8_t *scales, int j)
{
    const int lo = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
    return (lo | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* Group scales/mins (the searches' results) to the stored super-block
 * fields, as the scalar row functions do; see quantize/quant_k.c. */
void qf_quant_q2_k_ref_scales(qf_block_q2_k *y, const float *scales, const float *mins);
void qf_quant_q2_k_qp_scales(qf_block_q2_k *y, const float *scales, const float *mins,
                             const float *sw);
void qf_quant_q3_k_ref_scales(qf_block_q3_k *y, const float *scales);
void qf_quant_q3_k_qx_scales(qf_block_q3_k *y, const float *scales, const float *sw);
void qf_quant_k4_ref_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], const float *scales,
                            const float *mins);
void qf_quant_k4_qp_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], const float *scales,
                           const float *mins, const float *sw, int clamp63);
int qf_quant_q6_k_scales(qf_block_q6_k *y, const float *scales);
/* The store steps of the two make_qp users above, given make_qp's results
 * (its return values and levels) for the scales and for the mins. */
void qf_quant_q2_k_store_scales(qf_block_q2_k *y, float dm, float mm, const uint8_t *Ls,
                                const uint8_t *Lm);
void qf_quant_k4_store_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], float d_block,
                              float m_block, const uint8_t *Ls, const uint8_t *Lm, int clamp63);

/* Final levels (QK_K of them, element order) to the block's bit layout. */
void qf_quant_pack_2bit(uint8_t *restrict qs, const uint8_t *restrict L);
void qf_quant_pack_q3_k(qf_block_q3_k *restrict y, uint8_t *restrict L); /* L: 0..7, overwritten */
void qf_quant_pack_q4_k(qf_block_q4_k *restrict y, const uint8_t *restrict L);
void qf_quant_pack_q5_k(qf_block_q5_k *restrict y, const uint8_t *restrict L);
void qf_quant_pack_q6_k(qf_block_q6_k *restrict y, const uint8_t *restrict L);

/* ---------------------------------------------------------------------
 * SIMD dispatch (quantize/quant.c)
 *
 * The row quantizers exist as the scalar reference (the functions below)
 * and, on x86-64, as AVX2 and AVX-512 versions (quantize/quant_avx2.c,
 * quantize/quant_avx512.c) that put independent groups of weights in the
 * lanes of a vector, each lane doing its group's arithmetic in the scalar
 * order, so every level gives the same bytes. The level is chosen once, by
 * CPUID and XCR0 (the OS must save the YMM/ZMM state); QF_NO_SIMD=1 in the
 * environment forces the scalar path.
 * ------------------------------------------------------------------- */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define QF_QUANT_X86 1
#endif

#define QF_SIMD_SCALAR 0
#define QF_SIMD_AVX2 1
#define QF_SIMD_AVX512 2

/* The level qf_quant_rows uses now. */
int qf_quant_simd_level(void);

/* The highest level this CPU and OS support (ignoring QF_NO_SIMD). */
int qf_quant_simd_max(void);

/* For tests and benchmarks: use `level` (clamped to qf_quant_simd_max())
 * from now on, in every thread; -1 returns to the automatic choice.
 * Not meant to be called while other threads quantize. */
void qf_quant_simd_set_level(int level);

/* ---------------------------------------------------------------------
 * Per-type row functions. A "row" here is n elements (a multiple of the
 * type's block size) that ggml would quantize as one row: the weighted
 * legacy paths compute statistics over the whole row. `qw` is NULL or n
 * importance weights. `y` / `x` need no alignment.
 * ------------------------------------------------------------------- */

void qf_quant_row_q4_0(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q4_1(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q5_0(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q5_1(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q8_0(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q2_k(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q3_k(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q4_k(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q5_k(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_q6_k(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_iq4_nl(const float *x, void *y, int64_t n, const float *qw);
void qf_quant_row_iq4_xs(const float *x, void *y, int64_t n, const float *qw);

/* The SIMD versions (same contract and bytes; quant_avx2.c, quant_avx512.c).
 * Types without one use the scalar function at every level. */
#ifdef QF_QUANT_X86
#define QF_QUANT_SIMD_ROWS(sfx)                                                                \
    void qf_quant_row_q4_0_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q4_1_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q5_0_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q5_1_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q2_k_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q3_k_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q4_k_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q5_k_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_q6_k_##sfx(const float *x, void *y, int64_t n, const float *qw);       \
    void qf_quant_row_iq4_nl_##sfx(const float *x, void *y, int64_t n, const float *qw);     \
    void qf_quant_row_iq4_xs_##sfx(const float *x, void *y, int64_t n, const float *qw);
QF_QUANT_SIMD_ROWS(avx2)
QF_QUANT_SIMD_ROWS(avx512)
#undef QF_QUANT_SIMD_ROWS
/* For tests (tests/test_quant_simd.c): one of the group searches the SIMD
 * kernels emulate, run on p problems of n values each. */
typedef struct qf_quant_search_case {
    int kind;            /* QF_SEARCH_* */
    int n, nmax;         /* values per problem; QKX: n <= 32, QX: n <= 32, Q3: 16, QP: <= 16 */
    float rmin, rdelta;  /* QKX: make_qkx2/3's candidate scales */
    int nstep, use_mad;  /* QKX */
} qf_quant_search_case;
#define QF_SEARCH_QKX 0  /* qf_quant_make_qkx2 / qf_quant_make_qkx3 (with weights) */
#define QF_SEARCH_QX 1   /* qf_quant_make_qx, rmse_type 1, with weights */
#define QF_SEARCH_Q3 2   /* qf_quant_make_q3 */
#define QF_SEARCH_QP 3   /* qf_quant_make_qp */
/* Problem k is x[k*n ..], w[k*n ..] (w unused by Q3); writes scale[k] (the
 * search's return value), the_min[k] (QKX's *the_min, else 0) and the
 * levels L[k*n ..] as the scalar function would. p may be up to 64; the
 * problems go through the kernel in batches. Returns 0, or -1 for a bad
 * case. */
#ifdef QF_QUANT_X86
int qf_quant_search_test_avx2(const qf_quant_search_case *c, int p, const float *x,
                              const float *w, float *scale, float *the_min, uint8_t *L);
int qf_quant_search_test_avx512(const qf_quant_search_case *c, int p, const float *x,
                                const float *w, float *scale, float *the_min, uint8_t *L);
#endif

/* 1 if none of x[0..n) is inf or NaN (qf_quant_rows' input check) */
int qf_quant_all_finite_avx2(const float *x, int64_t n);
int qf_quant_all_finite_avx512(const float *x, int64_t n);
#endif

void qf_quant_dequant_q4_0(const void *x, float *y, int64_t n);
void qf_quant_dequant_q4_1(const void *x, float *y, int64_t n);
void qf_quant_dequant_q5_0(const void *x, float *y, int64_t n);
void qf_quant_dequant_q5_1(const void *x, float *y, int64_t n);
void qf_quant_dequant_q8_0(const void *x, float *y, int64_t n);
void qf_quant_dequant_q2_k(const void *x, float *y, int64_t n);
void qf_quant_dequant_q3_k(const void *x, float *y, int64_t n);
void qf_quant_dequant_q4_k(const void *x, float *y, int64_t n);
void qf_quant_dequant_q5_k(const void *x, float *y, int64_t n);
void qf_quant_dequant_q6_k(const void *x, float *y, int64_t n);
void qf_quant_dequant_iq4_nl(const void *x, float *y, int64_t n);
void qf_quant_dequant_iq4_xs(const void *x, float *y, int64_t n);

#endif /* QF_QUANT_IMPL_H */
