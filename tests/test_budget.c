/*
 * tests/test_budget.c - quantize/budget: the multiple-choice knapsack.
 *
 * Hand-made frontiers whose optimum is worked out in the comments, random
 * instances checked against exhaustive search, the coarse programme staying
 * under the budget, determinism, and the unreachable budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/error.h"
#include "quantize/budget.h"

/* Three items; the convex sweep alone would pick a wrong mix here.
 *   A: (10, 100) (20, 40) (30, 35)
 *   B: (10, 100) (25, 20)
 *   C: (5, 50)   (6, 49)  (15, 10)
 * Minimum 25 bytes. With budget 50: B up (+15, -80) and A up (+10, -60) use
 * 50 exactly: error 40 + 20 + 50 = 110. The alternatives: A up and C to 15
 * (+10, +10: 45 bytes) gives 40 + 100 + 10 = 150; B and C up (+15 +10)
 * gives 100 + 20 + 10 = 130. So 110 with choices {1, 1, 0}. */
static void test_hand_made(void **state)
{
    static const uint64_t ab[] = { 10, 20, 30 }, bb[] = { 10, 25 }, cb[] = { 5, 6, 15 };
    static const double ae[] = { 100, 40, 35 }, be[] = { 100, 20 }, ce[] = { 50, 49, 10 };
    qf_budget_item it[3] = { { 3, ab, ae }, { 2, bb, be }, { 3, cb, ce } };
    qf_budget_result r;
    int ch[3];
    (void)state;

    assert_int_equal(qf_budget_solve(it, 3, 50, ch, &r, NULL), 0);
    assert_int_equal(ch[0], 1);
    assert_int_equal(ch[1], 1);
    assert_int_equal(ch[2], 0);
    assert_int_equal(r.bytes, 50);
    assert_true(r.err == 110.0);
    assert_int_equal(r.min_bytes, 25);
    assert_int_equal(r.max_bytes, 30 + 25 + 15);
    assert_int_equal(r.exact, 1);

    /* all the way up: the least-error candidate of each */
    assert_int_equal(qf_budget_solve(it, 3, 1000, ch, &r, NULL), 0);
    assert_int_equal(ch[0], 2);
    assert_int_equal(ch[1], 1);
    assert_int_equal(ch[2], 2);
    assert_int_equal(r.bytes, 70);

    /* exactly the minimum */
    assert_int_equal(qf_budget_solve(it, 3, 25, ch, &r, NULL), 0);
    assert_int_equal(ch[0] + ch[1] + ch[2], 0);
    assert_true(r.err == 250.0);
}

/* A dominated candidate (bigger and worse) is never chosen, and candidates
 * need not be listed in size order. */
static void test_dominated_unsorted(void **state)
{
    static const uint64_t b[] = { 40, 10, 30, 20 };
    static const double e[] = { 5, 100, 50, 20 }; /* 30 bytes / 50 is dominated by 20 / 20 */
    qf_budget_item it = { 4, b, e };
    int ch;
    (void)state;
    assert_int_equal(qf_budget_solve(&it, 1, 35, &ch, NULL, NULL), 0);
    assert_int_equal(ch, 3);
    assert_int_equal(qf_budget_solve(&it, 1, 19, &ch, NULL, NULL), 0);
    assert_int_equal(ch, 1);
}

static void test_unreachable(void **state)
{
    static const uint64_t b[] = { 100, 200 };
    static const double e[] = { 2, 1 };
    qf_budget_item it[2] = { { 2, b, e }, { 2, b, e } };
    qf_budget_result r;
    qf_err err = { 0 };
    int ch[2] = { -7, -7 };
    (void)state;
    assert_int_equal(qf_budget_solve(it, 2, 199, ch, &r, &err), QF_ELIMIT);
    assert_int_equal(r.min_bytes, 200);
    assert_string_equal(err.msg, "budget 199 bytes is below the smallest reachable size 200 bytes");
    assert_int_equal(ch[0], -7);
}

