/*
 * quantize/quant_k.c - the K types Q2_K, Q3_K, Q4_K, Q5_K and Q6_K:
 * super-blocks of 256 weights split into groups of 16 or 32, each group with
 * its own small integer scale (and min for Q2_K/Q4_K/Q5_K), the group scales
 * quantized against one or two half-precision super-block scales. Layouts
 * are drawn in quantize/quant_impl.h.
 *
 * The two-level scheme is common to all of them:
 *   1. fit each group alone (a float scale, maybe a min, and levels);
 *   2. quantize the group scales/mins to 4, 6 or 8 bits against the
 *      super-block scale d (and dmin), stored as f16;
 *   3. requantize every weight against the scale it will actually be
 *      decoded with: d read back from f16 times the integer group scale.
 *
 * Without importance weights these follow ggml's quantize_row_*_K_ref;
 * with weights, quantize_row_*_K_impl (which also quantizes the group
 * scales with a weighted search, make_qp_quants or make_qx_quants).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quantize/quant_impl.h"

/* Pack four 2-bit level arrays of 32 into Q2_K/Q3_K's qs layout. */
void qf_quant_pack_2bit(uint8_t *restrict qs, const uint8_t *restrict L)
{
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* Sum of squares of a super-block, in order, in float. */
static float sum_sq(const float *x, int n)
{
    float s = 0;
    for (int l = 0; l < n; ++l)
        s += x[l] * x[l];
    return s;
}

/* ---------------------------------------------------------------------
 * Q2_K
 * ------------------------------------------------------------------- */

/* Requantize levels 0..3 against the stored d, dmin and 4-bit scales. */
static void q2_k_requant(const float *x, qf_block_q2_k *y, uint8_t *L)
{
    const float dall = load_f16(y->d), mall = load_f16(y->dmin);
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (float)(y->scales[j] & 0xF);
        if (d == 0.0f)
            continue;
        const float dm = mall * (float)(y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)QF_MAX(0, QF_MIN(3, l));
        }
    }
}

/* Reference group scales and mins (16 each) to 4 bits against their
 * maxima / 15: sets y's scales, d and dmin. */
void qf_quant_q2_k_ref_scales(qf_block_q2_k *y, const float *scales, const float *mins)
{
    const float q4scale = 15.f;
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; ++j)
            y->scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
        store_f16(y->d, max_scale / q4scale);
    } else {
        memset(y->scales, 0, sizeof y->scales);
        store_f16(y->d, 0.f);
    }
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; ++j) {
            const int l = nearest_int(iscale * mins[j]);
            y->scales[j] = (uint8_t)(y->scales[j] | ((unsigned)l << 4));
        }
        store_f16(y->dmin, max_min / q4scale);
    } else {
        store_f16(y->dmin, 0.f);
    }
}

/* Reference: each group of 16 by make_qkx2 (weights |x|, mean absolute
 * error), then scales and mins to 4 bits against their maxima / 15. */
static void q2_k_ref(const float *x, qf_block_q2_k *y, int64_t nb)
{
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = qf_quant_make_qkx2(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                           -0.5f, 0.1f, 15, 1);
        }
        qf_quant_q2_k_ref_scales(&y[i], scales, mins);
        q2_k_requant(x, &y[i], L);
        qf_quant_pack_2bit(y[i].qs, L);
    }
}

/* Weighted group scales and mins to 4 bits by make_qp, weighted by each
 * group's weight sum sw: sets y's scales, d and dmin. */
void qf_quant_q2_k_qp_scales(qf_block_q2_k *y, const float *scales, const float *mins,
                             const float *sw)
{
    uint8_t Ls[QK_K / 16], Lm[QK_K / 16];
    const float dm = qf_quant_make_qp(QK_K / 16, 15, scales, Ls, sw);
    const float mm = qf_quant_make_qp(QK_K / 16, 15, mins, Lm, sw);
    qf_quant_q2_k_store_scales(y, dm, mm, Ls, Lm);
}

/* Store make_qp's results for the scales (dm, Ls) and mins (mm, Lm). */
void qf_quant_q2_k_store_scales(qf_block_q2_k *y, float dm, float mm, const uint8_t *Ls,
                                const uint8_t *Lm)
{
    store_f16(y->d, dm);
    store_f16(y->dmin, mm);
    for (int j = 0; j < QK_K / 16; ++j)
        y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
}

