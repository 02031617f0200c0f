/*
 * tests/test_types.c - element types, ggml traits, conversions.
 * The half and bfloat16 tests are exhaustive over all 65,536 bit patterns.
 * The F32 -> F16 oracle is the compiler's _Float16 conversion (IEEE binary16,
 * round to nearest even), an implementation independent of ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "formats/error.h"
#include "formats/types.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t ref_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

/* Every half decodes to the value the compiler gives, and encodes back to
 * itself (NaNs come back quiet with their payload). */
static void test_f16_exhaustive(void **state)
{
    uint32_t h;
    (void)state;
    for (h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t hu = (uint16_t)h, back;
        float f = qf_f16_to_f32(hu);
        memcpy(&ref, &hu, 2);
        if (isnan(f)) {
            assert_true(((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0);
            back = qf_f32_to_f16(f);
            assert_int_equal(back, hu | 0x200);
            continue;
        }
        assert_int_equal(bits(f), bits((float)ref));
        back = qf_f32_to_f16(f);
        assert_int_equal(back, hu);
    }
}

/* Rounding: for every finite half, the midpoints to its neighbours and the
 * values just beside them round as IEEE says (ties to even). */
static void test_f16_rounding_midpoints(void **state)
{
    uint32_t h;
    (void)state;
    for (h = 0; h < 0x7C00; h++) {
        float lo = qf_f16_to_f32((uint16_t)h), hi = qf_f16_to_f32((uint16_t)(h + 1));
        double mid = ((double)lo + (double)hi) / 2.0;
        float m = (float)mid; /* exact: a half midpoint fits in F32 */
        float probes[3];
        int k;
        assert_true((double)m == mid);
        probes[0] = m;
        probes[1] = nextafterf(m, 0.0f);
        probes[2] = nextafterf(m, INFINITY);
        for (k = 0; k < 3; k++) {
            assert_int_equal(qf_f32_to_f16(probes[k]), ref_f16(probes[k]));
            assert_int_equal(qf_f32_to_f16(-probes[k]), ref_f16(-probes[k]));
        }
    }
}

/* A spread of F32 bit patterns (every 65,521st) against the oracle. */
static void test_f16_sampled(void **state)
{
    uint64_t u;
    (void)state;
    for (u = 0; u <= 0xFFFFFFFFu; u += 65521) {
        float f = from_bits((uint32_t)u);
        if (isnan(f))
            assert_true(isnan(qf_f16_to_f32(qf_f32_to_f16(f))));
        else
            assert_int_equal(qf_f32_to_f16(f), ref_f16(f));
    }
    assert_int_equal(qf_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(qf_f32_to_f16(65520.0f), 0x7C00); /* tie rounds up to inf */
    assert_int_equal(qf_f32_to_f16(65519.996f), 0x7BFF);
    assert_int_equal(qf_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(qf_f32_to_f16(0x1p-25f), 0x0000);         /* tie to even: 0 */
    assert_int_equal(qf_f32_to_f16(0x1.8p-24f), 0x0002);       /* tie to even: 2 */
    assert_int_equal(qf_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(qf_f32_to_f16(INFINITY), 0x7C00);
    assert_int_equal(qf_f32_to_f16(-INFINITY), 0xFC00);
}

/* Reference bf16 rounding, the slow way: pick the nearer of the two
 * candidates, ties to the even one. */
static uint16_t ref_bf16(float f)
{
    uint32_t u = bits(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double dlo, dhi, x = (double)f;
    if (isnan(f))
        return (uint16_t)(lo | 0x40);
    if ((u & 0xFFFF) == 0)
        return lo;
    dlo = (double)from_bits((uint32_t)lo << 16);
    dhi = (double)from_bits((uint32_t)hi << 16); /* may be inf: then it is farther */
    if (isinf(dhi)) {
        /* rounding to inf happens exactly when x >= max + half ulp */
        dhi = (x > 0 ? 1 : -1) * 0x1p128;
    }
    if (fabs(x - dlo) < fabs(x - dhi))
        return lo;
    if (fabs(x - dlo) > fabs(x - dhi))
        return hi;
    return (lo & 1) ? hi : lo;
}

static void test_bf16_exhaustive(void **state)
{
    uint32_t h;
    (void)state;
    for (h = 0; h < 65536; h++) {
        uint16_t hu = (uint16_t)h;
        float f = qf_bf16_to_f32(hu);
        assert_int_equal(bits(f), h << 16);
        if (isnan(f))
            assert_int_equal(qf_f32_to_bf16(f), hu | 0x40);
        else
            assert_int_equal(qf_f32_to_bf16(f), hu); /* subnormals too */
    }
}

static void test_bf16_rounding(void **state)
{
    uint64_t u;
    (void)state;
    for (u = 0; u <= 0xFFFFFFFFu; u += 65519)
        assert_int_equal(qf_f32_to_bf16(from_bits((uint32_t)u)), ref_bf16(from_bits((uint32_t)u)));
    /* every midpoint pattern xxxx8000 around a few exponents */
    for (u = 0; u < 65536; u += 1) {
        uint32_t p = ((uint32_t)u << 16) | 0x8000;
        assert_int_equal(qf_f32_to_bf16(from_bits(p)), ref_bf16(from_bits(p)));
    }
    assert_int_equal(qf_f32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80); /* max f32 -> inf */
    assert_int_equal(qf_f32_to_bf16(from_bits(0x7FA00000)), 0x7FE0); /* sNaN -> qNaN */
    assert_int_equal(qf_f32_to_bf16(from_bits(0x00000001)), 0x0000);
    assert_int_equal(qf_f32_to_bf16(from_bits(0x00008000)), 0x0000); /* tie -> even */
    assert_int_equal(qf_f32_to_bf16(from_bits(0x00018000)), 0x0002); /* tie -> even */
    assert_int_equal(qf_f32_to_bf16(from_bits(0x8006E44C)), 0x8007); /* golden subnormal */
    assert_int_equal(qf_f32_to_bf16(from_bits(0x00061F4B)), 0x0006);
}

/* The bulk conversions (F16C when the CPU has it, vectorized BF16) give
 * exactly the scalar results, NaNs and subnormals included. */
static void test_bulk_matches_scalar(void **state)
{
    enum { N = 4096 };
    static float in[N];
    static uint8_t out16[2 * N], outb[2 * N];
    uint64_t u = 0;
    size_t k;
    (void)state;
    while (u <= 0xFFFFFFFFu) {
        for (k = 0; k < N; k++, u += 257)
            in[k] = from_bits((uint32_t)u);
        assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F16, in, out16, N), 0);
        assert_int_equal(qf_f32_to_dtype(QF_DTYPE_BF16, in, outb, N), 0);
        for (k = 0; k < N; k++) {
            uint16_t h = (uint16_t)(out16[2 * k] | out16[2 * k + 1] << 8);
            uint16_t b = (uint16_t)(outb[2 * k] | outb[2 * k + 1] << 8);
            if (h != qf_f32_to_f16(in[k]) || b != qf_f32_to_bf16(in[k]))
                fail_msg("0x%08x: bulk f16 %04x bf16 %04x, scalar %04x %04x", bits(in[k]), h, b,
                         qf_f32_to_f16(in[k]), qf_f32_to_bf16(in[k]));
        }
    }
    /* F16 -> F32 in bulk: all 65,536 halves, NaN payloads kept as they are */
    {
        static uint8_t halves[2 * 65536];
        static float wide[65536];
        uint32_t h;
        for (h = 0; h < 65536; h++) {
            halves[2 * h] = (uint8_t)h;
            halves[2 * h + 1] = (uint8_t)(h >> 8);
        }
        assert_int_equal(qf_dtype_to_f32(QF_DTYPE_F16, halves, wide, 65536), 0);
        for (h = 0; h < 65536; h++)
            assert_int_equal(bits(wide[h]), bits(qf_f16_to_f32((uint16_t)h)));
        assert_int_equal(qf_dtype_to_f32(QF_DTYPE_F16, halves + 2 * 0x7C01, wide, 13), 0);
        for (h = 0; h < 13; h++)
            assert_int_equal(bits(wide[h]), bits(qf_f16_to_f32((uint16_t)(0x7C01 + h))));
    }
    /* every NaN payload's top bits, both signs, and odd lengths (tails) */
    for (k = 0; k < N; k++)
        in[k] = from_bits(0x7F800001u + (uint32_t)k * 2047u + (k & 1 ? 0x80000000u : 0));
    for (k = 1; k <= 17; k++) {
        assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F16, in, out16, k), 0);
        assert_int_equal(out16[2 * (k - 1)] | out16[2 * (k - 1) + 1] << 8, qf_f32_to_f16(in[k - 1]));
    }
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F16, in, out16, N), 0);
    for (k = 0; k < N; k++)
        assert_int_equal(out16[2 * k] | out16[2 * k + 1] << 8, qf_f32_to_f16(in[k]));
}

