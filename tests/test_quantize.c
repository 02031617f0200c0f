/*
 * tests/test_quantize.c - quantize/: the row quantizers against llama.cpp's
 * bytes, dequantization, argument checks, and the imatrix reader.
 *
 * Oracles (fixtures/quant/, made by fixtures/quant/make.py; see its README):
 *   - two planted tensors of mix-probe-12L (zeros, constants, outliers, tiny
 *     and subnormal values, heavy tails) as F32, and the bytes llama-quantize
 *     (llama.cpp b4747) wrote for them in every type: ours must be equal;
 *   - 8 rows of three tiny-llama-256 tensors, its imatrix, and the bytes
 *     llama-quantize --imatrix wrote: the weighted paths must be equal.
 * The F16/BF16 bytes of the planted tensors are checked by sha256 (the
 * files are not in the fixtures, to keep them small).
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".".
 */
#include "tests/testutil.h"

#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/hash.h"
#include "formats/types.h"
#include "quantize/imatrix.h"
#include "quantize/quant.h"

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

/* A file of the source tree, whole (owned by the caller: free); fails the
 * test if missing. */
static void *slurp(const char *rel, size_t *len) { return tu_read_file(tu_fixture(rel), len); }

static float *slurp_f32(const char *rel, size_t *count)
{
    size_t len;
    void *p = slurp(rel, &len);
    assert_int_equal(len % 4, 0);
    *count = len / 4;
    float *f = malloc(len ? len : 1);
    assert_non_null(f);
    const uint8_t *b = p;
    for (size_t i = 0; i < *count; i++) {
        uint32_t u = (uint32_t)b[4 * i] | ((uint32_t)b[4 * i + 1] << 8) |
                     ((uint32_t)b[4 * i + 2] << 16) | ((uint32_t)b[4 * i + 3] << 24);
        memcpy(&f[i], &u, 4);
    }
    free(p);
    return f;
}

static size_t row_bytes(int type, int64_t n_per_row)
{
    uint64_t rs;
    assert_int_equal(qf_ggml_row_size(type, (uint64_t)n_per_row, &rs), 0);
    return (size_t)rs;
}

/* Compare with llama.cpp's bytes; on a difference, say where. */
static void assert_same_bytes(const char *what, int type, int64_t n_per_row, const uint8_t *ours,
                              const uint8_t *golden, size_t n)
{
    for (size_t off = 0; off < n; off++) {
        if (ours[off] != golden[off]) {
            const qf_ggml_traits *tr = qf_ggml_type_traits(type);
            size_t rs = row_bytes(type, n_per_row);
            fail_msg("%s %s: row %zu block %zu byte %zu: ours 0x%02x, llama.cpp 0x%02x", what,
                     tr->name, off / rs, (off % rs) / tr->type_size, off % tr->type_size,
                     ours[off], golden[off]);
        }
    }
}

/* Deterministic pseudo-random N(0,1) (xorshift + Box-Muller, all float). */
typedef struct rng {
    uint64_t s;
} rng;

static float uniform01(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return ((float)(r->s >> 40) + 0.5f) / 16777216.0f;
}

static float gauss(rng *r)
{
    float u1 = uniform01(r), u2 = uniform01(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* The quantized types we produce. */
static const int QTYPES[] = {
    QF_GGML_Q8_0, QF_GGML_Q4_0, QF_GGML_Q4_1, QF_GGML_Q5_0, QF_GGML_Q5_1, QF_GGML_Q2_K,
    QF_GGML_Q3_K, QF_GGML_Q4_K, QF_GGML_Q5_K, QF_GGML_Q6_K, QF_GGML_IQ4_NL, QF_GGML_IQ4_XS,
};
#define N_QTYPES (sizeof QTYPES / sizeof QTYPES[0])

/* ---------------------------------------------------------------------
 * Planted tensors vs llama-quantize
 * ------------------------------------------------------------------- */

typedef struct planted {
    const char *name;
    int64_t rows, cols;
} planted;

static const planted PLANTED[] = {
    { "blk.0.attn_q.weight", 256, 256 },
    { "blk.1.ffn_down.weight", 256, 512 },
};

static float *load_planted(const planted *p)
{
    char rel[256];
    size_t n;
    snprintf(rel, sizeof rel, "fixtures/quant/%s.f32", p->name);
    float *x = slurp_f32(rel, &n);
    assert_int_equal(n, (size_t)(p->rows * p->cols));
    return x;
}

static void check_planted(const planted *p, const float *x, int type, const char *suffix)
{
    char rel[256];
    size_t glen;
    snprintf(rel, sizeof rel, "fixtures/quant/%s.%s%s.bin", p->name, qf_ggml_type_name(type),
             suffix);
    uint8_t *golden = slurp(rel, &glen);
    size_t n = (size_t)p->rows * row_bytes(type, p->cols);
    assert_int_equal(glen, n);
    uint8_t *ours = malloc(n);
    assert_non_null(ours);
    assert_int_equal(qf_quant_rows(type, x, ours, p->rows, p->cols, NULL), 0);
    assert_same_bytes(p->name, type, p->cols, ours, golden, n);
    free(ours);
    free(golden);
}

static void test_planted_golden(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof PLANTED / sizeof PLANTED[0]; t++) {
        float *x = load_planted(&PLANTED[t]);
        for (size_t k = 0; k < N_QTYPES; k++)
            check_planted(&PLANTED[t], x, QTYPES[k], "");
        free(x);
    }
}

/* Q4_K of the source rounded to F16 first (llama-quantize from the f16 GGUF). */
static void test_planted_q4k_from_f16(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof PLANTED / sizeof PLANTED[0]; t++) {
        const planted *p = &PLANTED[t];
        float *x = load_planted(p);
        for (int64_t i = 0; i < p->rows * p->cols; i++)
            x[i] = qf_f16_to_f32(qf_f32_to_f16(x[i]));
        check_planted(p, x, QF_GGML_Q4_K, ".from-f16");
        free(x);
    }
}

