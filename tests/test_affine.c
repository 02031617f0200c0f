/*
 * tests/test_affine.c - quantize/affine: QFM's affine INT4/INT8 per group
 * and symmetric INT8 per row.
 *
 * The golden bytes below are worked out by hand from the layouts and the
 * rounding contract in quantize/affine.h (the comment above each says how);
 * the rest checks the error bound the contract promises on random rows
 * (fixed seed), the edge cases (constant, all-zero, negative-only, F16
 * range limits, subnormal rows), the refusals, and the name and size
 * helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/error.h"
#include "formats/types.h"
#include "quantize/affine.h"

static const char *const ALL[] = { "int4-g32",  "int4-g64", "int4-g128", "int8-g32",
                                   "int8-g64",  "int8-g128", "int8-ch" };
#define N_ALL 7

/* Bytes of the widest of the seven rows of n columns (int8-g32: 4 + 32 per
 * 32 columns; int8-ch's 4 + n is smaller for n >= 32). */
#define MAXRS(n) ((n) / 32 * 36 + 4)

static qf_affine type_of(const char *name)
{
    qf_affine t = { 0, 0 };
    assert_int_equal(qf_affine_parse(name, &t), 0);
    return t;
}

/* Quantize `nrows` rows of n, compare with the expected bytes (printing the
 * first difference), then dequantize. */
static void check_bytes(const char *type, const float *x, int64_t nrows, int64_t n,
                        const uint8_t *want, size_t want_len)
{
    qf_affine t = type_of(type);
    uint64_t rs = qf_affine_row_size(t, n);
    uint8_t *got;
    size_t i;

    assert_int_equal(rs * (uint64_t)nrows, want_len);
    got = malloc(want_len);
    assert_non_null(got);
    assert_int_equal(qf_affine_quantize(t, x, got, nrows, n), 0);
    for (i = 0; i < want_len; i++)
        if (got[i] != want[i]) {
            print_error("%s: byte %zu: got 0x%02X, want 0x%02X\n", type, i, got[i], want[i]);
            fail();
        }
    free(got);
}

static void check_dequant(const char *type, const uint8_t *q, int64_t nrows, int64_t n,
                          const float *want)
{
    float *y = malloc((size_t)(nrows * n) * sizeof *y);
    int64_t i;
    assert_non_null(y);
    assert_int_equal(qf_affine_dequantize(type_of(type), q, y, nrows, n), 0);
    for (i = 0; i < nrows * n; i++)
        if (y[i] != want[i]) {
            print_error("%s: value %lld: got %.9g, want %.9g\n", type, (long long)i,
                        (double)y[i], (double)want[i]);
            fail();
        }
    free(y);
}

/* ---------------------------------------------------------------------
 * Golden bytes
 * ------------------------------------------------------------------- */

static void put_nibbles(uint8_t *dst, const int *q, int n)
{
    int j;
    for (j = 0; j < n / 2; j++)
        dst[j] = (uint8_t)(q[2 * j] | q[2 * j + 1] << 4);
}

static void test_golden_int4_g32(void **state)
{
    /* Group 0: x = j % 16, min 0, max 15: bias 0, scale 15/15 = 1 (0x3C00);
     * q = x. Group 1: bias -2 (0xC000), scale 3.75/15 = 0.25 (0x3400);
     * x = -2 + 0.25 * (15 - j % 16), except x[2] = -1.375 (q 2.5 -> 2, ties
     * to even) and x[3] = -1.125 (q 3.5 -> 4). */
    static const uint8_t want[] = {
        0x00, 0x3C, 0x00, 0x00, 0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,
        0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,
        0x00, 0x34, 0x00, 0xC0, 0xEF, 0x42, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01,
        0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01,
    };
    float x[64], y[64];
    int j;
    (void)state;
    for (j = 0; j < 32; j++) {
        x[j] = (float)(j % 16);
        x[32 + j] = -2.0f + 0.25f * (float)(15 - j % 16);
    }
    x[34] = -1.375f;
    x[35] = -1.125f;
    check_bytes("int4-g32", x, 1, 64, want, sizeof want);
    for (j = 0; j < 64; j++)
        y[j] = x[j];
    y[34] = -1.5f; /* q 2 */
    y[35] = -1.0f; /* q 4 */
    check_dequant("int4-g32", want, 1, 64, y);
}