static void test_bad_items(void **state)
{
    static const uint64_t b[] = { 1 };
    static const double e[] = { -1 };
    qf_budget_item it = { 1, b, e };
    int ch;
    (void)state;
    assert_int_equal(qf_budget_solve(&it, 1, 10, &ch, NULL, NULL), QF_EINVAL);
    it.n = 0;
    assert_int_equal(qf_budget_solve(&it, 1, 10, &ch, NULL, NULL), QF_EINVAL);
    assert_int_equal(qf_budget_solve(NULL, 0, 10, NULL, NULL, NULL), 0);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Exhaustive search: the smallest error within the budget. */
static double brute(const qf_budget_item *it, int n, uint64_t budget)
{
    int ch[8] = { 0 }, i;
    double best = INFINITY;
    for (;;) {
        uint64_t b = 0;
        double e = 0;
        for (i = 0; i < n; i++) {
            b += it[i].bytes[ch[i]];
            e += it[i].err[ch[i]];
        }
        if (b <= budget && e < best)
            best = e;
        for (i = 0; i < n; i++) {
            if (++ch[i] < it[i].n)
                break;
            ch[i] = 0;
        }
        if (i == n)
            return best;
    }
}

static void test_random_exact(void **state)
{
    uint64_t bytes[6][5];
    double errs[6][5];
    qf_budget_item it[6];
    int t, i, j, ch[6];
    (void)state;

    for (t = 0; t < 300; t++) {
        int n = 1 + (int)(rng() % 6);
        uint64_t lo = 0, hi = 0, budget;
        qf_budget_result r;
        double want, got = 0;
        for (i = 0; i < n; i++) {
            uint64_t mn = UINT64_MAX, mx = 0;
            it[i].n = 1 + (int)(rng() % 5);
            it[i].bytes = bytes[i];
            it[i].err = errs[i];
            for (j = 0; j < it[i].n; j++) {
                bytes[i][j] = 32 * (1 + rng() % 40);
                errs[i][j] = (double)(rng() % 1000) / 7.0;
                mn = bytes[i][j] < mn ? bytes[i][j] : mn;
                mx = bytes[i][j] > mx ? bytes[i][j] : mx;
            }
            lo += mn;
            hi += mx;
        }
        budget = lo + rng() % (hi - lo + 1);
        want = brute(it, n, budget);
        assert_int_equal(qf_budget_solve(it, n, budget, ch, &r, NULL), 0);
        for (i = 0; i < n; i++)
            got += errs[i][ch[i]];
        assert_true(r.bytes <= budget);
        assert_true(r.exact);
        if (fabs(got - want) > 1e-9 * (1 + want))
            fail_msg("instance %d: error %.9g, optimum %.9g", t, got, want);
    }
}

/* Many items with sizes that share no common unit: the programme runs in
 * coarse units; the result still fits, lands within 0.5% of the budget, and
 * is the same on a second run. */
static void test_coarse_and_deterministic(void **state)
{
    enum { N = 300, K = 7 };
    static uint64_t bytes[N][K];
    static double errs[N][K];
    static qf_budget_item it[N];
    static int ch1[N], ch2[N];
    qf_budget_result r1, r2;
    uint64_t lo = 0, hi = 0, budget;
    int i, j;
    (void)state;

    for (i = 0; i < N; i++) {
        uint64_t elems = 100000 + rng() % 5000000;
        static const double bpw[K] = { 2.625, 3.4375, 4.5, 5.5, 6.5625, 8.5, 4.25 };
        static const double rel[K] = { 0.09, 0.035, 0.01, 0.0026, 0.00065, 0.00004, 0.012 };
        double scale = 1.0 + (double)(rng() % 100);
        it[i].n = K;
        it[i].bytes = bytes[i];
        it[i].err = errs[i];
        for (j = 0; j < K; j++) {
            bytes[i][j] = (uint64_t)((double)elems * bpw[j] / 8.0) + (rng() % 3);
            errs[i][j] = scale * rel[j];
        }
        lo += bytes[i][0];
        hi += bytes[i][5];
    }
    budget = lo + (hi - lo) / 3;
    assert_int_equal(qf_budget_solve(it, N, budget, ch1, &r1, NULL), 0);
    assert_int_equal(qf_budget_solve(it, N, budget, ch2, &r2, NULL), 0);
    assert_int_equal(r1.exact, 0);
    assert_true(r1.bytes <= budget);
    assert_true((double)r1.bytes >= 0.995 * (double)budget);
    assert_memory_equal(ch1, ch2, sizeof ch1);
    assert_true(r1.err == r2.err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_made),
        cmocka_unit_test(test_dominated_unsorted),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_items),
        cmocka_unit_test(test_random_exact),
        cmocka_unit_test(test_coarse_and_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
