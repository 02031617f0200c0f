/*
 * tests/test_quant_simd.c - the SIMD row quantizers (quantize/quant_avx2.c,
 * quantize/quant_avx512.c) against the scalar reference: for every level
 * this CPU has, every quantized type, with and without importance weights,
 * the bytes must equal the scalar bytes.
 *
 * Inputs: random rows of many shapes (N(0,1) at scales from 1e-3 to 1e3,
 * N(0, 0.02), heavy tails, ties, sparse rows, huge and subnormal values,
 * and rows whose groups differ wildly - all-zero, constant, tiny, one
 * outlier, all positive, all negative - so that every branch of the
 * searches and the fallbacks for groups with a zero scale are taken),
 * weights of several kinds (uniform, log-normal, some zero, all zero,
 * one huge), row lengths that leave partial batches, and the planted
 * tensors of fixtures/quant (zeros, constants, outliers, tiny and
 * subnormal values, heavy tails) that llama.cpp's bytes are checked on in
 * tests/test_quantize.c.
 *
 * The search kernels are also compared alone with the scalar searches on
 * hostile problems (through the test hook qf_quant_search_test_*), and the
 * input check for inf and NaN is tested at every level.
 *
 * Also: QF_NO_SIMD=1 selects the scalar path (checked in a child process,
 * since the variable is read once).
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
#include <sys/wait.h>
#include <unistd.h>

#include "formats/types.h"
#include "quantize/quant.h"
#include "quantize/quant_impl.h"

static const int QTYPES[] = {
    QF_GGML_Q8_0, QF_GGML_Q4_0, QF_GGML_Q4_1, QF_GGML_Q5_0, QF_GGML_Q5_1, QF_GGML_Q2_K,
    QF_GGML_Q3_K, QF_GGML_Q4_K, QF_GGML_Q5_K, QF_GGML_Q6_K, QF_GGML_IQ4_NL, QF_GGML_IQ4_XS,
};
#define N_QTYPES (sizeof QTYPES / sizeof QTYPES[0])

static const char *level_name(int level)
{
    return level == QF_SIMD_AVX512 ? "avx512" : level == QF_SIMD_AVX2 ? "avx2" : "scalar";
}

/* ---------------------------------------------------------------------
 * Deterministic data
 * ------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint32_t next_u32(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static float uniform01(rng *r)
{
    return ((float)(next_u32(r) >> 8) + 0.5f) / 16777216.0f;
}

static float gauss(rng *r)
{
    const float u1 = uniform01(r), u2 = uniform01(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* One group of g values of a randomly chosen kind. */
static void fill_group(rng *r, float *x, int g)
{
    const int kind = (int)(next_u32(r) % 14);
    const float s = powf(10.0f, 6.0f * uniform01(r) - 3.0f);
    for (int i = 0; i < g; i++) {
        float v;
        switch (kind) {
        case 0: v = 0.0f; break;
        case 1: v = -0.3f; break;                                  /* constant */
        case 2: v = s; break;                                      /* positive constant */
        case 3: v = gauss(r) * 1e-20f; break;                      /* below GROUP_MAX_EPS */
        case 4: v = (float)((int)(next_u32(r) % 7) - 3) * 1e-41f; break; /* subnormal */
        case 5: v = i == 3 ? 50.0f * s : gauss(r) * s * 0.01f; break; /* one outlier */
        case 6: v = fabsf(gauss(r)) * s + s * 0.1f; break;         /* all positive */
        case 7: v = -fabsf(gauss(r)) * s; break;                   /* all negative */
        case 8: v = (float)((int)(next_u32(r) % 17) - 8); break;   /* integers: ties */
        case 9: v = roundf(gauss(r) * 4.0f) * 0.25f * s; break;    /* coarse grid */
        case 10: v = next_u32(r) % 10 ? 0.0f : gauss(r) * s; break; /* sparse */
        case 11: v = (i & 1 ? 1.0f : -1.0f) * s; break;            /* +-s */
        case 12: v = gauss(r) / (uniform01(r) + 0.01f) * s; break; /* heavy tail */
        default: v = gauss(r) * s; break;
        }
        x[i] = v;
    }
}