static void test_golden_int4_g64(void **state)
{
    /* x[0] = 0, x[1] = 1, the rest 0.5. bias 0; 1/15 = 0.0666667 lies
     * between the F16 values 0x2C44 (0.0666504) and 0x2C45 (0.0667114):
     * rounded up, 0x2C45. Then 0.5 / 0.0667114 = 7.495 -> 7 (with the
     * nearest scale 0x2C44 it would have been 7.502 -> 8), 1 -> 14.99 -> 15. */
    uint8_t want[4 + 32];
    float x[64], y[64];
    const float s = 0.0625f * (1.0f + 69.0f / 1024.0f);
    int j;
    (void)state;
    want[0] = 0x45, want[1] = 0x2C, want[2] = 0x00, want[3] = 0x00;
    want[4] = 0xF0;
    memset(want + 5, 0x77, 31);
    for (j = 0; j < 64; j++)
        x[j] = 0.5f, y[j] = s * 7.0f;
    x[0] = 0.0f, x[1] = 1.0f;
    y[0] = 0.0f, y[1] = s * 15.0f;
    check_bytes("int4-g64", x, 1, 64, want, sizeof want);
    check_dequant("int4-g64", want, 1, 64, y);
}

static void test_golden_int4_g128(void **state)
{
    /* Negative only: x = -(j % 16), min -15 (0xCB80: 1.875 * 2^3), max 0,
     * scale 15/15 = 1; q = x + 15 = 15 - j % 16. Two rows, the second
     * doubled: bias -30 (0xCF80), scale 2 (0x4000), same codes. */
    uint8_t want[2 * (4 + 64)];
    int q[128];
    float x[256];
    int j, r;
    (void)state;
    for (j = 0; j < 128; j++) {
        x[j] = -(float)(j % 16);
        x[128 + j] = 2.0f * x[j];
        q[j] = 15 - j % 16;
    }
    for (r = 0; r < 2; r++) {
        uint8_t *w = want + r * 68;
        w[0] = 0x00, w[1] = r ? 0x40 : 0x3C, w[2] = 0x80, w[3] = r ? 0xCF : 0xCB;
        put_nibbles(w + 4, q, 128);
        assert_int_equal(w[4], 0xEF);
        assert_int_equal(w[11], 0x01);
    }
    check_bytes("int4-g128", x, 2, 128, want, sizeof want);
    check_dequant("int4-g128", want, 2, 128, x);
}

static void test_golden_int8_g32(void **state)
{
    /* x = 8j, x[31] = 255: bias 0, scale 255/255 = 1; q = x, except
     * x[1] = 8.5 -> 8 and x[2] = 17.5 -> 18 (ties to even). */
    uint8_t want[4 + 32] = { 0x00, 0x3C, 0x00, 0x00 };
    float x[32], y[32];
    int j;
    (void)state;
    for (j = 0; j < 32; j++) {
        x[j] = y[j] = (float)(8 * j);
        want[4 + j] = (uint8_t)(8 * j);
    }
    x[31] = y[31] = 255.0f, want[4 + 31] = 0xFF;
    x[1] = 8.5f, y[1] = 8.0f, want[5] = 0x08;
    x[2] = 17.5f, y[2] = 18.0f, want[6] = 0x12;
    check_bytes("int8-g32", x, 1, 32, want, sizeof want);
    check_dequant("int8-g32", want, 1, 32, y);
}

