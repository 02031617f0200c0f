/*
 * tests/test_tensor_diff.c - per-tensor error statistics (verify/tensor_diff):
 * the formulas on vectors worked out by hand, the edge cases (identical,
 * all-zero, opposite, NaN), the worst-first order, and the comparison of the
 * bundled stories260K f16 and Q4_K_M files (fixtures/gguf, found under
 * $QF_ROOT, else ".").
 */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/source.h"
#include "verify/tensor_diff.h"

static char root[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return 0;
}

static void stats_of(const float *a, const float *b, uint64_t n, qf_diff_stats *st)
{
    qf_diff_acc acc;
    memset(&acc, 0, sizeof acc);
    qf_diff_acc_add(&acc, a, b, n);
    qf_diff_stats_of(&acc, st);
}

/* a = (1, 2, 3, 4), b = (1, 2, 3, 5): d = (0, 0, 0, -1)
 *   sum d^2 = 1, sum a^2 = 30, sum b^2 = 39, sum ab = 34
 *   RMSE = sqrt(1/4) = 0.5, max = 1, rel = 1/sqrt(30),
 *   SNR = 10 log10(30) = 14.771212547196624 dB, cos = 34 / sqrt(30 * 39) */
static void test_hand_computed(void **state)
{
    const float a[4] = { 1, 2, 3, 4 }, b[4] = { 1, 2, 3, 5 };
    qf_diff_stats st;
    (void)state;
    stats_of(a, b, 4, &st);
    assert_int_equal(st.n, 4);
    assert_true(st.rmse == 0.5);
    assert_true(st.max_abs == 1.0);
    assert_true(fabs(st.rel_err - 0.18257418583505536) < 1e-15);
    assert_true(fabs(st.snr_db - 14.771212547196624) < 1e-12);
    assert_true(fabs(st.cosine - 0.9939990885479664) < 1e-15);
    assert_int_equal(st.identical, 0);

    /* b = 0.5 a: d = 0.5 a, SNR = 10 log10(4) = 6.0206 dB, cos = 1, rel = 0.5 */
    {
        const float c[3] = { 2, -4, 8 }, h[3] = { 1, -2, 4 };
        stats_of(c, h, 3, &st);
        assert_true(st.rel_err == 0.5);
        assert_true(fabs(st.snr_db - 6.020599913279624) < 1e-12);
        assert_true(fabs(st.cosine - 1.0) < 1e-15);
        assert_true(st.max_abs == 4.0);
        assert_true(st.rmse == sqrt(84.0 / 12.0));
    }
}

static void test_edge_cases(void **state)
{
    const float a[3] = { 0.25f, -1.5f, 3 }, z[3] = { 0, 0, 0 };
    const float p[2] = { 1, -1 }, q[2] = { -1, 1 };
    float nan3[3] = { 0.25f, 0, 3 };
    qf_diff_stats st;
    (void)state;

    /* identical: SNR inf, RMSE 0, cosine exactly 1 */
    stats_of(a, a, 3, &st);
    assert_int_equal(st.identical, 1);
    assert_true(isinf(st.snr_db) && st.snr_db > 0);
    assert_true(st.rmse == 0.0 && st.max_abs == 0.0 && st.rel_err == 0.0);
    assert_true(st.cosine == 1.0);
    /* both zero: identical too */
    stats_of(z, z, 3, &st);
    assert_int_equal(st.identical, 1);
    assert_true(st.cosine == 1.0);
    /* reference zero, the other not: SNR -inf, relative error inf, cosine 0 */
    stats_of(z, a, 3, &st);
    assert_true(isinf(st.snr_db) && st.snr_db < 0);
    assert_true(isinf(st.rel_err));
    assert_true(st.cosine == 0.0);
    /* opposite: cosine -1, sum d^2 = 8, SNR = 10 log10(2/8) */
    stats_of(p, q, 2, &st);
    assert_true(st.cosine == -1.0);
    assert_true(st.max_abs == 2.0);
    assert_true(fabs(st.snr_db + 6.020599913279624) < 1e-12);
    /* a NaN poisons the figures (and sorts first) */
    nan3[1] = (float)NAN;
    stats_of(a, nan3, 3, &st);
    assert_true(isnan(st.snr_db));
    assert_true(isnan(st.max_abs));
    assert_int_equal(st.identical, 0);
}

