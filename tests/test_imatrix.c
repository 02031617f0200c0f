/*
 * tests/test_imatrix.c - collecting an importance matrix: the collector of
 * quantize/imatrix.h against sums worked out by hand, its two file formats
 * read back by the reader, its errors; and the forward pass's product
 * observer (verify/model.h) on fixtures/stories260K: which products, in
 * which order, with which input, at no cost to the logits.
 */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/source.h"
#include "formats/file.h"
#include "formats/types.h"
#include "quantize/imatrix.h"
#include "verify/model.h"

static char root[1024], dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return tu_mkdtemp(dir, sizeof dir, "imatrix");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

/* =====================================================================
 * The collector
 * ===================================================================== */

/*
 * Two calls to "a" (2 rows, then 1 row, of 2 columns) and one to "b":
 *   a: sums [1 + 9 + 0.25, 4 + 16 + 0] = [10.25, 20], 3 rows, ncall 2
 *   b: sums [4, 1, 0], 1 row, ncall 1
 */
static qf_imatrix_acc *hand_case(void)
{
    static const float a1[] = { 1.0f, 2.0f, 3.0f, -4.0f }, a2[] = { 0.5f, 0.0f };
    static const float b1[] = { -2.0f, 1.0f, 0.0f };
    qf_imatrix_acc *acc = NULL;
    qf_err err = { 0 };

    assert_int_equal(qf_imatrix_acc_new(&acc, &err), 0);
    assert_int_equal(qf_imatrix_acc_add(acc, "a", a1, 2, 2, &err), 0);
    assert_int_equal(qf_imatrix_acc_add(acc, "b", b1, 1, 3, &err), 0);
    assert_int_equal(qf_imatrix_acc_add(acc, "a", a2, 1, 2, &err), 0);
    return acc;
}

static void test_sums(void **state)
{
    qf_imatrix_acc *acc = hand_case();
    qf_imatrix_sums e;
    (void)state;

    assert_int_equal(qf_imatrix_acc_count(acc), 2);
    assert_int_equal(qf_imatrix_acc_get(acc, 0, &e), 0);
    assert_string_equal(e.name, "a");
    assert_int_equal(e.n_cols, 2);
    assert_true(e.sums[0] == 10.25f && e.sums[1] == 20.0f);
    assert_int_equal(e.count, 3);
    assert_int_equal(e.ncall, 2);
    assert_int_equal(qf_imatrix_acc_get(acc, 1, &e), 0);
    assert_string_equal(e.name, "b");
    assert_true(e.sums[0] == 4.0f && e.sums[1] == 1.0f && e.sums[2] == 0.0f);
    assert_int_equal(e.count, 1);
    assert_int_equal(e.ncall, 1);
    assert_int_equal(qf_imatrix_acc_get(acc, 2, &e), QF_EINVAL);
    qf_imatrix_acc_free(acc);
}

/* Sums add in float, row after row, as llama-imatrix's loop does: 1 then
 * 2^-24 twenty times stays 1 (each addition rounds back), where a wider
 * accumulator would give 1 + 20 * 2^-24. */
static void test_float_order(void **state)
{
    float x[21];
    qf_imatrix_acc *acc = NULL;
    qf_imatrix_sums e;
    (void)state;

    x[0] = 1.0f;
    for (int i = 1; i < 21; i++)
        x[i] = 0x1p-12f; /* squared: 2^-24, half an ulp of 1 */
    assert_int_equal(qf_imatrix_acc_new(&acc, NULL), 0);
    assert_int_equal(qf_imatrix_acc_add(acc, "x", x, 21, 1, NULL), 0);
    qf_imatrix_acc_get(acc, 0, &e);
    assert_true(e.sums[0] == 1.0f);
    qf_imatrix_acc_free(acc);
}