static void test_golden_int8_g64(void **state)
{
    /* x = 0.5 + 0.5 * q with q = 4j (j < 63) and q = 255 last: bias 0.5
     * (0x3800), scale (128 - 0.5)/255 = 0.5 (0x3800). */
    uint8_t want[4 + 64] = { 0x00, 0x38, 0x00, 0x38 };
    float x[64];
    int j;
    (void)state;
    for (j = 0; j < 64; j++) {
        int q = j < 63 ? 4 * j : 255;
        x[j] = 0.5f + 0.5f * (float)q;
        want[4 + j] = (uint8_t)q;
    }
    check_bytes("int8-g64", x, 1, 64, want, sizeof want);
    check_dequant("int8-g64", want, 1, 64, x);
}

static void test_golden_int8_g128(void **state)
{
    /* Constant 0.1: bias = F16(0.1) = 0x2E66 (0.0999755859375), scale 0,
     * every code 0; comes back as the F16 value. */
    uint8_t want[4 + 128] = { 0x00, 0x00, 0x66, 0x2E };
    float x[128], y[128];
    int j;
    (void)state;
    for (j = 0; j < 128; j++)
        x[j] = 0.1f, y[j] = 0.0999755859375f;
    check_bytes("int8-g128", x, 1, 128, want, sizeof want);
    check_dequant("int8-g128", want, 1, 128, y);
}

static void test_golden_int8_ch(void **state)
{
    /* Row 0: max |w| 127 -> scale 1.0f (00 00 80 3F); 63.5 -> 64,
     * -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -63.5 -> -64 (ties to even).
     * Row 1: all zero -> scale 0, codes 0. Row 2: max 254 -> scale 2
     * (00 00 00 40): 1 -> 0.5 -> 0, 3 -> 2, -5 -> -2, 101 -> 50. */
    static const float x[24] = { 127, -127, 63.5f, -0.5f, 0.5f, 1.5f, 2.5f, -63.5f,
                                 0, 0, 0, 0, 0, 0, 0, 0,
                                 254, 1, 3, -5, 0, -254, 100, 101 };
    static const uint8_t want[36] = {
        0x00, 0x00, 0x80, 0x3F, 0x7F, 0x81, 0x40, 0x00, 0x00, 0x02, 0x02, 0xC0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x40, 0x7F, 0x00, 0x02, 0xFE, 0x00, 0x81, 0x32, 0x32,
    };
    static const float y[24] = { 127, -127, 64, 0, 0, 2, 2, -64,
                                 0, 0, 0, 0, 0, 0, 0, 0,
                                 254, 0, 4, -4, 0, -254, 100, 100 };
    (void)state;
    check_bytes("int8-ch", x, 3, 8, want, sizeof want);
    check_dequant("int8-ch", want, 3, 8, y);
}

/* ---------------------------------------------------------------------
 * Error bound on random rows
 * ------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void) /* uniform in [-1, 1), xorshift64* */
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 4503599627370496.0 - 1.0);
}

/*
 * Check every value of rows quantized with type t against the bound of
 * affine.h: |y - x| <= scale / 2 + |bias - min| for the affine types,
 * scale / 2 for int8-ch, where scale and bias are read back from the
 * bytes. A little slack (2^-20 relative to the values involved) covers the
 * float arithmetic of (w - bias) / scale and scale * q + bias. Returns the
 * largest error in units of scale (for the test to report).
 */