static void test_merge_and_order(void **state)
{
    const float a[6] = { 1, 2, 3, 4, 5, 6 }, b[6] = { 1.5f, 2, 2, 4, 5.25f, 6 };
    qf_diff_acc whole, p1, p2;
    qf_diff_stats s1, s2, inf, nan, lo;
    (void)state;

    memset(&whole, 0, sizeof whole);
    memset(&p1, 0, sizeof p1);
    memset(&p2, 0, sizeof p2);
    qf_diff_acc_add(&whole, a, b, 6);
    qf_diff_acc_add(&p1, a, b, 2);
    qf_diff_acc_add(&p2, a + 2, b + 2, 4);
    qf_diff_acc_merge(&p1, &p2);
    qf_diff_stats_of(&whole, &s1);
    qf_diff_stats_of(&p1, &s2);
    assert_true(s1.max_abs == 1.0 && s2.max_abs == 1.0);
    assert_true(s1.snr_db == s2.snr_db); /* these sums are exact either way */
    assert_true(s1.n == 6 && s2.n == 6);

    memset(&inf, 0, sizeof inf);
    inf.snr_db = (double)INFINITY;
    memset(&nan, 0, sizeof nan);
    nan.snr_db = (double)NAN;
    memset(&lo, 0, sizeof lo);
    lo.snr_db = -3.0;
    assert_true(qf_diff_stats_cmp(&lo, &s1) < 0);
    assert_true(qf_diff_stats_cmp(&s1, &inf) < 0);
    assert_true(qf_diff_stats_cmp(&nan, &lo) < 0);
    assert_true(qf_diff_stats_cmp(&inf, &nan) > 0);
    assert_int_equal(qf_diff_stats_cmp(&inf, &inf), 0);
}

static void open_fixture(const char *rel, qf_source **s)
{
    char path[1200];
    qf_err err = { 0 };
    snprintf(path, sizeof path, "%s/%s", root, rel);
    assert_int_equal(qf_source_open(path, s, &err), 0);
}

static void test_sources(void **state)
{
    qf_source *f16, *q4, *hf;
    qf_tensor_diffs *d1 = NULL, *d3 = NULL, *same = NULL;
    qf_err err = { 0 };
    int64_t i;
    (void)state;

    open_fixture("fixtures/gguf/stories260K-f16.gguf", &f16);
    open_fixture("fixtures/gguf/stories260K-Q4_K_M.gguf", &q4);
    open_fixture("fixtures/stories260K", &hf);
    assert_int_equal(qf_tensor_diff_sources(f16, q4, 1, NULL, NULL, &d1, &err), 0);
    assert_int_equal(qf_tensor_diff_sources(f16, q4, 3, NULL, NULL, &d3, &err), 0);
    assert_int_equal(d1->n, 47);
    assert_int_equal(d1->n_only_a + d1->n_only_b, 0);
    /* worst first, and the same bits on 1 and 3 threads */
    for (i = 0; i < d1->n; i++) {
        if (i > 0)
            assert_true(qf_diff_stats_cmp(&d1->items[i - 1].st, &d1->items[i].st) <= 0);
        assert_string_equal(d1->items[i].name, d3->items[i].name);
        assert_memory_equal(&d1->items[i].st, &d3->items[i].st, sizeof d1->items[i].st);
    }
    assert_memory_equal(&d1->total, &d3->total, sizeof d1->total);
    /* the Q5_0 attention and FFN matrices are worse than the Q8_0 embedding,
     * norms kept in F32 are identical and last */
    assert_true(d1->items[0].st.snr_db < 35 && d1->items[0].st.snr_db > 15);
    assert_int_equal(d1->items[d1->n - 1].st.identical, 1);
    assert_string_equal(d1->items[d1->n - 1].name, "output_norm.weight");
    for (i = 0; i < d1->n; i++)
        if (!strcmp(d1->items[i].name, "blk.2.ffn_up.weight")) {
            assert_int_equal(d1->items[i].layer, 2);
            assert_string_equal(d1->items[i].kind, "ffn_up");
            assert_true(d1->items[i].st.cosine > 0.999 && d1->items[i].st.cosine < 1);
        }
    /* the F32 folder against its F16 file: close, not identical */
    assert_int_equal(qf_tensor_diff_sources(hf, f16, 2, NULL, NULL, &same, &err), 0);
    assert_true(same->total.snr_db > 60 && isfinite(same->total.snr_db));
    qf_tensor_diffs_free(same);
    /* a file against itself */
    assert_int_equal(qf_tensor_diff_sources(q4, q4, 2, NULL, NULL, &same, &err), 0);
    for (i = 0; i < same->n; i++) {
        assert_int_equal(same->items[i].st.identical, 1);
        assert_true(same->items[i].st.rmse == 0.0 && same->items[i].st.cosine == 1.0);
    }
    assert_true(isinf(same->total.snr_db));
    qf_tensor_diffs_free(same);
    qf_tensor_diffs_free(d1);
    qf_tensor_diffs_free(d3);
    qf_source_close(f16);
    qf_source_close(q4);
    qf_source_close(hf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_merge_and_order),
        cmocka_unit_test(test_sources),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