/* Weighted: weights qw * sqrt(sigma2 + x^2) with sigma2 the super-block's
 * mean square; groups by make_qkx3 (squared error, 37 candidate scales);
 * scales and mins to 4 bits by make_qp weighted by each group's weight sum. */
static void q2_k_weighted(const float *x, qf_block_q2_k *y, int64_t nb, const float *qw)
{
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    float sw[QK_K / 16];
    float weight[16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        memset(sw, 0, sizeof sw);
        const float sigma2 = sum_sq(x, QK_K) / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float *w = qw + QK_K * i + 16 * j;
            for (int l = 0; l < 16; ++l)
                weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; ++l)
                sw[j] += weight[l];
            scales[j] = qf_quant_make_qkx3(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                           -0.9f, 0.05f, 36, 0);
        }
        qf_quant_q2_k_qp_scales(&y[i], scales, mins, sw);
        q2_k_requant(x, &y[i], L);
        qf_quant_pack_2bit(y[i].qs, L);
    }
}

void qf_quant_row_q2_k(const float *x, void *vy, int64_t n, const float *qw)
{
    if (qw)
        q2_k_weighted(x, vy, n / QK_K, qw);
    else
        q2_k_ref(x, vy, n / QK_K);
}

void qf_quant_dequant_q2_k(const void *vx, float *y, int64_t n)
{
    const qf_block_q2_k *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = load_f16(x[i].d);
        const float min = load_f16(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int c = 0; c < QK_K; c += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                sc = x[i].scales[is++];
                dl = d * (float)(sc & 0xF);
                ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
            }
            q += 32;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q3_K
 * ------------------------------------------------------------------- */

/* Requantize levels 0..7 against the stored d and group scales, then split
 * them into hmask (high bit) and qs (low 2 bits). */
static void q3_k_finish(const float *x, qf_block_q3_k *y, int8_t *L)
{
    const float dall = load_f16(y->d);
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (float)(int8_t)q3_k_get_scale(y->scales, j);
        if (d == 0.0f)
            continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(QF_MAX(-4, QF_MIN(3, l)) + 4);
        }
    }
    qf_quant_pack_q3_k(y, (uint8_t *)L);
}

/* Split levels 0..7 into hmask (high bit) and qs (low 2 bits); L is
 * overwritten with the low bits. */
void qf_quant_pack_q3_k(qf_block_q3_k *restrict y, uint8_t *restrict L)
{
    /* ggml tests L > 3 and subtracts 4; for levels 0..7 that is bit 2 and
     * the low 2 bits (no branches: the bits are close to random) */
    for (int m = 0; m < QK_K / 8; ++m) {
        unsigned h = 0;
        for (int b = 0; b < 8; ++b)
            h |= (unsigned)((L[32 * b + m] >> 2) & 1) << b;
        y->hmask[m] = (uint8_t)h;
    }
    for (int j = 0; j < QK_K; ++j)
        L[j] &= 3;
    qf_quant_pack_2bit(y->qs, L);
}

/* Reference group scales (16) to 6 bits against the scale of largest
 * magnitude, -32/max: sets y's scales and d. */
void qf_quant_q3_k_ref_scales(qf_block_q3_k *y, const float *scales)
{
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float scale = fabsf(scales[j]);
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, sizeof y->scales);
    if (max_scale != 0.0f) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            /* ggml narrows to int8_t before clamping */
            int l = (int8_t)nearest_int(iscale * scales[j]);
            l = QF_MAX(-32, QF_MIN(31, l)) + 32;
            q3_k_put_scale(y->scales, j, l);
        }
        store_f16(y->d, 1 / iscale);
    } else {
        store_f16(y->d, 0.f);
    }
}

/* Reference: groups by make_q3 (x^2 weights, coordinate descent), group
 * scales to 6 bits against the scale of largest magnitude: -32/max. */
static void q3_k_ref(const float *x, qf_block_q3_k *y, int64_t nb)
{
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        for (int j = 0; j < QK_K / 16; ++j)
            scales[j] = qf_quant_make_q3(16, 4, x + 16 * j, L + 16 * j);
        qf_quant_q3_k_ref_scales(&y[i], scales);
        q3_k_finish(x, &y[i], L);
    }
}