/* F16 and BF16: the converter's bytes, by sha256 (golden edge/index.json). */
static void test_planted_f16_bf16(void **state)
{
    static const struct {
        int tensor, type;
        const char *sha256;
    } want[] = {
        { 0, QF_GGML_F16, "e8a1693d7f4cac8e6f93298247a076ee55c8a386a0c1cb6b462be380b20fc8c1" },
        { 0, QF_GGML_BF16, "7e080df762fd0a658edb9cdcf31a609d900806bcc9a11919869be4d57d8c0ebd" },
        { 1, QF_GGML_F16, "8969528cb40a4d346b8fabdd7b83e2ec8dbb638dea62960febf5ce804caa5a26" },
        { 1, QF_GGML_BF16, "03674e3dcf0a3448727b345a53087cf8789681dd59197e8ce14450ca9f1d0607" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const planted *p = &PLANTED[want[i].tensor];
        float *x = load_planted(p);
        size_t n = (size_t)p->rows * row_bytes(want[i].type, p->cols);
        uint8_t *out = malloc(n);
        uint8_t d[QF_SHA256_LEN];
        char hex[QF_SHA256_HEX];
        assert_non_null(out);
        assert_int_equal(qf_quant_rows(want[i].type, x, out, p->rows, p->cols, NULL), 0);
        assert_int_equal(qf_sha256_buf(out, n, d), 0);
        qf_sha256_hex(d, hex);
        assert_string_equal(hex, want[i].sha256);
        /* and back: F16/BF16 -> F32 -> same bytes */
        float *back = malloc((size_t)(p->rows * p->cols) * sizeof *back);
        assert_non_null(back);
        assert_int_equal(qf_quant_dequantize(want[i].type, out, back, p->rows * p->cols), 0);
        uint8_t *again = malloc(n);
        assert_non_null(again);
        assert_int_equal(qf_quant_rows(want[i].type, back, again, p->rows, p->cols, NULL), 0);
        assert_memory_equal(again, out, n);
        free(again);
        free(back);
        free(out);
        free(x);
    }
}

/* Dequantizing llama.cpp's bytes gives finite values, and planted zero rows
 * come back as zeros. */
static void test_dequant_golden(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof PLANTED / sizeof PLANTED[0]; t++) {
        const planted *p = &PLANTED[t];
        float *x = load_planted(p);
        float *y = malloc((size_t)(p->rows * p->cols) * sizeof *y);
        assert_non_null(y);
        for (size_t k = 0; k < N_QTYPES; k++) {
            char rel[256];
            size_t glen;
            snprintf(rel, sizeof rel, "fixtures/quant/%s.%s.bin", p->name,
                     qf_ggml_type_name(QTYPES[k]));
            uint8_t *golden = slurp(rel, &glen);
            assert_int_equal(qf_quant_dequantize(QTYPES[k], golden, y, p->rows * p->cols), 0);
            for (int64_t r = 0; r < p->rows; r++) {
                int zero_row = 1;
                for (int64_t c = 0; c < p->cols; c++)
                    zero_row &= x[r * p->cols + c] == 0.0f;
                for (int64_t c = 0; c < p->cols; c++) {
                    const float v = y[r * p->cols + c];
                    if (!isfinite(v))
                        fail_msg("%s %s: row %lld col %lld dequantizes to %g", p->name,
                                 qf_ggml_type_name(QTYPES[k]), (long long)r, (long long)c,
                                 (double)v);
                    if (zero_row && v != 0.0f)
                        fail_msg("%s %s: zero row %lld col %lld dequantizes to %g", p->name,
                                 qf_ggml_type_name(QTYPES[k]), (long long)r, (long long)c,
                                 (double)v);
                }
            }
            free(golden);
        }
        free(y);
        free(x);
    }
}