static void test_f8(void **state)
{
    int v;
    float f;
    uint8_t b;
    (void)state;
    for (v = 0; v < 256; v++) {
        uint8_t in = (uint8_t)v, out;
        assert_int_equal(qf_dtype_to_f32(QF_DTYPE_F8_E4M3, &in, &f, 1), 0);
        if ((v & 0x7F) == 0x7F) {
            assert_true(isnan(f));
        } else {
            assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F8_E4M3, &f, &out, 1), 0);
            assert_int_equal(out, in);
        }
        assert_int_equal(qf_dtype_to_f32(QF_DTYPE_F8_E5M2, &in, &f, 1), 0);
        if ((v & 0x7F) > 0x7C) {
            assert_true(isnan(f));
        } else {
            assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F8_E5M2, &f, &out, 1), 0);
            assert_int_equal(out, in);
        }
    }
    b = 0x7E; qf_dtype_to_f32(QF_DTYPE_F8_E4M3, &b, &f, 1); assert_true(f == 448.0f);
    b = 0x01; qf_dtype_to_f32(QF_DTYPE_F8_E4M3, &b, &f, 1); assert_true(f == 0x1p-9f);
    b = 0x38; qf_dtype_to_f32(QF_DTYPE_F8_E4M3, &b, &f, 1); assert_true(f == 1.0f);
    b = 0x7B; qf_dtype_to_f32(QF_DTYPE_F8_E5M2, &b, &f, 1); assert_true(f == 57344.0f);
    b = 0x7C; qf_dtype_to_f32(QF_DTYPE_F8_E5M2, &b, &f, 1); assert_true(isinf(f));
    b = 0x01; qf_dtype_to_f32(QF_DTYPE_F8_E5M2, &b, &f, 1); assert_true(f == 0x1p-16f);
    /* rounding and saturation */
    f = 1000.0f; qf_f32_to_dtype(QF_DTYPE_F8_E4M3, &f, &b, 1); assert_int_equal(b, 0x7E);
    f = 1.0625f; qf_f32_to_dtype(QF_DTYPE_F8_E4M3, &f, &b, 1); assert_int_equal(b, 0x38); /* tie -> even */
    f = 1.1875f; qf_f32_to_dtype(QF_DTYPE_F8_E4M3, &f, &b, 1); assert_int_equal(b, 0x3A); /* tie -> even */
    f = 1e6f; qf_f32_to_dtype(QF_DTYPE_F8_E5M2, &f, &b, 1); assert_int_equal(b, 0x7C);
    f = -0.0f; qf_f32_to_dtype(QF_DTYPE_F8_E5M2, &f, &b, 1); assert_int_equal(b, 0x80);
}