/* Weighted group scales (16) to 6 bits by make_qx with 32 levels each
 * side, weighted by each group's weight sum sw: sets y's scales and d. */
void qf_quant_q3_k_qx_scales(qf_block_q3_k *y, const float *scales, const float *sw)
{
    int8_t Ls[QK_K / 16];
    memset(y->scales, 0, sizeof y->scales);
    const float d_block = qf_quant_make_qx(QK_K / 16, 32, scales, Ls, 1, sw);
    for (int j = 0; j < QK_K / 16; ++j)
        q3_k_put_scale(y->scales, j, Ls[j]);
    store_f16(y->d, d_block);
}

/* Weighted: weights qw * sqrt(2*mean square + x^2); groups by make_qx
 * (4 levels each side); group scales by make_qx with 32 levels each side,
 * weighted by each group's weight sum. */
static void q3_k_weighted(const float *x, qf_block_q3_k *y, int64_t nb, const float *qw)
{
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float weight[16];
    float sw[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        const float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float *w = qw + QK_K * i + 16 * j;
            for (int l = 0; l < 16; ++l)
                weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l)
                sumw += weight[l];
            sw[j] = sumw;
            scales[j] = qf_quant_make_qx(16, 4, x + 16 * j, L + 16 * j, 1, weight);
        }
        qf_quant_q3_k_qx_scales(&y[i], scales, sw);
        q3_k_finish(x, &y[i], L);
    }
}

void qf_quant_row_q3_k(const float *x, void *vy, int64_t n, const float *qw)
{
    if (qw)
        q3_k_weighted(x, vy, n / QK_K, qw);
    else
        q3_k_ref(x, vy, n / QK_K);
}

void qf_quant_dequant_q3_k(const void *vx, float *y, int64_t n)
{
    const qf_block_q3_k *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = load_f16(x[i].d);
        const uint8_t *q = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int c = 0; c < QK_K; c += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                float dl = d_all * (float)q3_k_get_scale(x[i].scales, is++);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                dl = d_all * (float)q3_k_get_scale(x[i].scales, is++);
                for (int l = 0; l < 16; ++l)
                    *y++ = dl * (float)(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q4_K and Q5_K (same scale layout)
 * ------------------------------------------------------------------- */

/* Store 6-bit scale ls and min lm of group j (0..7) in the k4 packing. */
static void k4_put(uint8_t *scales, int j, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] = (uint8_t)(scales[j - 4] | ((ls >> 4) << 6));
        scales[j] = (uint8_t)(scales[j] | ((lm >> 4) << 6));
    }
}

/* Group fit of the reference path: weights av_x + |x| with av_x the
 * group's RMS, make_qkx2 with squared error. */
static float qk_ref_group(const float *x, int nmax, uint8_t *L, float *min, float rmin,
                          float rdelta, int nstep)
{
    float weights[32];
    uint8_t Laux[32];
    const float av_x = sqrtf(sum_sq(x, 32) / 32);
    for (int l = 0; l < 32; ++l)
        weights[l] = av_x + fabsf(x[l]);
    return qf_quant_make_qkx2(32, nmax, x, weights, L, min, Laux, rmin, rdelta, nstep, 0);
}

/* Reference scales: 6 bits against max/63 each; ggml narrows the rounded
 * value to uint8_t before clamping to 63. */
void qf_quant_k4_ref_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], const float *scales,
                          const float *mins)
{
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QF_MIN(63, ls);
        lm = QF_MIN(63, lm);
        k4_put(packed, j, ls, lm);
    }
    store_f16(d, max_scale / 63.f);
    store_f16(dmin, max_min / 63.f);
}

/* Weighted group fits and scales (Q4_K and Q5_K _impl): weights
 * qw * sqrt(sigma2 + x^2), sigma2 = 2 * mean square of the super-block;
 * groups by make_qkx3; scales and mins by make_qp against 63 levels.
 * make_qp can only return a level above 63 for a negative group scale;
 * ggml's Q5_K clamps it to 63 and its Q4_K does not (clamp63 selects). */
