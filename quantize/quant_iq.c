/*
 * quantize/quant_iq.c - IQ4_NL and IQ4_XS: 4-bit indexes into a fixed
 * non-linear grid of 16 levels (kvalues_iq4nl), with one f16 scale per 32
 * weights (IQ4_NL) or 6-bit scales per 32 under an f16 super-block scale
 * (IQ4_XS). Layouts are drawn in quantize/quant_impl.h.
 *
 * Both always run ggml's search (quantize_row_iq4_nl_impl with ntry = 7):
 * with importance weights the element weights are qw * sqrt(sigma2 + x^2)
 * (sigma2 = 2 * mean square of the 32- or 256-weight super-block), without
 * them x^2.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quantize/quant_impl.h"

const int8_t qf_quant_kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* The grid size of IQ4 and how far the scale search reaches either side of
 * the starting point, in grid units (ggml's ntry). */
#define IQ4_LEVELS 16
#define IQ4_NTRY 7

/*
 * Index of the grid value nearest to x (val sorted ascending): the ends
 * for x outside the grid, else a bisection and a comparison of the two
 * neighbours, ties going up. The comparison is ggml's, in float:
 * x - lo < hi - x.
 */
static int best_index_int8(int n, const int8_t *val, float x)
{
    if (x <= (float)val[0])
        return 0;
    if (x >= (float)val[n - 1])
        return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < (float)val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - (float)val[mu - 1] < (float)val[mu] - x ? mu - 1 : mu;
}

/*
 * One super-block of `sbs` weights (32 for IQ4_NL, 256 for IQ4_XS) in
 * groups of 32. For each group: the scale that puts the element of largest
 * magnitude on the grid end, levels by nearest grid value and the optimal
 * scale for them; then 15 more starting scales (itry = -7..7 grid units
 * off) keeping the best (sum w q x)^2 / (sum w q^2). IQ4_NL stores that
 * scale as its f16 d and requantizes against it; IQ4_XS quantizes the group
 * scales to 6 bits against d = -max_scale/32 and requantizes each group
 * against d * l.
 *
 * Quirks kept from ggml: a group below GROUP_MAX_EPS gets scale 0 and its
 * levels are those of "nearest to 0" (index 8, value 1); the first fit
 * divides by sum w q^2 unguarded (0/0 only for all-zero weights); an IQ4_XS
 * super-block whose scales are all 0 stores d = -0.0 (0x8000).
 *
 * dh: the f16 d bytes; q4: sbs/2 bytes; scales_h/scales_l: IQ4_XS's scale
 * fields (unused for IQ4_NL); qw: NULL or sbs weights.
 */
static void iq4_superblock(int sbs, const float *x, uint8_t dh[2], uint8_t *q4,
                           uint8_t scales_h[2], uint8_t *scales_l, const float *qw)
{
    const int8_t *values = qf_quant_kvalues_iq4nl;
    const int block_size = 32;
    const int nblk = sbs / block_size;
    float scales[QK_K / 32];
    float weight[32];
    uint8_t L[QK_K];

    float sigma2 = 0;
    for (int j = 0; j < sbs; ++j)
        sigma2 += x[j] * x[j];
    sigma2 *= 2.f / (float)sbs;

    memset(q4, 0, (size_t)sbs / 2);
    store_f16(dh, 0.f);

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nblk; ++ib) {
        const float *xb = x + ib * block_size;
        uint8_t *Lb = L + ib * block_size;
        if (qw) {
            const float *w = qw + ib * block_size;
            for (int j = 0; j < block_size; ++j)
                weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < block_size; ++j)
                weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < block_size; ++j) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            scales[ib] = 0;
            /* ggml leaves these levels unset here; both callers below
             * overwrite them before packing, so zero them for clarity */
            memset(Lb, 0, (size_t)block_size);
            continue;
        }
        float d = -max / (float)values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < block_size; ++j) {
            const float al = id * xb[j];
            const int l = best_index_int8(IQ4_LEVELS, values, al);
            Lb[j] = (uint8_t)l;
            const float q = (float)values[l];
            const float w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumqx / sumq2;
        float best = d * sumqx;
        for (int itry = -IQ4_NTRY; itry <= IQ4_NTRY; ++itry) {
            id = (float)(itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < block_size; ++j) {
                const float al = id * xb[j];
                const int l = best_index_int8(IQ4_LEVELS, values, al);
                const float q = (float)values[l];
                const float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        const float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    if (nblk > 1) {
        scales_h[0] = scales_h[1] = 0;
        uint16_t sh = 0;
        const float d = -max_scale / 32;
        store_f16(dh, d);
        const float id = d != 0.0f ? 1 / d : 0.f;
        for (int ib = 0; ib < nblk; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = QF_MAX(-32, QF_MIN(31, l));
            const float dl = d * (float)l;
            const float idl = dl != 0.0f ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * block_size;
            const float *xb = x + ib * block_size;
            for (int j = 0; j < block_size; ++j)
                Lb[j] = (uint8_t)best_index_int8(IQ4_LEVELS, values, idl * xb[j]);
            l += 32;
            const uint8_t l_l = (uint8_t)(l & 0xf);
            const uint8_t l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0)
                scales_l[ib / 2] = l_l;
            else
                scales_l[ib / 2] = (uint8_t)(scales_l[ib / 2] | (l_l << 4));
            sh = (uint16_t)(sh | (l_h << (2 * (ib % 8))));
        }
        scales_h[0] = (uint8_t)sh;
        scales_h[1] = (uint8_t)(sh >> 8);
    } else {
        store_f16(dh, scales[0]);
        const float id = scales[0] != 0.0f ? 1 / scales[0] : 0;
        for (int j = 0; j < sbs; ++j)
            L[j] = (uint8_t)best_index_int8(IQ4_LEVELS, values, id * x[j]);
    }

    for (int i = 0; i < sbs / 32; ++i)
        for (int j = 0; j < 16; ++j)
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void qf_quant_row_iq4_nl(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_iq4_nl *y = vy;
    for (int64_t ib = 0; ib < n / QK_LEGACY; ++ib)
        iq4_superblock(QK_LEGACY, x + QK_LEGACY * ib, y[ib].d, y[ib].qs, NULL, NULL,
                       qw ? qw + QK_LEGACY * ib : NULL);
}

void qf_quant_row_iq4_xs(const float *x, void *vy, int64_t n, const float *qw)
{
    qf_block_iq4_xs *y = vy;
    for (int64_t ib = 0; ib < n / QK_K; ++ib)
        iq4_superblock(QK_K, x + QK_K * ib, y[ib].d, y[ib].qs, y[ib].scales_h, y[ib].scales_l,
                       qw ? qw + QK_K * ib : NULL);
}

void qf_quant_dequant_iq4_nl(const void *vx, float *y, int64_t n)
{
    const qf_block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, y += QK_LEGACY) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < QK_LEGACY / 2; ++j) {
            y[j] = d * (float)qf_quant_kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + QK_LEGACY / 2] = d * (float)qf_quant_kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

void qf_quant_dequant_iq4_xs(const void *vx, float *y, int64_t n)
{
    const qf_block_iq4_xs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = load_f16(x[i].d);
        const unsigned sh = (unsigned)x[i].scales_h[0] | ((unsigned)x[i].scales_h[1] << 8);
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
                           (int)(((sh >> 2 * ib) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * (float)qf_quant_kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * (float)qf_quant_kvalues_iq4nl[qs[j] >> 4];
            }
            y += 32;
            qs += 16;
        }
    }
}