/* ---------------------------------------------------------------------
 * Importance-weighted paths vs llama-quantize --imatrix
 * ------------------------------------------------------------------- */

static void test_imatrix_golden(void **state)
{
    static const struct {
        const char *tensor;
        int type;
        int64_t cols;
    } cases[] = {
        { "blk.0.attn_q.weight", QF_GGML_Q2_K, 256 },
        { "blk.0.attn_q.weight", QF_GGML_Q4_0, 256 },
        { "blk.0.attn_q.weight", QF_GGML_Q4_K, 256 },
        { "blk.0.attn_q.weight", QF_GGML_IQ4_XS, 256 },
        { "blk.0.ffn_down.weight", QF_GGML_Q3_K, 768 },
        { "blk.0.ffn_down.weight", QF_GGML_Q4_K, 768 },
        { "blk.1.ffn_down.weight", QF_GGML_Q6_K, 768 },
    };
    const int64_t rows = 8;
    qf_imatrix *im = NULL;
    qf_err err = { 0 };
    (void)state;
    assert_int_equal(qf_imatrix_open(tu_fixture("fixtures/quant/imatrix/tiny-llama-256.imatrix"), &im, &err), 0);
    assert_int_equal(qf_imatrix_count(im), 14);
    assert_int_equal(qf_imatrix_last_chunk(im), 100);
    assert_string_equal(qf_imatrix_dataset(im), "../../models/tiny-llama-256/train.txt");
    assert_null(qf_imatrix_find(im, "output.weight"));

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        size_t n, glen;
        snprintf(rel, sizeof rel, "fixtures/quant/imatrix/%s.f32", cases[i].tensor);
        float *x = slurp_f32(rel, &n);
        assert_int_equal(n, (size_t)(rows * cases[i].cols));
        snprintf(rel, sizeof rel, "fixtures/quant/imatrix/%s.%s.bin", cases[i].tensor,
                 qf_ggml_type_name(cases[i].type));
        uint8_t *golden = slurp(rel, &glen);
        size_t nb = (size_t)rows * row_bytes(cases[i].type, cases[i].cols);
        assert_int_equal(glen, nb);

        int mismatch = 1;
        const float *w = qf_imatrix_weights(im, cases[i].tensor, cases[i].cols, &mismatch);
        assert_non_null(w);
        assert_int_equal(mismatch, 0);
        const qf_imatrix_entry *e = qf_imatrix_find(im, cases[i].tensor);
        assert_int_equal(e->ncall, 100);

        uint8_t *ours = malloc(nb);
        assert_non_null(ours);
        assert_int_equal(qf_quant_rows(cases[i].type, x, ours, rows, cases[i].cols, w), 0);
        assert_same_bytes(cases[i].tensor, cases[i].type, cases[i].cols, ours, golden, nb);

        /* the weights matter: without them the bytes differ */
        assert_int_equal(qf_quant_rows(cases[i].type, x, ours, rows, cases[i].cols, NULL), 0);
        assert_true(memcmp(ours, golden, nb) != 0);
        free(ours);
        free(golden);
        free(x);
    }
    int mismatch = 0;
    assert_null(qf_imatrix_weights(im, "blk.0.attn_q.weight", 128, &mismatch));
    assert_int_equal(mismatch, 1);
    qf_imatrix_close(im);
}

/* ---------------------------------------------------------------------
 * Round trips, row independence, arguments
 * ------------------------------------------------------------------- */

/*
 * Quantize then dequantize N(0,1) data and bound the error.
 *
 * Legacy types have closed-form bounds per 32-weight block, from the level
 * spacing d (half a step for rounding, a whole step where the symmetric
 * types clip the far end of their range: Q4_0 maps the extreme value to -8,
 * so +|max| becomes +7 steps), plus the f16 rounding of d and m (relative
 * 2^-11, times at most 31 levels) - 5% slack covers it.
 *
 * The K and IQ types choose scales by search, clip on purpose and quantize
 * the scales themselves, so their bound is on the relative RMS error over
 * the whole tensor: the value measured for this data set with 25% slack
 * (measured: Q2_K 0.327, Q3_K 0.177, Q4_K 0.0919, Q5_K 0.0455, Q6_K 0.0232,
 * IQ4_NL 0.0850, IQ4_XS 0.0866), plus a loose per-block max error.
 */