static double check_bound(qf_affine t, const float *x, int64_t nrows, int64_t n)
{
    uint64_t rs = qf_affine_row_size(t, n);
    uint8_t *q = malloc(rs * (uint64_t)nrows);
    float *y = malloc((size_t)(nrows * n) * sizeof *y);
    double worst = 0.0;
    int64_t r, j;

    assert_non_null(q);
    assert_non_null(y);
    assert_int_equal(qf_affine_quantize(t, x, q, nrows, n), 0);
    assert_int_equal(qf_affine_dequantize(t, q, y, nrows, n), 0);
    for (r = 0; r < nrows; r++) {
        const uint8_t *p = q + (uint64_t)r * rs;
        for (j = 0; j < n; j++) {
            double scale, bias = 0.0, lo = 0.0, bound, err, slack;
            const float *xr = x + r * n;
            if (t.group == 0) {
                float s;
                uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                (uint32_t)p[3] << 24;
                memcpy(&s, &bits, 4);
                scale = s;
            } else {
                int64_t g = j / t.group, k;
                const uint8_t *gp = p + (uint64_t)g * (4u + (uint64_t)(t.group * t.bits / 8));
                scale = qf_f16_to_f32((uint16_t)(gp[0] | gp[1] << 8));
                bias = qf_f16_to_f32((uint16_t)(gp[2] | gp[3] << 8));
                lo = (double)xr[g * t.group];
                for (k = g * t.group; k < (g + 1) * t.group; k++)
                    lo = (double)xr[k] < lo ? (double)xr[k] : lo;
            }
            bound = scale / 2.0 + fabs(bias - lo);
            slack = (fabs((double)xr[j]) + fabs(bias) + scale) * 0x1p-20;
            err = fabs((double)y[r * n + j] - (double)xr[j]);
            if (err > bound + slack) {
                print_error("%s row %lld col %lld: x %.9g y %.9g err %.3g > bound %.3g (scale %.3g)\n",
                            qf_affine_name(t), (long long)r, (long long)j, (double)xr[j],
                            (double)y[r * n + j], err, bound, scale);
                fail();
            }
            if (scale > 0.0 && (err - fabs(bias - lo)) / scale > worst)
                worst = (err - fabs(bias - lo)) / scale;
        }
    }
    free(q);
    free(y);
    return worst;
}

static void test_error_bound_random(void **state)
{
    /* 64 rows of 256 in each of five magnitudes: 1, 1e-2, 1e-5 (int8 scales
     * are F16 subnormals there), 1e3, and rows offset by 100 (bias
     * rounding dominates). */
    static const float mags[] = { 1.0f, 1e-2f, 1e-5f, 1e3f, 1.0f };
    const int64_t nrows = 64, n = 256;
    float *x = malloc((size_t)(nrows * n) * sizeof *x);
    int k, m;
    int64_t i;
    (void)state;
    assert_non_null(x);
    for (k = 0; k < N_ALL; k++) {
        for (m = 0; m < 5; m++) {
            double worst;
            for (i = 0; i < nrows * n; i++)
                x[i] = mags[m] * frand() + (m == 4 ? 100.0f : 0.0f);
            worst = check_bound(type_of(ALL[k]), x, nrows, n);
            assert_true(worst <= 0.5 + 4e-3); /* float arithmetic near 100 */
        }
    }
    free(x);
}

/* With the scale rounded to nearest instead of up, this group would clamp
 * its top value by dozens of steps: an int8 group spanning ~2e-5 has a
 * scale of 1.4 F16 subnormal units, rounded to nearest 1 unit, and
 * 255 * 0.4 units of range would be lost. */
static void test_subnormal_scale(void **state)
{
    float x[32];
    uint8_t q[4 + 32];
    float y[32];
    const float unit = 0x1p-24f;
    int j;
    (void)state;
    for (j = 0; j < 32; j++)
        x[j] = unit * 1.4f * 255.0f * (float)j / 31.0f;
    check_bound(type_of("int8-g32"), x, 1, 32);
    assert_int_equal(qf_affine_quantize(type_of("int8-g32"), x, q, 1, 32), 0);
    assert_int_equal(q[0] | q[1] << 8, 2); /* scale rounded up to 2 units */
    assert_int_equal(qf_affine_dequantize(type_of("int8-g32"), q, y, 1, 32), 0);
    assert_true(fabsf(y[31] - x[31]) <= unit); /* top within half a step (2 units) */
}

/* ---------------------------------------------------------------------
 * Edge cases
 * ------------------------------------------------------------------- */

static void test_all_zero_rows(void **state)
{
    float x[2 * 256] = { 0 }, y[2 * 256];
    uint8_t q[2 * MAXRS(256)];
    int k;
    (void)state;
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        uint64_t rs = qf_affine_row_size(t, 256), i;
        memset(q, 0xAA, sizeof q);
        assert_int_equal(qf_affine_quantize(t, x, q, 2, 256), 0);
        for (i = 0; i < 2 * rs; i++)
            assert_int_equal(q[i], 0); /* scale 0, bias 0, codes 0 */
        memset(y, 0x55, sizeof y);
        assert_int_equal(qf_affine_dequantize(t, q, y, 2, 256), 0);
        for (i = 0; i < 512; i++)
            assert_true(y[i] == 0.0f && !signbit(y[i]));
    }
}