static void test_integers_and_bool(void **state)
{
    const float in[6] = { -2.5f, -1.5f, 0.5f, 1.5f, 300.0f, NAN };
    uint8_t buf[6 * 8];
    float out[6];
    (void)state;

    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_I8, in, buf, 6), 0);
    assert_int_equal((int8_t)buf[0], -2);
    assert_int_equal((int8_t)buf[1], -2);
    assert_int_equal((int8_t)buf[2], 0);
    assert_int_equal((int8_t)buf[3], 2);
    assert_int_equal((int8_t)buf[4], 127);
    assert_int_equal((int8_t)buf[5], 0);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_U8, in, buf, 6), 0);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[4], 255);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_I64, in, buf, 6), 0);
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_I64, buf, out, 6), 0);
    assert_true(out[0] == -2.0f && out[3] == 2.0f && out[4] == 300.0f && out[5] == 0.0f);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_I16, in, buf, 6), 0);
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_I16, buf, out, 6), 0);
    assert_true(out[1] == -2.0f && out[4] == 300.0f);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_I32, in, buf, 6), 0);
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_I32, buf, out, 6), 0);
    assert_true(out[0] == -2.0f && out[4] == 300.0f);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_BOOL, in, buf, 6), 0);
    assert_int_equal(buf[2], 1);
    buf[0] = 7;
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_BOOL, buf, out, 1), 0);
    assert_true(out[0] == 1.0f);
    assert_int_equal(qf_f32_to_dtype(QF_DTYPE_F64, in, buf, 5), 0);
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_F64, buf, out, 5), 0);
    assert_memory_equal(out, in, 5 * sizeof(float));
    assert_int_equal(qf_dtype_to_f32(QF_DTYPE_INVALID, buf, out, 1), QF_EINVAL);
}