static void test_roundtrip_error(void **state)
{
    const int64_t rows = 64, cols = 512, n = rows * cols;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    uint8_t *q = malloc((size_t)rows * row_bytes(QF_GGML_Q8_0, cols));
    rng r = { 0x9E3779B97F4A7C15ull };
    (void)state;
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(q);
    for (int64_t i = 0; i < n; i++)
        x[i] = gauss(&r);
    for (size_t k = 0; k < N_QTYPES; k++) {
        const int type = QTYPES[k];
        const qf_ggml_traits *tr = qf_ggml_type_traits(type);
        assert_int_equal(qf_quant_rows(type, x, q, rows, cols, NULL), 0);
        assert_int_equal(qf_quant_dequantize(type, q, y, n), 0);
        const int64_t bs = tr->block_size;
        double se = 0, sx = 0;
        for (int64_t b = 0; b < n; b += bs) {
            float amax = 0, mn = x[b], mx = x[b], emax = 0;
            for (int64_t j = b; j < b + bs; j++) {
                amax = fmaxf(amax, fabsf(x[j]));
                mn = fminf(mn, x[j]);
                mx = fmaxf(mx, x[j]);
                emax = fmaxf(emax, fabsf(x[j] - y[j]));
                se += (double)(x[j] - y[j]) * (double)(x[j] - y[j]);
                sx += (double)x[j] * (double)x[j];
            }
            float bound;
            switch (type) {
            case QF_GGML_Q8_0: bound = amax / 127 * 0.5f * 1.05f + amax * 0.07f / 127; break;
            case QF_GGML_Q4_0: bound = amax / 8 * 1.05f; break;
            case QF_GGML_Q5_0: bound = amax / 16 * 1.05f; break;
            case QF_GGML_Q4_1: bound = (mx - mn) / 15 * 0.5f * 1.05f + fabsf(mn) * 1e-3f; break;
            case QF_GGML_Q5_1: bound = (mx - mn) / 31 * 0.5f * 1.05f + fabsf(mn) * 1e-3f; break;
            default: bound = amax * 0.5f; break; /* searched types: loose */
            }
            if (emax > bound)
                fail_msg("%s: block at %lld: max error %g > bound %g (amax %g)", tr->name,
                         (long long)b, (double)emax, (double)bound, (double)amax);
        }
        const double rel = sqrt(se / sx);
        double limit = 1;
        switch (type) {
        case QF_GGML_Q8_0: limit = 0.01; break;
        case QF_GGML_Q4_0: limit = 0.15; break;
        case QF_GGML_Q4_1: limit = 0.15; break;
        case QF_GGML_Q5_0: limit = 0.08; break;
        case QF_GGML_Q5_1: limit = 0.08; break;
        case QF_GGML_Q2_K: limit = 0.327 * 1.25; break;
        case QF_GGML_Q3_K: limit = 0.177 * 1.25; break;
        case QF_GGML_Q4_K: limit = 0.0919 * 1.25; break;
        case QF_GGML_Q5_K: limit = 0.0455 * 1.25; break;
        case QF_GGML_Q6_K: limit = 0.0232 * 1.25; break;
        case QF_GGML_IQ4_NL: limit = 0.0850 * 1.25; break;
        case QF_GGML_IQ4_XS: limit = 0.0866 * 1.25; break;
        }
        if (getenv("QF_TEST_VERBOSE"))
            print_message("%-7s relative rms error %.4f (limit %.4f)\n", tr->name, rel, limit);
        if (rel > limit)
            fail_msg("%s: relative rms error %g > %g", tr->name, rel, limit);
    }
    free(q);
    free(y);
    free(x);
}

/* Rows are independent: one call, row by row, and uneven chunks give the
 * same bytes, with and without weights; and so do 4 threads at once. */
typedef struct job {
    int type;
    const float *x, *w;
    uint8_t *out;
    int64_t r0, r1, cols;
    int rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    size_t rs = row_bytes(j->type, j->cols);
    j->rc = qf_quant_rows(j->type, j->x + j->r0 * j->cols, j->out + (size_t)j->r0 * rs,
                          j->r1 - j->r0, j->cols, j->w);
    return NULL;
}