static void test_constant_groups(void **state)
{
    /* Each 32-column stretch constant, a different value each: every
     * affine group comes back as the F16 rounding of its value, with
     * scale 0; int8-ch exactly where the value is +-max. */
    static const float vals[8] = { 0.1f, -3.3f, 1000.7f, 65504.0f, -65504.0f, 1e-6f, -7.0f, 0.0f };
    float x[256], y[256];
    uint8_t q[MAXRS(256)];
    int k, j;
    (void)state;
    for (j = 0; j < 256; j++)
        x[j] = vals[j / 32];
    for (k = 0; k < 6; k++) { /* the affine types */
        qf_affine t = type_of(ALL[k]);
        if (t.group != 32)
            continue; /* wider groups span several values: not constant */
        assert_int_equal(qf_affine_quantize(t, x, q, 1, 256), 0);
        assert_int_equal(qf_affine_dequantize(t, q, y, 1, 256), 0);
        for (j = 0; j < 256; j++)
            assert_true(y[j] == qf_f16_to_f32(qf_f32_to_f16(x[j])));
        for (j = 0; j < 8; j++) { /* scale 0 in every group */
            const uint8_t *g = q + j * (4 + 32 * t.bits / 8);
            assert_int_equal(g[0] | g[1], 0);
        }
    }
    /* int8-ch: a constant row is +-127 * scale */
    for (j = 0; j < 64; j++)
        x[j] = -3.3f;
    assert_int_equal(qf_affine_quantize(type_of("int8-ch"), x, q, 1, 64), 0);
    assert_int_equal(q[4], 0x81);
    assert_int_equal(qf_affine_dequantize(type_of("int8-ch"), q, y, 1, 64), 0);
    assert_true(fabsf(y[0] + 3.3f) <= 3.3f * 0x1p-22f);
}

static void test_negative_only(void **state)
{
    float x[4 * 128];
    int k, i;
    (void)state;
    for (i = 0; i < 4 * 128; i++)
        x[i] = -1.0f - 4.0f * (frand() + 1.0f); /* in [-9, -1) */
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        uint8_t q[4 * MAXRS(128)];
        float y[4 * 128];
        check_bound(t, x, 4, 128);
        assert_int_equal(qf_affine_quantize(t, x, q, 4, 128), 0);
        assert_int_equal(qf_affine_dequantize(t, q, y, 4, 128), 0);
        for (i = 0; i < 4 * 128; i++)
            assert_true(y[i] < 0.0f);
    }
}

