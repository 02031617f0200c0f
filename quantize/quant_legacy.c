/*
 * quantize/quant_legacy.c - the 32-weight block types Q4_0, Q4_1, Q5_0,
 * Q5_1 and Q8_0 (layouts drawn in quantize/quant_impl.h).
 *
 * Without importance weights each type uses ggml's reference quantizer
 * (quantize_row_*_ref): one pass, scale from the block's extreme value.
 * With weights, Q4_0/Q4_1/Q5_0/Q5_1 use ggml's weighted search
 * (quantize_row_*_impl); Q8_0 has none and ignores them, as in ggml.
 *
 * The weighted paths weight element j by qw[j] * sqrt(sigma2 + x[j]^2),
 * where sigma2 is the mean square of the whole row (not of the block).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quantize/quant_impl.h"

/* Mean square of a row, accumulated in order in float, as ggml does. */
static float row_sigma2(const float *x, int64_t n)
{
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j)
        sum_x2 += x[j] * x[j];
    return sum_x2 / (float)n;
}

/* The value of largest magnitude in x[0..n) (the first one on ties), with
 * its sign; 0 for an all-zero block. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* Pack the 5th bit of the 32 levels of a Q5 block into its little-endian
 * qh word: lo[j] is the level of element j, hi[j] that of element j + 16. */
static void put_qh5(uint8_t qh[4], const uint8_t *lo, const uint8_t *hi)
{
    uint32_t h = 0;
    for (int j = 0; j < QK_LEGACY / 2; ++j) {
        h |= (uint32_t)((lo[j] & 0x10u) >> 4) << j;
        h |= (uint32_t)((hi[j] & 0x10u) >> 4) << (j + QK_LEGACY / 2);
    }
    qh[0] = (uint8_t)h;
    qh[1] = (uint8_t)(h >> 8);
    qh[2] = (uint8_t)(h >> 16);
    qh[3] = (uint8_t)(h >> 24);
}

static uint32_t get_qh5(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) |
           ((uint32_t)qh[3] << 24);
}

/* ---------------------------------------------------------------------
 * Q4_0
 * ------------------------------------------------------------------- */

/* Reference: d = max / -8, where max is the signed value of largest
 * magnitude, so max itself maps to level 0 (value -8) and levels run to
 * 15 (+7). q = min(15, trunc(x/d + 8.5)). */