static void test_rows_independent(void **state)
{
    const int64_t rows = 12, cols = 512;
    float *x = malloc((size_t)(rows * cols) * sizeof *x), w[512];
    rng r = { 12345 };
    (void)state;
    assert_non_null(x);
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = gauss(&r) * (i % 97 == 0 ? 20.0f : 1.0f);
    for (int i = 0; i < cols; i++)
        w[i] = 0.1f + uniform01(&r);
    const size_t cap = (size_t)rows * row_bytes(QF_GGML_Q8_0, cols);
    uint8_t *a = malloc(cap), *b = malloc(cap);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t k = 0; k < N_QTYPES; k++) {
        for (int weighted = 0; weighted < 2; weighted++) {
            const int type = QTYPES[k];
            const float *qw = weighted ? w : NULL;
            const size_t rs = row_bytes(type, cols), n = (size_t)rows * rs;
            assert_int_equal(qf_quant_rows(type, x, a, rows, cols, qw), 0);
            memset(b, 0xA5, n);
            for (int64_t i = 0; i < rows; i++)
                assert_int_equal(qf_quant_rows(type, x + i * cols, b + (size_t)i * rs, 1, cols, qw), 0);
            assert_memory_equal(a, b, n);
            memset(b, 0x5A, n);
            static const int64_t chunks[] = { 5, 2, 4, 1 };
            for (int64_t i = 0, c = 0; i < rows; i += chunks[c++])
                assert_int_equal(qf_quant_rows(type, x + i * cols, b + (size_t)i * rs,
                                               chunks[c], cols, qw), 0);
            assert_memory_equal(a, b, n);

            /* four threads, three rows each, into a misaligned buffer */
            uint8_t *mis = malloc(n + 1);
            assert_non_null(mis);
            pthread_t th[4];
            job jobs[4];
            for (int t = 0; t < 4; t++) {
                jobs[t] = (job){ type, x, qw, mis + 1, 3 * t, 3 * t + 3, cols, -1 };
                assert_int_equal(pthread_create(&th[t], NULL, run_job, &jobs[t]), 0);
            }
            for (int t = 0; t < 4; t++) {
                pthread_join(th[t], NULL);
                assert_int_equal(jobs[t].rc, 0);
            }
            assert_memory_equal(a, mis + 1, n);
            free(mis);
        }
    }
    free(b);
    free(a);
    free(x);
}

/* Special blocks: all zero gives all-zero values back; a constant block
 * comes back close to the constant for every type. */
static void test_special_blocks(void **state)
{
    float x[512], y[512];
    uint8_t q[600];
    (void)state;
    for (size_t k = 0; k < N_QTYPES; k++) {
        const int type = QTYPES[k];
        memset(x, 0, sizeof x);
        assert_int_equal(qf_quant_rows(type, x, q, 1, 512, NULL), 0);
        assert_int_equal(qf_quant_dequantize(type, q, y, 512), 0);
        for (int i = 0; i < 512; i++)
            assert_true(y[i] == 0.0f);
        for (int i = 0; i < 512; i++)
            x[i] = -0.3f;
        assert_int_equal(qf_quant_rows(type, x, q, 1, 512, NULL), 0);
        assert_int_equal(qf_quant_dequantize(type, q, y, 512), 0);
        for (int i = 0; i < 512; i++)
            if (fabsf(y[i] + 0.3f) > 0.3f * 0.02f)
                fail_msg("%s: constant -0.3 comes back as %g", qf_ggml_type_name(type),
                         (double)y[i]);
    }
}

static void test_invalid_arguments(void **state)
{
    float x[512] = { 0 }, y[512];
    uint8_t q[1024];
    (void)state;
    /* row lengths that are not a multiple of the block size */
    assert_int_equal(qf_quant_rows(QF_GGML_Q4_0, x, q, 1, 48, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_Q4_K, x, q, 1, 128, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_IQ4_XS, x, q, 1, 288, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, 1, 0, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, 1, -32, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, -1, 32, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, 0, 32, NULL), 0);
    assert_int_equal(qf_quant_dequantize(QF_GGML_Q6_K, q, y, 100), QF_EINVAL);
    assert_int_equal(qf_quant_dequantize(QF_GGML_Q6_K, q, y, -256), QF_EINVAL);
    /* types we cannot produce */
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_1, x, q, 1, 32, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_IQ2_XXS, x, q, 1, 256, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(4, x, q, 1, 32, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(-1, x, q, 1, 32, NULL), QF_EINVAL);
    assert_false(qf_quant_can_quantize(QF_GGML_IQ2_XXS));
    assert_false(qf_quant_can_dequantize(QF_GGML_Q8_K));
    for (size_t k = 0; k < N_QTYPES; k++) {
        assert_true(qf_quant_can_quantize(QTYPES[k]));
        assert_true(qf_quant_can_dequantize(QTYPES[k]));
    }
    assert_true(qf_quant_can_quantize(QF_GGML_F32));
    assert_true(qf_quant_can_quantize(QF_GGML_F16));
    assert_true(qf_quant_can_quantize(QF_GGML_BF16));
    /* non-finite input or weights are refused by the quantized types */
    x[37] = NAN;
    assert_int_equal(qf_quant_rows(QF_GGML_Q4_K, x, q, 1, 256, NULL), QF_EINVAL);
    x[37] = INFINITY;
    assert_int_equal(qf_quant_rows(QF_GGML_Q8_0, x, q, 1, 64, NULL), QF_EINVAL);
    assert_int_equal(qf_quant_rows(QF_GGML_F16, x, q, 1, 64, NULL), 0); /* plain: kept */
    x[37] = 0;
    float w[256];
    for (int i = 0; i < 256; i++)
        w[i] = 1;
    w[3] = NAN;
    assert_int_equal(qf_quant_rows(QF_GGML_Q4_K, x, q, 1, 256, w), QF_EINVAL);
}