/* A row of n values of kind k. */
static void fill_row(rng *r, float *x, int64_t n, int k)
{
    const float s = powf(10.0f, 6.0f * uniform01(r) - 3.0f);
    for (int64_t i = 0; i < n; i++) {
        switch (k) {
        case 0: x[i] = gauss(r) * s; break;
        case 1: x[i] = gauss(r) * 0.02f * (i % 1000 == 7 ? 8.0f : 1.0f); break;
        case 2: x[i] = gauss(r) / (uniform01(r) + 0.01f); break;
        case 3: x[i] = roundf(gauss(r) * 4.0f) * 0.25f; break;
        case 4: x[i] = (2.0f * uniform01(r) - 1.0f) * (3e38f * ((float)(i % 7) / 7.0f)); break;
        case 5: x[i] = uniform01(r) * s; break;
        case 6: x[i] = next_u32(r) % 10 ? 0.0f : gauss(r) * s; break;
        case 7: x[i] = (float)((int)(next_u32(r) % 64) - 32) * s; break;
        default: break;
        }
    }
    if (k >= 8) /* mixed groups of 16, some runs of 32 */
        for (int64_t i = 0; i < n; i += 16)
            fill_group(r, x + i, 16);
}

static void fill_weights(rng *r, float *w, int64_t n, int k)
{
    for (int64_t i = 0; i < n; i++) {
        switch (k) {
        case 0: w[i] = 0.1f + uniform01(r); break;
        case 1: w[i] = expf(2.0f * gauss(r)); break;
        case 2: w[i] = next_u32(r) % 10 ? uniform01(r) : 0.0f; break;
        case 3: w[i] = 0.0f; break;
        default: w[i] = i % 97 == 5 ? 1e30f : uniform01(r) * 1e-3f; break;
        }
    }
}

/* ---------------------------------------------------------------------
 * Comparison
 * ------------------------------------------------------------------- */

static size_t row_bytes(int type, int64_t n_per_row)
{
    uint64_t rs;
    assert_int_equal(qf_ggml_row_size(type, (uint64_t)n_per_row, &rs), 0);
    return (size_t)rs;
}

/* Quantize nrows x n at the scalar level and at every SIMD level; the bytes
 * must be equal. Returns the number of levels compared. */