static void test_f16_range(void **state)
{
    float x[128], y[128];
    uint8_t q[MAXRS(128)];
    int k, j;
    (void)state;
    /* +-65504 in one group: accepted by every type, ends exact for int4
     * (bias -65504, scale 131008/15 = 8733.9 -> F16 8736 (ceil), top code
     * 15 -> 65536: within half a step, never infinite). */
    for (j = 0; j < 128; j++)
        x[j] = j % 2 ? 65504.0f : -65504.0f;
    x[2] = 0.0f;
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        assert_int_equal(qf_affine_quantize(t, x, q, 1, 128), 0);
        assert_int_equal(qf_affine_dequantize(t, q, y, 1, 128), 0);
        for (j = 0; j < 128; j++)
            assert_true(isfinite(y[j]));
        assert_true(y[0] == -65504.0f);
        check_bound(t, x, 1, 128);
    }
    /* A minimum of -65520 (rounds to -inf in F16): refused by the affine
     * types, taken by int8-ch (F32 scale). Just above, -65519, rounds to
     * -65504 and is taken. */
    for (j = 0; j < 128; j++)
        x[j] = 1.0f;
    x[5] = -65520.0f;
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        assert_int_equal(qf_affine_quantize(t, x, q, 1, 128), t.group ? QF_EINVAL : 0);
    }
    x[5] = -65519.0f;
    for (k = 0; k < N_ALL; k++)
        assert_int_equal(qf_affine_quantize(type_of(ALL[k]), x, q, 1, 128), 0);
    /* A spread whose scale passes 65504: 0 .. 1e6 is 66667 per int4 step
     * (refused) but 3922 per int8 step (taken, and within bound). */
    x[5] = 0.0f;
    x[6] = 1e6f;
    assert_int_equal(qf_affine_quantize(type_of("int4-g32"), x, q, 1, 128), QF_EINVAL);
    check_bound(type_of("int8-g32"), x, 1, 128);
    /* The largest floats: refused by the affine types (max - min overflows
     * F32 and F16), taken by int8-ch. */
    x[5] = -FLT_MAX;
    x[6] = FLT_MAX;
    assert_int_equal(qf_affine_quantize(type_of("int8-g128"), x, q, 1, 128), QF_EINVAL);
    x[5] = 0.0f;
    assert_int_equal(qf_affine_quantize(type_of("int8-g128"), x, q, 1, 128), QF_EINVAL);
    x[5] = -FLT_MAX;
    check_bound(type_of("int8-ch"), x, 1, 128);
    assert_int_equal(qf_affine_quantize(type_of("int8-ch"), x, q, 1, 128), 0);
    assert_int_equal(qf_affine_dequantize(type_of("int8-ch"), q, y, 1, 128), 0);
    assert_true(isfinite(y[6]) && isfinite(y[5]) && y[6] > 0.99f * FLT_MAX);
}

static void test_subnormal_int8_ch(void **state)
{
    /* max |w| = 1e-39 (an F32 subnormal): scale ~7.9e-42, whose reciprocal
     * overflows F32. Zeros must stay 0 (not 0 * inf = NaN) and the rest be
     * within half a step. */
    float x[32] = { 0 }, y[32];
    uint8_t q[4 + 32];
    int j;
    (void)state;
    x[0] = 1e-39f, x[1] = -1e-39f, x[2] = 5e-40f;
    assert_int_equal(qf_affine_quantize(type_of("int8-ch"), x, q, 1, 32), 0);
    assert_int_equal(q[4], 0x7F);
    assert_int_equal(q[5], 0x81);
    for (j = 3; j < 32; j++)
        assert_int_equal(q[4 + j], 0);
    assert_int_equal(qf_affine_dequantize(type_of("int8-ch"), q, y, 1, 32), 0);
    for (j = 0; j < 32; j++)
        assert_true(isfinite(y[j]));
    check_bound(type_of("int8-ch"), x, 1, 32);
}

static void test_nan_inf_refused(void **state)
{
    static const float bad[3] = { NAN, INFINITY, -INFINITY };
    float x[3 * 64];
    uint8_t q[3 * MAXRS(64)];
    int k, b, j;
    (void)state;
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        uint64_t rs = qf_affine_row_size(t, 64);
        if (!rs)
            continue; /* int4-g128 and int8-g128 need 128 columns */
        for (b = 0; b < 3; b++) {
            for (j = 0; j < 3 * 64; j++)
                x[j] = (float)j / 64.0f;
            x[64 + 17] = bad[b]; /* in row 1 */
            memset(q, 0xEE, sizeof q);
            assert_int_equal(qf_affine_quantize(t, x, q, 3, 64), QF_EINVAL);
            assert_true(q[0] != 0xEE || q[1] != 0xEE); /* row 0 written */
            for (j = 0; j < (int)rs; j++)               /* row 2 untouched */
                assert_int_equal(q[2 * rs + (uint64_t)j], 0xEE);
        }
    }
}

/* ---------------------------------------------------------------------
 * Names, sizes, invalid arguments
 * ------------------------------------------------------------------- */