/* Huge finite values must not trip undefined behaviour (run under UBSan)
 * and must give finite scales where they fit f16. */
static void test_extreme_values(void **state)
{
    float x[256], y[256];
    uint8_t q[300];
    (void)state;
    for (int i = 0; i < 256; i++)
        x[i] = (i % 2 ? 3e38f : -3e38f) * ((float)(i % 7) / 7.0f);
    for (size_t k = 0; k < N_QTYPES; k++) {
        assert_int_equal(qf_quant_rows(QTYPES[k], x, q, 1, 256, NULL), 0);
        assert_int_equal(qf_quant_dequantize(QTYPES[k], q, y, 256), 0);
    }
    for (int i = 0; i < 256; i++)
        x[i] = (float)(i - 128) * 1e-41f; /* subnormal */
    for (size_t k = 0; k < N_QTYPES; k++) {
        assert_int_equal(qf_quant_rows(QTYPES[k], x, q, 1, 256, NULL), 0);
        assert_int_equal(qf_quant_dequantize(QTYPES[k], q, y, 256), 0);
        for (int i = 0; i < 256; i++)
            assert_true(isfinite(y[i]));
    }
}

/* ---------------------------------------------------------------------
 * imatrix reader on hostile input
 * ------------------------------------------------------------------- */

typedef struct buf {
    uint8_t b[512];
    size_t n;
} buf;

static void put_i32(buf *b, int32_t v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++)
        b->b[b->n++] = (uint8_t)(u >> (8 * i));
}

static void put_f32(buf *b, float f)
{
    int32_t v;
    memcpy(&v, &f, 4);
    put_i32(b, v);
}

static void put_str(buf *b, const char *s)
{
    put_i32(b, (int32_t)strlen(s));
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}

/* A valid two-entry file with a trailer (76 bytes). Offsets: 0 count,
 * 4 name_len, 8 name (19 bytes), 27 ncall, 31 n_values, 35 and 39 values,
 * 43.. second entry "a", 60 last_chunk, 64 dataset length, 68 dataset. */
static buf good_imatrix(void)
{
    buf b = { { 0 }, 0 };
    put_i32(&b, 2);
    put_str(&b, "blk.0.ffn_up.weight");
    put_i32(&b, 4);
    put_i32(&b, 2);
    put_f32(&b, 8.0f);
    put_f32(&b, 2.0f);
    put_str(&b, "a");
    put_i32(&b, 0);
    put_i32(&b, 1);
    put_f32(&b, 3.0f);
    put_i32(&b, 10);
    put_str(&b, "data.txt");
    return b;
}

static int open_buf(const buf *b, qf_err *err)
{
    qf_imatrix *im = NULL;
    qf_err_clear(err);
    int rc = qf_imatrix_open_buffer(b->b, b->n, "t.imatrix", &im, err);
    if (rc == 0)
        assert_non_null(im);
    else
        assert_null(im);
    qf_imatrix_close(im);
    return rc;
}