static int compare_levels(const char *what, int type, const float *x, int64_t nrows, int64_t n,
                          const float *w)
{
    const size_t rs = row_bytes(type, n), total = rs * (size_t)nrows;
    uint8_t *ref = malloc(total), *got = malloc(total + 1);
    assert_non_null(ref);
    assert_non_null(got);
    qf_quant_simd_set_level(QF_SIMD_SCALAR);
    assert_int_equal(qf_quant_rows(type, x, ref, nrows, n, w), 0);
    int compared = 0;
    for (int level = QF_SIMD_AVX2; level <= qf_quant_simd_max(); level++) {
        qf_quant_simd_set_level(level);
        /* an odd address: the blocks have no alignment */
        memset(got, 0xA5, total + 1);
        assert_int_equal(qf_quant_rows(type, x, got + 1, nrows, n, w), 0);
        for (size_t off = 0; off < total; off++) {
            if (got[1 + off] != ref[off]) {
                const qf_ggml_traits *tr = qf_ggml_type_traits(type);
                qf_quant_simd_set_level(-1);
                fail_msg("%s %s%s, %s: row %zu of %lld x %lld, block %zu byte %zu: 0x%02x, "
                         "scalar 0x%02x",
                         what, tr->name, w ? " with weights" : "", level_name(level), off / rs,
                         (long long)nrows, (long long)n, (off % rs) / tr->type_size,
                         off % tr->type_size, got[1 + off], ref[off]);
            }
        }
        compared++;
    }
    qf_quant_simd_set_level(-1);
    free(got);
    free(ref);
    return compared;
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------- */

static void test_levels(void **state)
{
    (void)state;
    const int maxl = qf_quant_simd_max();
    assert_true(maxl >= QF_SIMD_SCALAR && maxl <= QF_SIMD_AVX512);
    print_message("SIMD levels on this machine: up to %s\n", level_name(maxl));
    qf_quant_simd_set_level(QF_SIMD_SCALAR);
    assert_int_equal(qf_quant_simd_level(), QF_SIMD_SCALAR);
    qf_quant_simd_set_level(99);
    assert_int_equal(qf_quant_simd_level(), maxl);
    qf_quant_simd_set_level(-1);
}

/* QF_NO_SIMD is read once per process: ask a fresh one (this binary with
 * --print-level) what level it uses. */
static int child_level(const char *no_simd)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        if (no_simd)
            setenv("QF_NO_SIMD", no_simd, 1);
        else
            unsetenv("QF_NO_SIMD");
        execl("/proc/self/exe", "test_quant_simd", "--print-level", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[16] = { 0 };
    ssize_t got = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(got > 0);
    return atoi(buf);
}

static void test_no_simd_env(void **state)
{
    (void)state;
    const int maxl = qf_quant_simd_max();
    assert_int_equal(child_level("1"), QF_SIMD_SCALAR);
    assert_int_equal(child_level(NULL), maxl);
    assert_int_equal(child_level("0"), maxl);
    assert_int_equal(child_level(""), maxl);
}

/* Random rows of every kind, every type, with and without weights. */
static void test_random_rows(void **state)
{
    (void)state;
    if (qf_quant_simd_max() == QF_SIMD_SCALAR)
        skip();
    static const int64_t lengths[] = { 256, 512, 768, 1280, 4096 };
    enum { KINDS = 12, WKINDS = 5 };
    rng r = { 0x9E3779B97F4A7C15ull };
    float *x = malloc(4096 * 8 * sizeof *x), *w = malloc(4096 * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    for (size_t t = 0; t < N_QTYPES; t++) {
        const int type = QTYPES[t];
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const int64_t n = lengths[li];
            const int64_t nrows = n >= 4096 ? 2 : 8;
            for (int k = 0; k < KINDS; k++) {
                for (int64_t row = 0; row < nrows; row++)
                    fill_row(&r, x + row * n, n, (k + (int)row) % KINDS);
                char what[64];
                snprintf(what, sizeof what, "random kind %d", k);
                compare_levels(what, type, x, nrows, n, NULL);
                fill_weights(&r, w, n, k % WKINDS);
                snprintf(what, sizeof what, "random kind %d, weights %d", k, k % WKINDS);
                compare_levels(what, type, x, nrows, n, w);
            }
        }
    }
    /* the legacy block types also take rows that are not whole super-blocks */
    for (size_t t = 0; t < N_QTYPES; t++) {
        const int type = QTYPES[t];
        if (qf_ggml_type_traits(type)->block_size != 32)
            continue;
        for (int64_t n = 32; n <= 32 * 37; n += 32 * 3) {
            for (int k = 0; k < KINDS; k++) {
                fill_row(&r, x, n, k);
                compare_levels("short row", type, x, 1, n, NULL);
                fill_weights(&r, w, n, k % WKINDS);
                compare_levels("short row", type, x, 1, n, w);
            }
        }
    }
    free(w);
    free(x);
}

/* Many small mixed super-blocks: every lane sees every kind of group. */
static void test_mixed_groups(void **state)
{
    (void)state;
    if (qf_quant_simd_max() == QF_SIMD_SCALAR)
        skip();
    rng r = { 12345 };
    const int64_t n = 4096, nrows = 24;
    float *x = malloc((size_t)(n * nrows) * sizeof *x), *w = malloc((size_t)n * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    for (int64_t i = 0; i < n * nrows; i += 16)
        fill_group(&r, x + i, 16);
    for (size_t t = 0; t < N_QTYPES; t++) {
        compare_levels("mixed groups", QTYPES[t], x, nrows, n, NULL);
        for (int wk = 0; wk < 5; wk++) {
            fill_weights(&r, w, n, wk);
            compare_levels("mixed groups", QTYPES[t], x, nrows, n, w);
        }
    }
    free(w);
    free(x);
}

/* The planted tensors of fixtures/quant, whole. */
static void test_planted(void **state)
{
    static const struct {
        const char *name;
        int64_t rows, cols;
    } planted[] = {
        { "blk.0.attn_q.weight", 256, 256 },
        { "blk.1.ffn_down.weight", 256, 512 },
    };
    (void)state;
    if (qf_quant_simd_max() == QF_SIMD_SCALAR)
        skip();
    const char *root = getenv("QF_ROOT");
    rng r = { 777 };
    for (size_t p = 0; p < sizeof planted / sizeof planted[0]; p++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fixtures/quant/%s.f32", root && *root ? root : ".",
                 planted[p].name);
        FILE *f = fopen(path, "rb");
        if (!f)
            fail_msg("cannot open fixture %s", path);
        const size_t count = (size_t)(planted[p].rows * planted[p].cols);
        float *x = malloc(count * sizeof *x), *w = malloc((size_t)planted[p].cols * sizeof *w);
        assert_non_null(x);
        assert_non_null(w);
        assert_int_equal(fread(x, sizeof *x, count, f), count); /* little-endian host */
        fclose(f);
        for (size_t t = 0; t < N_QTYPES; t++) {
            compare_levels(planted[p].name, QTYPES[t], x, planted[p].rows, planted[p].cols, NULL);
            fill_weights(&r, w, planted[p].cols, (int)t % 3);
            compare_levels(planted[p].name, QTYPES[t], x, planted[p].rows, planted[p].cols, w);
        }
        free(w);
        free(x);
    }
}

/* qf_quant_rows' check for inf and NaN (a SIMD loop with a scalar tail)
 * at every level: every position, both infinities and NaN, in the rows and
 * in the weights; the largest finite values pass. */
static void test_finite_check(void **state)
{
    (void)state;
    float x[32 * 9], w[32 * 9];
    uint8_t q[34 * 9];
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (int level = QF_SIMD_SCALAR; level <= qf_quant_simd_max(); level++) {
        qf_quant_simd_set_level(level);
        for (int n = 32; n <= 32 * 9; n += 32) {
            for (int i = 0; i < n; i++) {
                x[i] = i % 2 ? FLT_MAX : -FLT_MAX;
                w[i] = FLT_MAX;
            }
            assert_int_equal(qf_quant_rows(QF_GGML_Q4_0, x, q, 1, n, w), 0);
            for (int pos = 0; pos < n; pos++) {
                for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                    const float keep = x[pos];
                    x[pos] = bad[b];
                    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, 1, n, NULL), QF_EINVAL);
                    x[pos] = keep;
                    w[pos] = bad[b];
                    assert_int_equal(qf_quant_rows(QF_GGML_Q4_0, x, q, 1, n, w), QF_EINVAL);
                    w[pos] = FLT_MAX;
                }
            }
        }
    }
    qf_quant_simd_set_level(-1);
}