static void q4_0_ref(const float *x, qf_block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_LEGACY) {
        const float max = signed_absmax(x, QK_LEGACY);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[i].d, d);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK_LEGACY / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)QF_MIN(15, (int8_t)trunc_int(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)QF_MIN(15, (int8_t)trunc_int(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void qf_quant_row_q4_0(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q4_0 *y = vy;
    if (!qw) {
        q4_0_ref(x, y, n / QK_LEGACY);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float weight[QK_LEGACY];
    int8_t L[QK_LEGACY];
    for (int64_t ib = 0; ib < n / QK_LEGACY; ++ib) {
        const float *xb = x + QK_LEGACY * ib;
        const float *w = qw + QK_LEGACY * ib;
        for (int j = 0; j < QK_LEGACY; ++j)
            weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        const float d = qf_quant_make_qx(QK_LEGACY, 8, xb, L, 1, weight);
        store_f16(y[ib].d, d);
        for (int j = 0; j < 16; ++j)
            y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

void qf_quant_dequant_q4_0(const void *vx, float *y, int64_t n)
{
    const qf_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + QK_LEGACY / 2] = (float)x1 * d;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q4_1
 * ------------------------------------------------------------------- */

/* Reference: m = min, d = (max - min) / 15, q = min(15, trunc((x - m)/d + 0.5)). */
static void q4_1_ref(const float *x, qf_block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_LEGACY) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK_LEGACY; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[i].d, d);
        store_f16(y[i].m, min);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK_LEGACY / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)QF_MIN(15, (int8_t)trunc_int(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)QF_MIN(15, (int8_t)trunc_int(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void qf_quant_row_q4_1(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q4_1 *y = vy;
    if (!qw) {
        q4_1_ref(x, y, n / QK_LEGACY);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float weight[QK_LEGACY];
    uint8_t L[QK_LEGACY], Laux[QK_LEGACY];
    for (int64_t ib = 0; ib < n / QK_LEGACY; ++ib) {
        const float *xb = x + QK_LEGACY * ib;
        const float *w = qw + QK_LEGACY * ib;
        for (int j = 0; j < QK_LEGACY; ++j)
            weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float min;
        const float d = qf_quant_make_qkx3(QK_LEGACY, 15, xb, weight, L, &min, Laux, -0.9f,
                                           0.05f, 36, 0);
        store_f16(y[ib].d, d);
        store_f16(y[ib].m, -min);
        for (int j = 0; j < 16; ++j)
            y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

void qf_quant_dequant_q4_1(const void *vx, float *y, int64_t n)
{
    const qf_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        const float m = load_f16(x[i].m);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            y[j] = (float)x0 * d + m;
            y[j + QK_LEGACY / 2] = (float)x1 * d + m;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q5_0
 * ------------------------------------------------------------------- */

/* Reference: d = max / -16, q = min(31, trunc(x/d + 16.5)). */
static void q5_0_ref(const float *x, qf_block_q5_0 *y, int64_t nb)
{
    uint8_t lo[QK_LEGACY / 2], hi[QK_LEGACY / 2];
    for (int64_t i = 0; i < nb; i++, x += QK_LEGACY) {
        const float max = signed_absmax(x, QK_LEGACY);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[i].d, d);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK_LEGACY / 2 + j] * id;
            lo[j] = (uint8_t)QF_MIN(31, (int8_t)trunc_int(x0 + 16.5f));
            hi[j] = (uint8_t)QF_MIN(31, (int8_t)trunc_int(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((lo[j] & 0x0F) | ((hi[j] & 0x0F) << 4));
        }
        put_qh5(y[i].qh, lo, hi);
    }
}

void qf_quant_row_q5_0(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q5_0 *y = vy;
    if (!qw) {
        q5_0_ref(x, y, n / QK_LEGACY);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float weight[QK_LEGACY];
    int8_t L[QK_LEGACY];
    uint8_t lo[QK_LEGACY / 2], hi[QK_LEGACY / 2];
    for (int64_t ib = 0; ib < n / QK_LEGACY; ++ib) {
        const float *xb = x + QK_LEGACY * ib;
        const float *w = qw + QK_LEGACY * ib;
        for (int j = 0; j < QK_LEGACY; ++j)
            weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        const float d = qf_quant_make_qx(QK_LEGACY, 16, xb, L, 1, weight);
        store_f16(y[ib].d, d);
        for (int j = 0; j < 16; ++j) {
            lo[j] = (uint8_t)L[j];
            hi[j] = (uint8_t)L[j + 16];
            y[ib].qs[j] = (uint8_t)((lo[j] & 0x0F) | ((hi[j] & 0x0F) << 4));
        }
        put_qh5(y[ib].qh, lo, hi);
    }
}

void qf_quant_dequant_q5_0(const void *vx, float *y, int64_t n)
{
    const qf_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        const uint32_t qh = get_qh5(x[i].qh);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = ((x[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
            y[j] = (float)x0 * d;
            y[j + QK_LEGACY / 2] = (float)x1 * d;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q5_1
 * ------------------------------------------------------------------- */

/* Reference: m = min, d = (max - min) / 31, q = trunc((x - m)/d + 0.5)
 * (no clamp in ggml; only the low 5 bits are stored). */
static void q5_1_ref(const float *x, qf_block_q5_1 *y, int64_t nb)
{
    uint8_t lo[QK_LEGACY / 2], hi[QK_LEGACY / 2];
    for (int64_t i = 0; i < nb; i++, x += QK_LEGACY) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK_LEGACY; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[i].d, d);
        store_f16(y[i].m, min);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK_LEGACY / 2 + j] - min) * id;
            lo[j] = (uint8_t)trunc_int(x0 + 0.5f);
            hi[j] = (uint8_t)trunc_int(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((lo[j] & 0x0F) | ((hi[j] & 0x0F) << 4));
        }
        put_qh5(y[i].qh, lo, hi);
    }
}

void qf_quant_row_q5_1(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q5_1 *y = vy;
    if (!qw) {
        q5_1_ref(x, y, n / QK_LEGACY);
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float weight[QK_LEGACY];
    uint8_t L[QK_LEGACY], Laux[QK_LEGACY];
    for (int64_t ib = 0; ib < n / QK_LEGACY; ++ib) {
        const float *xb = x + QK_LEGACY * ib;
        const float *w = qw + QK_LEGACY * ib;
        for (int j = 0; j < QK_LEGACY; ++j)
            weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float min;
        const float d = qf_quant_make_qkx3(QK_LEGACY, 31, xb, weight, L, &min, Laux, -0.9f,
                                           0.05f, 36, 0);
        store_f16(y[ib].d, d);
        store_f16(y[ib].m, -min);
        for (int j = 0; j < 16; ++j)
            y[ib].qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        put_qh5(y[ib].qh, L, L + 16);
    }
}

void qf_quant_dequant_q5_1(const void *vx, float *y, int64_t n)
{
    const qf_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        const float m = load_f16(x[i].m);
        const uint32_t qh = get_qh5(x[i].qh);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = (x[i].qs[j] & 0x0F) | h0;
            const int x1 = (x[i].qs[j] >> 4) | h1;
            y[j] = (float)x0 * d + m;
            y[j + QK_LEGACY / 2] = (float)x1 * d + m;
        }
    }
}

/* ---------------------------------------------------------------------
 * Q8_0
 * ------------------------------------------------------------------- */

/* Reference (also used with weights, which Q8_0 ignores): d = absmax/127,
 * q = roundf(x/d) (ties away from zero). */
void qf_quant_row_q8_0(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_q8_0 *y = vy;
    (void)qw;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY) {
        float amax = 0.0f;
        for (int j = 0; j < QK_LEGACY; j++)
            amax = QF_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[i].d, d);
        for (int j = 0; j < QK_LEGACY; ++j)
            y[i].qs[j] = (int8_t)trunc_int(roundf(x[j] * id));
    }
}

void qf_quant_dequant_q8_0(const void *vx, float *y, int64_t n)
{
    const qf_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < QK_LEGACY; ++j)
            y[j] = (float)x[i].qs[j] * d;
    }
}