static void test_imatrix_reader(void **state)
{
    qf_err err = { 0 };
    qf_imatrix *im = NULL;
    (void)state;
    buf b = good_imatrix();
    assert_int_equal(qf_imatrix_open_buffer(b.b, b.n, "t.imatrix", &im, &err), 0);
    assert_int_equal(qf_imatrix_count(im), 2);
    const qf_imatrix_entry *e = qf_imatrix_find(im, "blk.0.ffn_up.weight");
    assert_non_null(e);
    assert_int_equal(e->ncall, 4);
    assert_int_equal(e->n_values, 2);
    assert_true(e->weights[0] == 2.0f && e->weights[1] == 0.5f); /* divided by ncall */
    e = qf_imatrix_find(im, "a");
    assert_non_null(e);
    assert_true(e->weights[0] == 3.0f); /* ncall 0: as stored */
    assert_ptr_equal(qf_imatrix_at(im, 1), e);
    assert_null(qf_imatrix_at(im, 2));
    assert_null(qf_imatrix_find(im, "b"));
    assert_int_equal(qf_imatrix_last_chunk(im), 10);
    assert_string_equal(qf_imatrix_dataset(im), "data.txt");
    qf_imatrix_close(im);
    qf_imatrix_close(NULL);

    /* without the trailer */
    b = good_imatrix();
    b.n -= 4 + 4 + 8;
    assert_int_equal(qf_imatrix_open_buffer(b.b, b.n, "t.imatrix", &im, &err), 0);
    assert_int_equal(qf_imatrix_last_chunk(im), -1);
    assert_null(qf_imatrix_dataset(im));
    qf_imatrix_close(im);

    /* every truncation fails cleanly */
    buf g = good_imatrix();
    for (size_t n = 0; n < g.n; n++) {
        b = g;
        b.n = n;
        int rc = open_buf(&b, &err);
        if (n == g.n - 16) /* exactly the entries, no trailer: valid */
            assert_int_equal(rc, 0);
        else if (rc != QF_ETRUNC && rc != QF_EFORMAT)
            fail_msg("truncated at %zu: rc %d (%s)", n, rc, err.msg);
    }

    /* corruptions: (offset, new i32 value, expected code) */
    static const struct {
        size_t off;
        int32_t v;
        int rc;
        const char *msg;
    } bad[] = {
        { 0, 0, QF_EFORMAT, "entry count 0" },
        { 0, -5, QF_EFORMAT, "entry count -5" },
        { 0, 1000000, QF_ETRUNC, "cannot fit" },
        { 4, 0, QF_EFORMAT, "name length 0" },
        { 4, 100000, QF_EFORMAT, "name length 100000" },
        { 4, 200, QF_ETRUNC, "name of 200 bytes" },
        { 27, -1, QF_EFORMAT, "negative ncall" },
        { 31, 0, QF_EFORMAT, "value count 0" },
        { 31, 1 << 30, QF_ETRUNC, "values" },
        { 64, -2, QF_EFORMAT, "dataset name length -2" },
        { 64, 9, QF_ETRUNC, "dataset name of 9 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = good_imatrix();
        buf v = { { 0 }, 0 };
        put_i32(&v, bad[i].v);
        memcpy(b.b + bad[i].off, v.b, 4);
        int rc = open_buf(&b, &err);
        if (rc != bad[i].rc || !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: rc %d msg \"%s\", want %d \"%s\"", i, rc, err.msg, bad[i].rc,
                     bad[i].msg);
        assert_non_null(strstr(err.msg, "t.imatrix"));
    }

    /* values: NaN, infinity, negative */
    static const float badv[] = { NAN, INFINITY, -1.0f };
    for (size_t i = 0; i < 3; i++) {
        b = good_imatrix();
        buf v = { { 0 }, 0 };
        put_f32(&v, badv[i]);
        memcpy(b.b + 39, v.b, 4);
        assert_int_equal(open_buf(&b, &err), QF_EFORMAT);
        assert_non_null(strstr(err.msg, "must be finite"));
    }

    /* NUL in a name, duplicate names, bytes after the trailer, GGUF */
    b = good_imatrix();
    b.b[10] = 0;
    assert_int_equal(open_buf(&b, &err), QF_EFORMAT);
    {
        buf d = { { 0 }, 0 };
        put_i32(&d, 2);
        put_str(&d, "x");
        put_i32(&d, 1);
        put_i32(&d, 1);
        put_f32(&d, 1.0f);
        put_str(&d, "x");
        put_i32(&d, 1);
        put_i32(&d, 1);
        put_f32(&d, 1.0f);
        assert_int_equal(open_buf(&d, &err), QF_EFORMAT);
        assert_non_null(strstr(err.msg, "appears twice"));
    }
    b = good_imatrix();
    b.b[b.n++] = 0;
    assert_int_equal(open_buf(&b, &err), QF_EFORMAT);
    b = good_imatrix();
    memcpy(b.b, "GGUF", 4); /* read as a GGUF, and a broken one (version 19) */
    assert_true(open_buf(&b, &err) < 0);
    b.n = 0;
    assert_int_equal(open_buf(&b, &err), QF_ETRUNC);

    /* a missing file */
    assert_int_equal(qf_imatrix_open("/nonexistent/x.imatrix", &im, &err), QF_EIO);
    assert_null(im);
}

/* Write a GGUF imatrix with the given tensors to path. Each tensor: name,
 * ne0, ne1, values. */
typedef struct gt {
    const char *name;
    uint64_t ne0, ne1;
    const float *v;
} gt;

static void write_gguf_imatrix(const char *path, const gt *t, size_t n)
{
    qf_gguf_writer *w = NULL;
    qf_err err = { 0 };
    const char *ds[] = { "train.txt" };
    assert_int_equal(qf_gguf_writer_new(&w, &err), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "general.type", "imatrix", &err), 0);
    assert_int_equal(qf_gguf_writer_set_arr_str(w, "imatrix.datasets", ds, NULL, 1, &err), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "imatrix.chunk_count", 7, &err), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "imatrix.chunk_size", 512, &err), 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[2] = { t[i].ne0, t[i].ne1 };
        assert_int_equal(qf_gguf_writer_add_tensor(w, t[i].name, QF_GGML_F32, 2, ne, &err), 0);
    }
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, &err), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[64];
        for (uint64_t k = 0; k < t[i].ne0 * t[i].ne1; k++) {
            uint32_t u;
            memcpy(&u, &t[i].v[k], 4);
            qf_put32(b + 4 * k, u);
        }
        assert_int_equal(qf_gguf_writer_write(w, b, 4 * t[i].ne0 * t[i].ne1, &err), 0);
    }
    assert_int_equal(qf_gguf_writer_finish(w, &err), 0);
    qf_gguf_writer_free(w);
}