/* ---------------------------------------------------------------------
 * The search kernels alone, against the scalar searches, on hostile
 * problems: random signs and magnitudes from 1e-40 to 3e38 (products
 * overflow to inf inside, ranges go subnormal), zeros, repeated values,
 * ties, negative inputs where the searches expect non-negative ones (the
 * uint8_t wrap of make_qp's first levels), and weights that are zero,
 * huge or tiny.
 * ------------------------------------------------------------------- */

static float hostile_value(rng *r, float common)
{
    const uint32_t k = next_u32(r) % 16;
    const float sign = next_u32(r) & 1 ? -1.0f : 1.0f;
    switch (k) {
    case 0: return 0.0f;
    case 1: return common;                                              /* repeats */
    case 2: return sign * powf(10.0f, 78.0f * uniform01(r) - 40.0f);   /* any magnitude */
    case 3: return sign * 3e38f * uniform01(r);
    case 4: return sign * (float)(next_u32(r) % 9) * 0.5f;            /* halves: ties */
    case 5: return sign * 1e-41f * (float)(next_u32(r) % 5);          /* subnormal */
    default: return gauss(r) * common;
    }
}

static void hostile_problem(rng *r, float *x, float *w, int n, int nonneg)
{
    const int style = (int)(next_u32(r) % 6);
    const float common = powf(10.0f, 8.0f * uniform01(r) - 4.0f);
    for (int i = 0; i < n; i++) {
        switch (style) {
        case 0: x[i] = hostile_value(r, common); break;
        case 1: x[i] = gauss(r) * common; break;
        case 2: x[i] = (float)(int)(next_u32(r) % 7) - 3.0f; break;
        case 3: x[i] = common; break;
        case 4: x[i] = i == 0 ? -common : fabsf(gauss(r)) * common; break;
        default: x[i] = uniform01(r) * common; break;
        }
        if (nonneg && style != 4 && next_u32(r) % 8)
            x[i] = fabsf(x[i]);
        switch ((next_u32(r) >> 3) % 8) {
        case 0: w[i] = 0.0f; break;
        case 1: w[i] = powf(10.0f, 60.0f * uniform01(r) - 30.0f); break;
        case 2: w[i] = 1e30f; break;
        default: w[i] = 0.1f + uniform01(r); break;
        }
    }
    if (next_u32(r) % 16 == 0)
        for (int i = 0; i < n; i++)
            w[i] = 0.0f;
}

static int same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

typedef int (*search_test_fn)(const qf_quant_search_case *, int, const float *, const float *,
                              float *, float *, uint8_t *);