static void test_errors(void **state)
{
    static const float x[] = { 1.0f, 2.0f, 3.0f }, big[] = { 1e30f, 1.0f };
    qf_imatrix_acc *acc = hand_case();
    qf_imatrix_sums e;
    qf_err err = { 0 };
    char path[128], name[QF_IMATRIX_MAX_NAME + 2];
    (void)state;

    /* another column count for an entry: refused, entry unchanged */
    assert_int_equal(qf_imatrix_acc_add(acc, "a", x, 1, 3, &err), QF_EMISMATCH);
    assert_non_null(strstr(err.msg, "\"a\": 3 columns, earlier 2"));
    /* a sum that overflows float: refused, entry unchanged */
    qf_err_clear(&err);
    assert_int_equal(qf_imatrix_acc_add(acc, "a", big, 1, 2, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "column 0"));
    qf_imatrix_acc_get(acc, 0, &e);
    assert_true(e.sums[0] == 10.25f && e.sums[1] == 20.0f && e.count == 3 && e.ncall == 2);
    /* names: 1..QF_IMATRIX_MAX_NAME bytes */
    assert_int_equal(qf_imatrix_acc_add(acc, "", x, 1, 1, NULL), QF_EINVAL);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(qf_imatrix_acc_add(acc, name, x, 1, 1, NULL), QF_EINVAL);
    assert_int_equal(qf_imatrix_acc_add(acc, "c", x, 1, 0, NULL), QF_EINVAL);
    assert_int_equal(qf_imatrix_acc_count(acc), 2);

    /* an existing file is kept without QF_OUT_FORCE */
    snprintf(path, sizeof path, "%s/exists.dat", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("keep", f);
    fclose(f);
    qf_err_clear(&err);
    assert_int_equal(qf_imatrix_acc_write(acc, path, QF_IMATRIX_FORMAT_DAT, 0, "d", 1, 1, &err),
                     QF_EEXIST);
    assert_int_equal(qf_imatrix_acc_write(acc, path, QF_IMATRIX_FORMAT_DAT, QF_OUT_FORCE, "d", 1,
                                          1, &err), 0);
    qf_imatrix_acc_free(acc);

    /* nothing collected: nothing written */
    assert_int_equal(qf_imatrix_acc_new(&acc, NULL), 0);
    snprintf(path, sizeof path, "%s/empty.dat", dir);
    assert_int_equal(qf_imatrix_acc_write(acc, path, QF_IMATRIX_FORMAT_DAT, 0, NULL, 0, 0, NULL),
                     QF_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    qf_imatrix_acc_free(acc);
}

/* The legacy file, byte for byte, and as the reader (llama-quantize's
 * arithmetic) sees it: weights ((sum / count) * ncall) / ncall. */
static void test_write_dat(void **state)
{
    qf_imatrix_acc *acc = hand_case();
    qf_imatrix *im = NULL;
    qf_err err = { 0 };
    char path[128];
    const qf_imatrix_entry *e;
    (void)state;

    snprintf(path, sizeof path, "%s/hand.dat", dir);
    assert_int_equal(qf_imatrix_acc_write(acc, path, QF_IMATRIX_FORMAT_DAT, 0, "cal.txt", 7, 64,
                                          &err), 0);
    {
        /* n | "a" ncall 2, 2 values | "b" ncall 1, 3 values | last_call 2, "cal.txt" */
        const float va0 = (10.25f / 3.0f) * 2.0f, va1 = (20.0f / 3.0f) * 2.0f;
        uint8_t want[4 + (4 + 1 + 4 + 4 + 8) + (4 + 1 + 4 + 4 + 12) + 4 + 4 + 7], got[sizeof want + 1];
        uint8_t *p = want;
#define I32(v) do { int32_t t_ = (v); memcpy(p, &t_, 4); p += 4; } while (0)
#define F32(v) do { float t_ = (v); memcpy(p, &t_, 4); p += 4; } while (0)
        I32(2);
        I32(1); *p++ = 'a'; I32(2); I32(2); F32(va0); F32(va1);
        I32(1); *p++ = 'b'; I32(1); I32(3); F32(4.0f); F32(1.0f); F32(0.0f);
        I32(2); I32(7); memcpy(p, "cal.txt", 7); p += 7;
#undef I32
#undef F32
        assert_int_equal(p - want, sizeof want);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(got, 1, sizeof got, f);
        fclose(f);
        assert_int_equal(n, sizeof want);
        assert_memory_equal(got, want, sizeof want);
    }

    assert_int_equal(qf_imatrix_open(path, &im, &err), 0);
    assert_int_equal(qf_imatrix_count(im), 2);
    assert_int_equal(qf_imatrix_last_chunk(im), 2);
    assert_string_equal(qf_imatrix_dataset(im), "cal.txt");
    e = qf_imatrix_find(im, "a");
    assert_non_null(e);
    assert_int_equal(e->ncall, 2);
    assert_true(e->weights[0] == ((10.25f / 3.0f) * 2.0f) / 2.0f);
    assert_true(fabsf(e->weights[1] - 20.0f / 3.0f) <= 1e-6f);
    e = qf_imatrix_find(im, "b");
    assert_true(e->weights[0] == 4.0f && e->weights[1] == 1.0f && e->weights[2] == 0.0f);
    qf_imatrix_close(im);
    qf_imatrix_acc_free(acc);
}

/* The GGUF file: sums and counts unscaled; the reader's weights sum / count;
 * the chunk keys and the dataset as given. */
static void test_write_gguf(void **state)
{
    qf_imatrix_acc *acc = hand_case();
    qf_imatrix *im = NULL;
    qf_err err = { 0 };
    char path[128];
    const qf_imatrix_entry *e;
    (void)state;

    snprintf(path, sizeof path, "%s/hand.gguf", dir);
    assert_int_equal(qf_imatrix_acc_write(acc, path, QF_IMATRIX_FORMAT_GGUF, 0, "cal.txt", 7, 64,
                                          &err), 0);
    assert_int_equal(qf_imatrix_open(path, &im, &err), 0);
    assert_int_equal(qf_imatrix_count(im), 2);
    assert_int_equal(qf_imatrix_last_chunk(im), 7);
    assert_string_equal(qf_imatrix_dataset(im), "cal.txt");
    e = qf_imatrix_find(im, "a");
    assert_non_null(e);
    assert_true(e->weights[0] == 10.25f / 3.0f && e->weights[1] == 20.0f / 3.0f);
    e = qf_imatrix_find(im, "b");
    assert_true(e->weights[0] == 4.0f && e->weights[1] == 1.0f && e->weights[2] == 0.0f);
    qf_imatrix_close(im);
    qf_imatrix_acc_free(acc);
}

/* =====================================================================
 * The product observer
 * ===================================================================== */

#define N_TOK 24

typedef struct {
    int calls;
    char names[64][48];
    int64_t rows[64], cols[64];
    float *q_in, *k_in, *v_in; /* blk.0's three inputs */
    int fail_at;               /* call index that returns an error, or -1 */
} watch;

static int observer(void *user, const char *name, const float *x, int64_t n_tokens, int64_t n_in,
                    qf_err *err)
{
    watch *w = user;
    float **keep = NULL;
    int i = w->calls++;
    if (i < 64) {
        snprintf(w->names[i], sizeof w->names[i], "%s", name);
        w->rows[i] = n_tokens;
        w->cols[i] = n_in;
    }
    if (!strcmp(name, "blk.0.attn_q.weight"))
        keep = &w->q_in;
    else if (!strcmp(name, "blk.0.attn_k.weight"))
        keep = &w->k_in;
    else if (!strcmp(name, "blk.0.attn_v.weight"))
        keep = &w->v_in;
    if (keep && !*keep) {
        *keep = malloc((size_t)(n_tokens * n_in) * sizeof(float));
        memcpy(*keep, x, (size_t)(n_tokens * n_in) * sizeof(float));
    }
    if (i == w->fail_at)
        return qf_err_set(err, QF_EMISMATCH, "stop at %s", name);
    return 0;
}

static void watch_free(watch *w)
{
    free(w->q_in);
    free(w->k_in);
    free(w->v_in);
}

typedef struct {
    qf_source *src;
    qf_model *m;
} loaded;

static void load(loaded *l, const char *rel)
{
    char path[1200];
    qf_err err = { 0 };
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (qf_source_open(path, &l->src, &err) || qf_model_load(l->src, 2, &l->m, &err))
        fail_msg("%s: %s", rel, err.msg);
}

static void unload(loaded *l)
{
    qf_model_free(l->m);
    qf_source_close(l->src);
}

/* Run N_TOK tokens (ids 1..N_TOK) with logits from out_first, an observer
 * if w is set; logits: (N_TOK - out_first, n_vocab), caller frees. */
static float *run(const loaded *l, int numerics, int64_t out_first, watch *w, int *rc)
{
    int32_t tok[N_TOK];
    qf_model_state *st = NULL;
    qf_err err = { 0 };
    int64_t V = qf_model_get_config(l->m)->n_vocab;
    float *logits = malloc((size_t)((N_TOK - out_first) * V) * sizeof(float));

    for (int i = 0; i < N_TOK; i++)
        tok[i] = i + 1;
    assert_int_equal(qf_model_state_new(l->m, N_TOK, N_TOK, 2, numerics, &st, &err), 0);
    if (w)
        qf_model_state_set_observer(st, observer, w);
    *rc = qf_model_eval(l->m, st, tok, N_TOK, out_first, logits, &err);
    if (w && *rc)
        assert_non_null(strstr(err.msg, "stop at blk.1.attn_q.weight"));
    qf_model_state_free(st);
    return logits;
}

/* Which products, in which order, of what size. */
static void test_observer_products(void **state)
{
    static const char *const kinds[7] = { "attn_q", "attn_k", "attn_v", "attn_output",
                                          "ffn_gate", "ffn_up", "ffn_down" };
    loaded l = { 0 };
    watch w;
    int rc, k = 0;
    (void)state;

    load(&l, "fixtures/stories260K");
    const qf_model_config *c = qf_model_get_config(l.m);
    memset(&w, 0, sizeof w);
    w.fail_at = -1;
    free(run(&l, QF_NUMERICS_F32, N_TOK - 5, &w, &rc));
    assert_int_equal(rc, 0);
    assert_int_equal(w.calls, 7 * c->n_layer + 1);
    for (int64_t b = 0; b < c->n_layer; b++)
        for (int j = 0; j < 7; j++, k++) {
            char want[48];
            snprintf(want, sizeof want, "blk.%lld.%s.weight", (long long)b, kinds[j]);
            assert_string_equal(w.names[k], want);
            assert_int_equal(w.rows[k], N_TOK);
            assert_int_equal(w.cols[k], j == 6 ? c->n_ff : j == 3 ? c->n_head * c->head_dim : c->dim);
        }
    /* the output (tied: token_embd) only for the tokens whose logits were asked */
    assert_string_equal(w.names[k], "token_embd.weight");
    assert_int_equal(w.rows[k], 5);
    assert_int_equal(w.cols[k], c->dim);

    /* q, k and v see the same input: attn_norm(token embedding) */
    assert_memory_equal(w.q_in, w.k_in, (size_t)(N_TOK * c->dim) * sizeof(float));
    assert_memory_equal(w.q_in, w.v_in, (size_t)(N_TOK * c->dim) * sizeof(float));
    {
        float *emb = malloc((size_t)c->dim * sizeof(float)), *nw = malloc((size_t)c->dim * sizeof(float));
        int64_t ti = qf_source_find_tensor(l.src, "token_embd.weight");
        int64_t ni = qf_source_find_tensor(l.src, "blk.0.attn_norm.weight");
        assert_true(ti >= 0 && ni >= 0);
        assert_int_equal(qf_source_rows_f32(l.src, ni, 0, 1, nw, NULL), 0);
        for (int t = 0; t < N_TOK; t++) {
            double ss = 0;
            assert_int_equal(qf_source_rows_f32(l.src, ti, (uint64_t)t + 1, 1, emb, NULL), 0);
            for (int64_t i = 0; i < c->dim; i++)
                ss += (double)emb[i] * (double)emb[i];
            double scale = 1.0 / sqrt(ss / (double)c->dim + (double)c->norm_eps);
            for (int64_t i = 0; i < c->dim; i++) {
                double want = (double)emb[i] * scale * (double)nw[i];
                double got = (double)w.q_in[t * c->dim + i];
                assert_true(fabs(got - want) <= 1e-6 * (fabs(want) + 1e-3));
            }
        }
        free(emb);
        free(nw);
    }
    watch_free(&w);
    unload(&l);
}

/* An observer changes no logit; a failing one stops the evaluation with its
 * code and message; inputs are observed before ggml's rounding. */
static void test_observer_effects(void **state)
{
    loaded l = { 0 };
    watch w, wg;
    int rc;
    (void)state;

    load(&l, "fixtures/gguf/stories260K-f16.gguf");
    int64_t V = qf_model_get_config(l.m)->n_vocab, dim = qf_model_get_config(l.m)->dim;
    float *plain = run(&l, QF_NUMERICS_GGML, 0, NULL, &rc);
    memset(&w, 0, sizeof w);
    w.fail_at = -1;
    float *watched = run(&l, QF_NUMERICS_GGML, 0, &w, &rc);
    assert_int_equal(rc, 0);
    assert_memory_equal(plain, watched, (size_t)(N_TOK * V) * sizeof(float));
    free(plain);
    free(watched);

    /* F16 weights: ggml numerics round each product's input to F16, but
     * the observer sees the F32 values, the same as under F32 numerics */
    memset(&wg, 0, sizeof wg);
    wg.fail_at = -1;
    free(run(&l, QF_NUMERICS_F32, 0, &wg, &rc));
    assert_memory_equal(w.q_in, wg.q_in, (size_t)(N_TOK * dim) * sizeof(float));
    {
        int rounded = 0;
        for (int64_t i = 0; i < N_TOK * dim; i++)
            rounded += w.q_in[i] != qf_f16_to_f32(qf_f32_to_f16(w.q_in[i]));
        assert_true(rounded > 0); /* so the comparison above could fail */
    }
    watch_free(&w);
    watch_free(&wg);

    /* call 7 is blk.1.attn_q: the error stops the evaluation */
    memset(&w, 0, sizeof w);
    w.fail_at = 7;
    free(run(&l, QF_NUMERICS_GGML, 0, &w, &rc));
    assert_int_equal(rc, QF_EMISMATCH);
    assert_int_equal(w.calls, 8);
    watch_free(&w);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums),
        cmocka_unit_test(test_float_order),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_write_dat),
        cmocka_unit_test(test_write_gguf),
        cmocka_unit_test(test_observer_products),
        cmocka_unit_test(test_observer_effects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