static void test_imatrix_gguf(void **state)
{
    static const float sums[] = { 2, 4, 6, 8, 1, 2, 3, 4 }, counts[] = { 2, 0 };
    static const float xs[] = { 3, 6, 9 }, xc[] = { 3 };
    const gt good[] = {
        { "blk.0.ffn_up.weight.in_sum2", 4, 2, sums },
        { "blk.0.ffn_up.weight.counts", 1, 2, counts },
        { "x.counts", 1, 1, xc },
        { "x.in_sum2", 3, 1, xs },
    };
    char dir[] = "/tmp/qf_test_imatrix.XXXXXX", path[256];
    qf_imatrix *im = NULL;
    qf_err err = { 0 };
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/imatrix.gguf", dir);

    write_gguf_imatrix(path, good, 4);
    assert_int_equal(qf_imatrix_open(path, &im, &err), 0);
    assert_int_equal(qf_imatrix_count(im), 2);
    assert_int_equal(qf_imatrix_last_chunk(im), 7);
    assert_string_equal(qf_imatrix_dataset(im), "train.txt");
    const qf_imatrix_entry *e = qf_imatrix_find(im, "blk.0.ffn_up.weight");
    assert_non_null(e);
    assert_int_equal(e->n_values, 8);
    static const float want[] = { 1, 2, 3, 4, 1, 1, 1, 1 }; /* count 0: ones */
    for (int i = 0; i < 8; i++)
        assert_true(e->weights[i] == want[i]);
    assert_non_null(qf_imatrix_weights(im, "x", 3, NULL));
    assert_true(qf_imatrix_find(im, "x")->weights[2] == 3.0f);
    qf_imatrix_close(im);

    /* sums without counts, counts without sums, wrong counts shape */
    const gt no_counts[] = { { "a.in_sum2", 3, 1, xs } };
    write_gguf_imatrix(path, no_counts, 1);
    assert_int_equal(qf_imatrix_open(path, &im, &err), QF_EFORMAT);
    const gt no_sums[] = { { "a.counts", 1, 1, xc } };
    qf_err_clear(&err);
    write_gguf_imatrix(path, no_sums, 1);
    assert_int_equal(qf_imatrix_open(path, &im, &err), QF_EFORMAT);
    const gt bad_shape[] = { { "a.in_sum2", 3, 1, xs }, { "a.counts", 2, 1, sums } };
    qf_err_clear(&err);
    write_gguf_imatrix(path, bad_shape, 2);
    assert_int_equal(qf_imatrix_open(path, &im, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "a.in_sum2"));
    const gt neg[] = { { "a.in_sum2", 3, 1, xs }, { "a.counts", 1, 1, (const float[]){ -1 } } };
    qf_err_clear(&err);
    write_gguf_imatrix(path, neg, 2);
    assert_int_equal(qf_imatrix_open(path, &im, &err), QF_EFORMAT);
    /* a GGUF that is not an imatrix */
    const gt other[] = { { "token_embd.weight", 3, 1, xs } };
    qf_err_clear(&err);
    write_gguf_imatrix(path, other, 1);
    assert_int_equal(qf_imatrix_open(path, &im, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "not an imatrix"));
    assert_null(im);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_golden),
        cmocka_unit_test(test_planted_q4k_from_f16),
        cmocka_unit_test(test_planted_f16_bf16),
        cmocka_unit_test(test_dequant_golden),
        cmocka_unit_test(test_imatrix_golden),
        cmocka_unit_test(test_roundtrip_error),
        cmocka_unit_test(test_rows_independent),
        cmocka_unit_test(test_special_blocks),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_extreme_values),
        cmocka_unit_test(test_imatrix_reader),
        cmocka_unit_test(test_imatrix_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