static void test_search_kernels(void **state)
{
    (void)state;
    if (qf_quant_simd_max() == QF_SIMD_SCALAR)
        skip();
#ifdef QF_QUANT_X86
    static const qf_quant_search_case cases[] = {
        { QF_SEARCH_QKX, 32, 15, -1.0f, 0.1f, 20, 0 },  /* Q4_K */
        { QF_SEARCH_QKX, 32, 31, -0.5f, 0.1f, 15, 0 },  /* Q5_K */
        { QF_SEARCH_QKX, 16, 3, -0.5f, 0.1f, 15, 1 },   /* Q2_K */
        { QF_SEARCH_QKX, 32, 15, -0.9f, 0.05f, 36, 0 }, /* weighted Q4_K, Q4_1 */
        { QF_SEARCH_QKX, 16, 3, -0.9f, 0.05f, 36, 0 },  /* weighted Q2_K */
        { QF_SEARCH_QKX, 32, 31, -0.9f, 0.05f, 36, 0 }, /* weighted Q5_K, Q5_1 */
        { QF_SEARCH_QKX, 7, 5, -0.3f, 0.2f, 0, 1 },     /* nstep 0: no search */
        { QF_SEARCH_QX, 16, 32, 0, 0, 0, 0 },           /* Q6_K */
        { QF_SEARCH_QX, 16, 4, 0, 0, 0, 0 },            /* weighted Q3_K */
        { QF_SEARCH_QX, 32, 8, 0, 0, 0, 0 },            /* weighted Q4_0 */
        { QF_SEARCH_QX, 32, 16, 0, 0, 0, 0 },           /* weighted Q5_0 */
        { QF_SEARCH_Q3, 16, 4, 0, 0, 0, 0 },            /* Q3_K */
        { QF_SEARCH_QP, 8, 63, 0, 0, 0, 0 },            /* Q4_K/Q5_K scales */
        { QF_SEARCH_QP, 16, 15, 0, 0, 0, 0 },           /* Q2_K scales */
    };
    enum { P = 64, ROUNDS = 40 };
    float x[P * 32], w[P * 32], sc[P], mn[P];
    uint8_t L[P * 32];
    rng r = { 0xC0FFEEull };
    for (int level = QF_SIMD_AVX2; level <= qf_quant_simd_max(); level++) {
        const search_test_fn fn =
            level == QF_SIMD_AVX512 ? qf_quant_search_test_avx512 : qf_quant_search_test_avx2;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const qf_quant_search_case *c = &cases[ci];
            const int n = c->n;
            for (int round = 0; round < ROUNDS; round++) {
                for (int k = 0; k < P; k++)
                    hostile_problem(&r, x + k * n, w + k * n, n, c->kind == QF_SEARCH_QP);
                assert_int_equal(fn(c, P, x, w, sc, mn, L), 0);
                for (int k = 0; k < P; k++) {
                    const float *xk = x + k * n, *wk = w + k * n;
                    uint8_t Lr[32], Laux[32], L3[32];
                    int8_t Li[32];
                    float s_ref, m_ref = 0.0f, s3 = 0.0f, m3 = 0.0f;
                    switch (c->kind) {
                    case QF_SEARCH_QKX:
                        s_ref = qf_quant_make_qkx2(n, c->nmax, xk, wk, Lr, &m_ref, Laux, c->rmin,
                                                   c->rdelta, c->nstep, c->use_mad);
                        s3 = qf_quant_make_qkx3(n, c->nmax, xk, wk, L3, &m3, Laux, c->rmin,
                                                c->rdelta, c->nstep, c->use_mad);
                        /* the two differ only in max == min vs max <= min */
                        assert_true(same_float(s_ref, s3) && same_float(m_ref, m3));
                        assert_memory_equal(Lr, L3, (size_t)n);
                        break;
                    case QF_SEARCH_QX:
                        s_ref = qf_quant_make_qx(n, c->nmax, xk, Li, 1, wk);
                        memcpy(Lr, Li, (size_t)n);
                        break;
                    case QF_SEARCH_Q3:
                        s_ref = qf_quant_make_q3(n, c->nmax, xk, Li);
                        memcpy(Lr, Li, (size_t)n);
                        break;
                    default: s_ref = qf_quant_make_qp(n, c->nmax, xk, Lr, wk); break;
                    }
                    if (!same_float(sc[k], s_ref) || !same_float(mn[k], m_ref) ||
                        memcmp(L + k * n, Lr, (size_t)n) != 0)
                        fail_msg("%s: search kind %d n %d nmax %d (case %zu), round %d problem "
                                 "%d: scale %a min %a, scalar %a %a",
                                 level_name(level), c->kind, n, c->nmax, ci, round, k,
                                 (double)sc[k], (double)mn[k], (double)s_ref, (double)m_ref);
                }
            }
        }
    }
#endif
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-level") == 0) {
        printf("%d\n", qf_quant_simd_level());
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_no_simd_env),
        cmocka_unit_test(test_random_rows),
        cmocka_unit_test(test_mixed_groups),
        cmocka_unit_test(test_planted),
        cmocka_unit_test(test_search_kernels),
        cmocka_unit_test(test_finite_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