static void test_names(void **state)
{
    static const qf_affine want[N_ALL] = { { 4, 32 }, { 4, 64 }, { 4, 128 }, { 8, 32 },
                                           { 8, 64 }, { 8, 128 }, { 8, 0 } };
    static const char *const bad[] = { "", "int4", "int4-g16", "int4-g", "int8-ch ", "int4-ch",
                                       "int2-g32", "q4_0", "int4-g032", "int8-g256" };
    qf_affine t;
    size_t k;
    (void)state;
    for (k = 0; k < N_ALL; k++) {
        t.bits = t.group = -1;
        assert_int_equal(qf_affine_parse(ALL[k], &t), 0);
        assert_int_equal(t.bits, want[k].bits);
        assert_int_equal(t.group, want[k].group);
        assert_string_equal(qf_affine_name(t), ALL[k]);
    }
    assert_int_equal(qf_affine_parse("INT4-G64", &t), 0);
    assert_string_equal(qf_affine_name(t), "int4-g64");
    assert_int_equal(qf_affine_parse("Int8-Ch", &t), 0);
    assert_string_equal(qf_affine_name(t), "int8-ch");
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        t.bits = 99;
        assert_int_equal(qf_affine_parse(bad[k], &t), QF_EINVAL);
        assert_int_equal(t.bits, 99); /* untouched */
    }
    assert_int_equal(qf_affine_parse(NULL, &t), QF_EINVAL);
    t.bits = 4, t.group = 0;
    assert_null(qf_affine_name(t));
    t.bits = 4, t.group = 16;
    assert_null(qf_affine_name(t));
    t.bits = 2, t.group = 32;
    assert_null(qf_affine_name(t));
}

static void test_row_sizes(void **state)
{
    /* 4 + G/2 (int4) or 4 + G (int8) bytes per group; 4 + n per int8-ch row */
    static const uint64_t want_256[N_ALL] = { 8 * 20, 4 * 36, 2 * 68, 8 * 36, 4 * 68, 2 * 132, 260 };
    int k;
    (void)state;
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        assert_int_equal(qf_affine_row_size(t, 256), want_256[k]);
        assert_int_equal(qf_affine_row_size(t, 0), 0);
        assert_int_equal(qf_affine_row_size(t, -128), 0);
    }
    assert_int_equal(qf_affine_row_size(type_of("int4-g128"), 64), 0);
    assert_int_equal(qf_affine_row_size(type_of("int8-g32"), 33), 0);
    assert_int_equal(qf_affine_row_size(type_of("int8-ch"), 33), 37);
    assert_int_equal(qf_affine_row_size(type_of("int8-ch"), 1), 5);
    /* bits per weight: 5, 4.5, 4.25, 9, 8.5, 8.25 */
    assert_int_equal(qf_affine_row_size(type_of("int4-g32"), 4096) * 8, 5 * 4096);
    assert_int_equal(qf_affine_row_size(type_of("int8-g128"), 4096) * 800, 825 * 4096);
    /* a long row does not overflow */
    assert_int_equal(qf_affine_row_size(type_of("int4-g64"), (int64_t)1 << 40),
                     ((uint64_t)1 << 34) * 36);
}

static void test_invalid(void **state)
{
    static const qf_affine bad[] = { { 4, 0 }, { 4, 16 }, { 8, 256 }, { 2, 32 }, { 0, 0 }, { 8, -32 } };
    float x[256] = { 0 }, y[256];
    uint8_t q[MAXRS(256)];
    size_t k;
    (void)state;
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(qf_affine_row_size(bad[k], 256), 0);
        assert_int_equal(qf_affine_quantize(bad[k], x, q, 1, 256), QF_EINVAL);
        assert_int_equal(qf_affine_dequantize(bad[k], q, y, 1, 256), QF_EINVAL);
    }
    /* n not a multiple of the group, n <= 0, nrows < 0 */
    assert_int_equal(qf_affine_quantize(type_of("int4-g64"), x, q, 1, 96), QF_EINVAL);
    assert_int_equal(qf_affine_dequantize(type_of("int4-g64"), q, y, 1, 96), QF_EINVAL);
    assert_int_equal(qf_affine_quantize(type_of("int8-ch"), x, q, 1, 0), QF_EINVAL);
    assert_int_equal(qf_affine_quantize(type_of("int8-g32"), x, q, -1, 32), QF_EINVAL);
    assert_int_equal(qf_affine_dequantize(type_of("int8-g32"), q, y, -1, 32), QF_EINVAL);
    /* zero rows: nothing to do */
    assert_int_equal(qf_affine_quantize(type_of("int8-g32"), x, q, 0, 32), 0);
}

