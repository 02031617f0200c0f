/*
 * quantize/affine.c - affine INT4/INT8 per group and symmetric INT8 per
 * row (layouts in affine.h).
 */
#include "quantize/affine.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "formats/types.h"

static const struct {
    const char *name;
    qf_affine t;
} names[] = {
    { "int4-g32", { 4, 32 } },  { "int4-g64", { 4, 64 } }, { "int4-g128", { 4, 128 } },
    { "int8-g32", { 8, 32 } },  { "int8-g64", { 8, 64 } }, { "int8-g128", { 8, 128 } },
    { "int8-ch", { 8, 0 } },
};
_Static_assert(sizeof names / sizeof names[0] == QF_AFFINE_CODE_COUNT, "one code per type");

int qf_affine_parse(const char *name, qf_affine *t)
{
    size_t i;
    for (i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (!strcasecmp(name, names[i].name)) {
            *t = names[i].t;
            return 0;
        }
    }
    return QF_EINVAL;
}

const char *qf_affine_name(qf_affine t)
{
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].t.bits == t.bits && names[i].t.group == t.group)
            return names[i].name;
    return NULL;
}

int qf_affine_code(qf_affine t)
{
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].t.bits == t.bits && names[i].t.group == t.group)
            return QF_AFFINE_CODE_BASE + (int)i;
    return -1;
}

int qf_affine_from_code(int code, qf_affine *t)
{
    if (code < QF_AFFINE_CODE_BASE || code >= QF_AFFINE_CODE_BASE + QF_AFFINE_CODE_COUNT)
        return 0;
    *t = names[code - QF_AFFINE_CODE_BASE].t;
    return 1;
}

uint64_t qf_affine_row_size(qf_affine t, int64_t n)
{
    if (!qf_affine_name(t) || n <= 0)
        return 0;
    if (t.group == 0)
        return 4 + (uint64_t)n;
    if (n % t.group)
        return 0;
    return (uint64_t)(n / t.group) * (uint64_t)(4 + t.group * t.bits / 8);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* The smallest F16 value >= v (v >= 0, finite): F16 round-up. */
static uint16_t f16_ceil(float v)
{
    uint16_t h = qf_f32_to_f16(v);
    if (qf_f16_to_f32(h) < v)
        h++; /* positive halves are ordered like their bits (65504 + 1 ulp = inf) */
    return h;
}

/* One group of g values at x -> scale, bias and g codes in 0..qmax.
 * Returns 0, or QF_EINVAL when the bias or the scale is not a finite F16. */
static int quantize_group(const float *x, int g, int qmax, uint8_t *q, uint16_t *hs, uint16_t *hb)
{
    float lo = x[0], hi = x[0], scale, bias;
    int j;
    for (j = 1; j < g; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *hb = qf_f32_to_f16(lo);
    bias = qf_f16_to_f32(*hb);
    if (isinf(bias))
        return QF_EINVAL;
    /* hi > bias: the spread from the rounded bias, rounded up, so that
     * bias + qmax * scale >= max and no value is clamped by more than half
     * a step (rounding to nearest could lose up to qmax / 2 ulps of the
     * scale at the top: many steps when the scale is an F16 subnormal). */
    *hs = hi > lo && hi > bias ? f16_ceil((hi - bias) / (float)qmax) : 0;
    scale = qf_f16_to_f32(*hs);
    if (isinf(scale))
        return QF_EINVAL;
    for (j = 0; j < g; j++) {
        float v = scale != 0.0f ? nearbyintf((x[j] - bias) / scale) : 0.0f;
        v = v < 0.0f ? 0.0f : v > (float)qmax ? (float)qmax : v;
        q[j] = (uint8_t)v;
    }
    return 0;
}

static int finite_row(const float *x, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int qf_affine_quantize(qf_affine t, const float *src, void *dst, int64_t nrows, int64_t n)
{
    uint64_t rs = qf_affine_row_size(t, n);
    uint8_t *out = dst;
    int64_t r;
    if (!rs || nrows < 0)
        return QF_EINVAL;
    for (r = 0; r < nrows; r++) {
        const float *x = src + r * n;
        uint8_t *o = out + (uint64_t)r * rs;
        if (!finite_row(x, n))
            return QF_EINVAL;
        if (t.group == 0) {
            float amax = 0.0f, scale;
            uint32_t bits;
            int64_t j;
            for (j = 0; j < n; j++)
                amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
            scale = amax / 127.0f;
            if (isinf(scale * 127.0f)) /* amax near FLT_MAX: keep 127 * scale finite */
                scale = nextafterf(scale, 0.0f);
            memcpy(&bits, &scale, 4);
            o[0] = (uint8_t)bits;
            o[1] = (uint8_t)(bits >> 8);
            o[2] = (uint8_t)(bits >> 16);
            o[3] = (uint8_t)(bits >> 24);
            for (j = 0; j < n; j++) {
                /* a division, not a product with 1 / scale: for a
                 * subnormal row 1 / scale overflows, and 0 * inf is NaN */
                float v = scale != 0.0f ? nearbyintf(x[j] / scale) : 0.0f;
                v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
                o[4 + j] = (uint8_t)(int8_t)v;
            }
            continue;
        }
        {
            int g = t.group, qmax = (1 << t.bits) - 1, j;
            int64_t b;
            uint8_t q[128];
            for (b = 0; b < n / g; b++) {
                uint16_t hs, hb;
                if (quantize_group(x + b * g, g, qmax, q, &hs, &hb) != 0)
                    return QF_EINVAL;
                put16(o, hs);
                put16(o + 2, hb);
                if (t.bits == 8) {
                    memcpy(o + 4, q, (size_t)g);
                    o += 4 + g;
                } else {
                    for (j = 0; j < g / 2; j++)
                        o[4 + j] = (uint8_t)(q[2 * j] | q[2 * j + 1] << 4);
                    o += 4 + g / 2;
                }
            }
        }
    }
    return 0;
}

int qf_affine_dequantize(qf_affine t, const void *src, float *dst, int64_t nrows, int64_t n)
{
    uint64_t rs = qf_affine_row_size(t, n);
    const uint8_t *in = src;
    int64_t r;
    if (!rs || nrows < 0)
        return QF_EINVAL;
    for (r = 0; r < nrows; r++) {
        const uint8_t *p = in + (uint64_t)r * rs;
        float *y = dst + r * n;
        if (t.group == 0) {
            uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24;
            float scale;
            int64_t j;
            memcpy(&scale, &bits, 4);
            for (j = 0; j < n; j++)
                y[j] = scale * (float)(int8_t)p[4 + j];
            continue;
        }
        {
            int g = t.group, j;
            int64_t b;
            for (b = 0; b < n / g; b++) {
                float scale = qf_f16_to_f32(get16(p)), bias = qf_f16_to_f32(get16(p + 2));
                float *yb = y + b * g;
                if (t.bits == 8) {
                    for (j = 0; j < g; j++)
                        yb[j] = scale * (float)p[4 + j] + bias;
                    p += 4 + g;
                } else {
                    for (j = 0; j < g / 2; j++) {
                        yb[2 * j] = scale * (float)(p[4 + j] & 15) + bias;
                        yb[2 * j + 1] = scale * (float)(p[4 + j] >> 4) + bias;
                    }
                    p += 4 + g / 2;
                }
            }
        }
    }
    return 0;
}