static void test_dtype_names(void **state)
{
    int t;
    (void)state;
    for (t = 1; t < QF_DTYPE_COUNT; t++) {
        const char *n = qf_dtype_name((qf_dtype)t);
        assert_int_equal(qf_dtype_from_name(n, strlen(n)), t);
        assert_true(qf_dtype_size((qf_dtype)t) > 0);
    }
    assert_int_equal(qf_dtype_from_name("f32", 3), QF_DTYPE_INVALID);
    assert_int_equal(qf_dtype_from_name("F32x", 3), QF_DTYPE_F32); /* length-bounded */
    assert_int_equal(qf_dtype_size(QF_DTYPE_BF16), 2);
    assert_int_equal(qf_dtype_size(QF_DTYPE_F8_E4M3), 1);
}

static void test_ggml_traits(void **state)
{
    uint64_t n;
    int t, known = 0;
    (void)state;
    for (t = -1; t <= QF_GGML_TYPE_COUNT; t++) {
        const qf_ggml_traits *tr = qf_ggml_type_traits(t);
        if (!tr)
            continue;
        known++;
        assert_int_equal(qf_ggml_type_from_name(tr->name), t);
    }
    assert_int_equal(known, 32);
    assert_null(qf_ggml_type_traits(4));
    assert_null(qf_ggml_type_traits(31));
    assert_null(qf_ggml_type_traits(QF_GGML_TYPE_COUNT));
    assert_string_equal(qf_ggml_type_name(QF_GGML_Q4_K), "Q4_K");
    assert_int_equal(qf_ggml_type_from_name("q6_k"), QF_GGML_Q6_K);
    assert_int_equal(qf_ggml_row_size(QF_GGML_Q4_K, 512, &n), 0);
    assert_int_equal(n, 288);
    assert_int_equal(qf_ggml_row_size(QF_GGML_Q8_0, 33, &n), QF_EFORMAT);
    assert_int_equal(qf_ggml_row_size(4, 32, &n), QF_EINVAL);
    assert_int_equal(qf_ggml_row_size(QF_GGML_F64, UINT64_MAX / 4, &n), QF_ELIMIT);
    assert_int_equal(qf_ggml_type_from_dtype(QF_DTYPE_BF16), QF_GGML_BF16);
    assert_int_equal(qf_dtype_from_ggml_type(QF_GGML_Q4_0), QF_DTYPE_INVALID);
}

static void test_errors(void **state)
{
    qf_err e;
    (void)state;
    qf_err_clear(&e);
    assert_int_equal(qf_err_set(&e, QF_EFORMAT, "tensor \"%s\":\nbad", "a"), QF_EFORMAT);
    assert_string_equal(e.msg, "tensor \"a\": bad");
    assert_int_equal(qf_err_set(&e, QF_EIO, "second"), QF_EIO); /* first wins */
    assert_int_equal(e.code, QF_EFORMAT);
    qf_err_prefix(&e, "x.gguf");
    assert_string_equal(e.msg, "x.gguf: tensor \"a\": bad");
    qf_err_prefix(&e, "x.gguf"); /* not twice */
    assert_string_equal(e.msg, "x.gguf: tensor \"a\": bad");
    assert_int_equal(qf_err_set(NULL, QF_EIO, "nowhere"), QF_EIO);
    assert_string_equal(qf_err_name(QF_ETRUNC), "truncated input");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_f16_rounding_midpoints),
        cmocka_unit_test(test_f16_sampled),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_bulk_matches_scalar),
        cmocka_unit_test(test_f8),
        cmocka_unit_test(test_integers_and_bool),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_ggml_traits),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("types", tests, NULL, NULL);
}