static void test_unaligned_buffers(void **state)
{
    /* Any alignment for the packed bytes: quantize at offset 1 and 3 gives
     * the same bytes and values. */
    float x[2 * 128], y[2 * 128], y2[2 * 128];
    uint8_t a[2 * MAXRS(128) + 8], b[2 * MAXRS(128) + 8];
    int k, i;
    (void)state;
    for (i = 0; i < 256; i++)
        x[i] = frand();
    for (k = 0; k < N_ALL; k++) {
        qf_affine t = type_of(ALL[k]);
        uint64_t rs = qf_affine_row_size(t, 128);
        assert_int_equal(qf_affine_quantize(t, x, a + 1, 2, 128), 0);
        assert_int_equal(qf_affine_quantize(t, x, b + 3, 2, 128), 0);
        assert_memory_equal(a + 1, b + 3, 2 * rs);
        assert_int_equal(qf_affine_dequantize(t, a + 1, y, 2, 128), 0);
        assert_int_equal(qf_affine_dequantize(t, b + 3, y2, 2, 128), 0);
        assert_memory_equal(y, y2, sizeof y);
        /* rows are independent: row 1 alone gives row 1's bytes */
        assert_int_equal(qf_affine_quantize(t, x + 128, b, 1, 128), 0);
        assert_memory_equal(a + 1 + rs, b, rs);
    }
}

/* Type codes: distinct, above every ggml id, in the documented order, and
 * back to the same type; anything else is not a code. */
static void test_codes(void **state)
{
    qf_affine t, u = { 0, 0 };
    size_t k;
    (void)state;
    for (k = 0; k < sizeof ALL / sizeof ALL[0]; k++) {
        int c = qf_affine_code(type_of(ALL[k]));
        assert_int_equal(c, QF_AFFINE_CODE_BASE + (int)k);
        assert_true(c >= QF_GGML_TYPE_COUNT);
        assert_int_equal(qf_affine_from_code(c, &t), 1);
        assert_string_equal(qf_affine_name(t), ALL[k]);
    }
    assert_int_equal(QF_AFFINE_CODE_COUNT, (int)(sizeof ALL / sizeof ALL[0]));
    t.bits = 4;
    t.group = 16;
    assert_int_equal(qf_affine_code(t), -1);
    assert_int_equal(qf_affine_from_code(QF_AFFINE_CODE_BASE - 1, &u), 0);
    assert_int_equal(qf_affine_from_code(QF_AFFINE_CODE_BASE + QF_AFFINE_CODE_COUNT, &u), 0);
    assert_int_equal(qf_affine_from_code(QF_GGML_Q8_0, &u), 0);
    assert_int_equal(u.bits, 0); /* untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_int4_g32),  cmocka_unit_test(test_golden_int4_g64),
        cmocka_unit_test(test_golden_int4_g128), cmocka_unit_test(test_golden_int8_g32),
        cmocka_unit_test(test_golden_int8_g64),  cmocka_unit_test(test_golden_int8_g128),
        cmocka_unit_test(test_golden_int8_ch),   cmocka_unit_test(test_error_bound_random),
        cmocka_unit_test(test_subnormal_scale),  cmocka_unit_test(test_all_zero_rows),
        cmocka_unit_test(test_constant_groups),  cmocka_unit_test(test_negative_only),
        cmocka_unit_test(test_f16_range),        cmocka_unit_test(test_subnormal_int8_ch),
        cmocka_unit_test(test_nan_inf_refused),  cmocka_unit_test(test_names),
        cmocka_unit_test(test_row_sizes),        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_unaligned_buffers), cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