static void qk_weighted_scales(const float *x, const float *qw, int nmax, int clamp63,
                               uint8_t *L, uint8_t *packed, uint8_t d[2], uint8_t dmin[2])
{
    uint8_t Laux[32];
    float weights[32];
    float sw[QK_K / 32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];

    const float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float *w = qw + 32 * j;
        for (int l = 0; l < 32; ++l)
            weights[l] = w[l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l)
            sumw += weights[l];
        sw[j] = sumw;
        scales[j] = qf_quant_make_qkx3(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                       -0.9f, 0.05f, 36, 0);
    }
    qf_quant_k4_qp_scales(packed, d, dmin, scales, mins, sw, clamp63);
}

/* Weighted scales and mins (8 each) to 6 bits by make_qp against 63
 * levels, weighted by the group weight sums sw; clamp63 as above. */
void qf_quant_k4_qp_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], const float *scales,
                           const float *mins, const float *sw, int clamp63)
{
    uint8_t Ls[QK_K / 32], Lm[QK_K / 32];
    const float d_block = qf_quant_make_qp(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = qf_quant_make_qp(QK_K / 32, 63, mins, Lm, sw);
    qf_quant_k4_store_scales(packed, d, dmin, d_block, m_block, Ls, Lm, clamp63);
}

/* Store make_qp's results for the scales (d_block, Ls) and mins (m_block,
 * Lm); clamp63 as above. */
void qf_quant_k4_store_scales(uint8_t *packed, uint8_t d[2], uint8_t dmin[2], float d_block,
                              float m_block, const uint8_t *Ls, const uint8_t *Lm, int clamp63)
{
    for (int j = 0; j < QK_K / 32; ++j) {
        if (clamp63)
            k4_put(packed, j, QF_MIN(63, Ls[j]), QF_MIN(63, Lm[j]));
        else
            k4_put(packed, j, Ls[j], Lm[j]);
    }
    store_f16(d, d_block);
    store_f16(dmin, m_block);
}

/* Requantize a super-block against the stored d, dmin and 6-bit scales:
 * L = clamp(round((x + dmin*m) / (d*sc)), 0, nmax). */
static void qk_requant(const float *x, const uint8_t *packed, const uint8_t d16[2],
                       const uint8_t dmin16[2], int nmax, uint8_t *L)
{
    const float dall = load_f16(d16), mall = load_f16(dmin16);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        k4_get(packed, j, &sc, &m);
        const float d = dall * (float)sc;
        if (d == 0.0f)
            continue;
        const float dm = mall * (float)m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QF_MAX(0, QF_MIN(nmax, l));
        }
    }
}

void qf_quant_pack_q4_k(qf_block_q4_k *restrict y, const uint8_t *restrict L)
{
    uint8_t *q = y->qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

void qf_quant_row_q4_k(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q4_k *y = vy;
    uint8_t L[QK_K];
    float mins[QK_K / 32], scales[QK_K / 32];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        /* k4_put assigns every scale byte before it ORs into it (groups
         * 0..3 set bytes 0..7, groups 4..7 bytes 8..11), so the caller's
         * buffer needs no clearing. */
        if (qw) {
            qk_weighted_scales(x, qw + QK_K * i, 15, 0, L, y[i].scales, y[i].d, y[i].dmin);
        } else {
            for (int j = 0; j < QK_K / 32; ++j)
                scales[j] = qk_ref_group(x + 32 * j, 15, L + 32 * j, &mins[j], -1.f, 0.1f, 20);
            qf_quant_k4_ref_scales(y[i].scales, y[i].d, y[i].dmin, scales, mins);
        }
        qk_requant(x, y[i].scales, y[i].d, y[i].dmin, 15, L);
        qf_quant_pack_q4_k(&y[i], L);
    }
}

void qf_quant_dequant_q4_k(const void *vx, float *y, int64_t n)
{
    const qf_block_q4_k *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = load_f16(x[i].d);
        const float min = load_f16(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QK_K; j += 64) {
            k4_get(x[i].scales, is + 0, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            k4_get(x[i].scales, is + 1, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

void qf_quant_pack_q5_k(qf_block_q5_k *restrict y, const uint8_t *restrict L)
{
    /* ggml tests l > 15 and subtracts 16; for levels 0..31 that is bit 4
     * and the low 4 bits (no branches: the bits are close to random) */
    for (int j = 0; j < 32; ++j) {
        unsigned h = 0;
        for (int c = 0; c < 4; ++c) {
            h |= (unsigned)((L[64 * c + j] >> 4) & 1) << (2 * c);
            h |= (unsigned)((L[64 * c + 32 + j] >> 4) & 1) << (2 * c + 1);
        }
        y->qh[j] = (uint8_t)h;
    }
    for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 32; ++j)
            y->qs[32 * c + j] =
                (uint8_t)((L[64 * c + j] & 0xF) | ((L[64 * c + 32 + j] & 0xF) << 4));
}

void qf_quant_row_q5_k(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q5_k *y = vy;
    uint8_t L[QK_K];
    float mins[QK_K / 32], scales[QK_K / 32];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        if (qw) {
            qk_weighted_scales(x, qw + QK_K * i, 31, 1, L, y[i].scales, y[i].d, y[i].dmin);
        } else {
            for (int j = 0; j < QK_K / 32; ++j)
                scales[j] = qk_ref_group(x + 32 * j, 31, L + 32 * j, &mins[j], -0.5f, 0.1f, 15);
            qf_quant_k4_ref_scales(y[i].scales, y[i].d, y[i].dmin, scales, mins);
        }
        qk_requant(x, y[i].scales, y[i].d, y[i].dmin, 31, L);
        qf_quant_pack_q5_k(&y[i], L);
    }
}

void qf_quant_dequant_q5_k(const void *vx, float *y, int64_t n)
{
    const qf_block_q5_k *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs;
        const uint8_t *qh = x[i].qh;
        const float d = load_f16(x[i].d);
        const float min = load_f16(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K; j += 64) {
            k4_get(x[i].scales, is + 0, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            k4_get(x[i].scales, is + 1, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* ---------------------------------------------------------------------
 * Q6_K
 * ------------------------------------------------------------------- */

/* Group scales (16) to int8 against -128/max: sets y's scales and d and
 * returns 1; or, when every group scale is below GROUP_MAX_EPS, writes an
 * all-zero block and returns 0 (nothing left to do). */
int qf_quant_q6_k_scales(qf_block_q6_k *y, const float *scales)
{
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
        const float abs_scale = fabsf(scales[ib]);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        store_f16(y->d, 0.f);
        return 0;
    }
    const float iscale = -128.f / max_scale;
    store_f16(y->d, 1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib)
        y->scales[ib] = (int8_t)QF_MIN(127, nearest_int(iscale * scales[ib]));
    return 1;
}

/* Levels 0..63 into ql (low 4 bits) and qh (high 2 bits). */
void qf_quant_pack_q6_k(qf_block_q6_k *restrict y, const uint8_t *restrict L)
{
    /* three plain loops per half, so that the compiler vectorizes them */
    for (int h = 0; h < 2; ++h) {
        const uint8_t *Lh = L + 128 * h;
        uint8_t *ql = y->ql + 64 * h, *qh = y->qh + 32 * h;
        for (int l = 0; l < 32; ++l)
            ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        for (int l = 0; l < 32; ++l)
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        for (int l = 0; l < 32; ++l)
            qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                              ((Lh[l + 96] >> 4) << 6));
    }
}

/* Both paths: groups of 16 by make_qx (32 levels each side; weights x^2,
 * or the raw importance weights: ggml's _impl passes qw unchanged here),
 * int8 group scales against -128/max, then requantize. An all-tiny
 * super-block is written as all zero bytes. */
void qf_quant_row_q6_k(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q6_k *y = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float *w = qw ? qw + QK_K * i + 16 * ib : NULL;
            scales[ib] = qf_quant_make_qx(16, 32, x + 16 * ib, L + 16 * ib, 1, w);
        }
        if (!qf_quant_q6_k_scales(&y[i], scales))
            continue;

        const float dall = load_f16(y[i].d);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = dall * (float)y[i].scales[j];
            if (d == 0.0f)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(QF_MAX(-32, QF_MIN(31, l)) + 32);
            }
        }

        qf_quant_pack_q6_k(&y[i], (const uint8_t *)L);
    }
}

void qf_quant_dequant_q6_k(const void *vx, float *y, int64_t n)
{
    const qf_block_q6_k *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = load_f16(x[i].d);
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int c = 0; c < QK_K; c += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}
