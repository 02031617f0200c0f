/*
 * tests/test_model.c - the reference forward pass, its products and the
 * perplexity / KL-divergence statistics.
 *
 * The PyTorch reference is fixtures/verify/ (stories260K: 128 tokens, their
 * float32 logits); models are fixtures/stories260K (HF folder) and
 * fixtures/gguf/stories260K-{f16,Q4_K_M}.gguf. Fixtures are found under
 * $QF_ROOT (set by tests/run.sh), else ".".
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
#include <unistd.h>

#include "convert/source.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/types.h"
#include "verify/gemm.h"
#include "verify/metrics.h"
#include "verify/model.h"

#define N_TOK 128
#define N_VOCAB 512

static char root[1024], dir[64];
static int32_t ref_tokens[N_TOK];
static float *ref_logits; /* (N_TOK, N_VOCAB) */

static void fixture(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

static int read_fixtures(void)
{
    char path[1200], buf[4096];
    FILE *f;
    size_t n;
    char *p;
    int i;

    fixture(path, sizeof path, "fixtures/verify/stories260K-ref-tokens.json");
    if (!(f = fopen(path, "rb")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strchr(buf, '[');
    for (i = 0; i < N_TOK && p; i++) {
        ref_tokens[i] = (int32_t)strtol(p + 1, &p, 10);
        p = strchr(p, i + 1 < N_TOK ? ',' : ']');
    }
    if (i != N_TOK || !p)
        return -1;
    fixture(path, sizeof path, "fixtures/verify/stories260K-ref-logits.f32");
    if (!(f = fopen(path, "rb")) || !(ref_logits = malloc(N_TOK * N_VOCAB * sizeof(float))))
        return -1;
    n = fread(ref_logits, sizeof(float), N_TOK * N_VOCAB, f);
    fclose(f);
    return n == N_TOK * N_VOCAB ? 0 : -1;
}

static int setup(void **state)
{
    const char *r = getenv("QF_ROOT");
    (void)state;
    snprintf(root, sizeof root, "%s", r && *r ? r : ".");
    snprintf(dir, sizeof dir, "/tmp/qf_test_model.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    return read_fixtures();
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    free(ref_logits);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Load a fixture model and run the reference tokens through it (logits:
 * N_TOK x N_VOCAB, caller frees). */
static float *run_model(const char *rel, int threads, int64_t n_batch, int numerics)
{
    char path[1200];
    qf_err err = { 0 };
    qf_source *src = NULL;
    qf_model *m = NULL;
    qf_model_state *st = NULL;
    float *logits = malloc(N_TOK * N_VOCAB * sizeof(float));

    assert_non_null(logits);
    fixture(path, sizeof path, rel);
    if (qf_source_open(path, &src, &err) || qf_model_load(src, threads, &m, &err) ||
        qf_model_state_new(m, N_TOK, n_batch, threads, numerics, &st, &err) ||
        qf_model_eval(m, st, ref_tokens, N_TOK, 0, logits, &err))
        fail_msg("%s: %s", rel, err.msg);
    assert_int_equal(qf_model_state_pos(st), N_TOK);
    qf_model_state_free(st);
    qf_model_free(m);
    qf_source_close(src);
    return logits;
}

/* max |a - ref| / max |ref| over all logits */
static double rel_err(const float *a)
{
    double e = 0, mx = 0;
    int i;
    for (i = 0; i < N_TOK * N_VOCAB; i++) {
        if (fabs((double)a[i] - (double)ref_logits[i]) > e)
            e = fabs((double)a[i] - (double)ref_logits[i]);
        if (fabs((double)ref_logits[i]) > mx)
            mx = fabs((double)ref_logits[i]);
    }
    return e / mx;
}

/* =====================================================================
 * Agreement with PyTorch
 * ===================================================================== */

/* The HF folder, read as its F32 conversion: within 1e-4 of PyTorch's
 * float32 logits (relative to the largest logit; we measure ~1e-6, the
 * difference of float summation orders). */
static void test_pytorch_hf_folder(void **state)
{
    float *l = run_model("fixtures/stories260K", 2, 0, QF_NUMERICS_F32);
    double e = rel_err(l);
    (void)state;
    if (e > 1e-4)
        fail_msg("HF folder: max rel logit error %.3g > 1e-4", e);
    free(l);
}

/* The F16 GGUF: its weights are the F32 ones rounded to half (relative
 * error up to 2^-11 each), which moves the logits by ~7e-4 of the largest;
 * 3e-3 leaves room and still catches any real fault (a wrong RoPE pairing or
 * a missing norm gives errors of order 1). */
static void test_pytorch_f16_gguf(void **state)
{
    float *l = run_model("fixtures/gguf/stories260K-f16.gguf", 2, 0, QF_NUMERICS_F32);
    double e = rel_err(l);
    (void)state;
    if (e > 3e-3)
        fail_msg("f16 GGUF: max rel logit error %.3g > 3e-3", e);
    free(l);
}

/* =====================================================================
 * Reproducibility: thread count, batch size and SIMD path change no bit
 * ===================================================================== */

static void test_deterministic(void **state)
{
    float *a = run_model("fixtures/stories260K", 1, 0, QF_NUMERICS_F32);
    float *b = run_model("fixtures/stories260K", 3, 0, QF_NUMERICS_F32);
    float *c = run_model("fixtures/stories260K", 2, 1, QF_NUMERICS_F32);  /* token by token */
    float *d = run_model("fixtures/stories260K", 2, 13, QF_NUMERICS_F32); /* ragged batches */
    float *e;
    int prev;
    (void)state;
    assert_memory_equal(a, b, N_TOK * N_VOCAB * sizeof(float));
    assert_memory_equal(a, c, N_TOK * N_VOCAB * sizeof(float));
    assert_memory_equal(a, d, N_TOK * N_VOCAB * sizeof(float));
    prev = qf_gemm_isa();
    qf_gemm_set_isa(QF_GEMM_ISA_GENERIC);
    e = run_model("fixtures/stories260K", 2, 0, QF_NUMERICS_F32);
    qf_gemm_set_isa(prev);
    assert_memory_equal(a, e, N_TOK * N_VOCAB * sizeof(float));
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

/* Every ISA path of qf_gemm gives the same bits, on ragged shapes. */
static void test_gemm_paths(void **state)
{
    const int64_t N = 77, K = 300, T = 19;
    qf_gemm_mat m;
    float *w = malloc(N * K * sizeof(float)), *x = malloc(T * K * sizeof(float));
    float *y0 = calloc(T * N, sizeof(float)), *y1 = calloc(T * N, sizeof(float)), *row;
    uint32_t r = 12345;
    int64_t i, o, k;
    int isa, prev = qf_gemm_isa();
    (void)state;

    assert_non_null(w);
    assert_non_null(x);
    for (i = 0; i < N * K; i++) {
        r = r * 1664525u + 1013904223u;
        w[i] = (float)(int32_t)r * 0x1p-31f;
    }
    for (i = 0; i < T * K; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(int32_t)r * 0x1p-31f;
    }
    assert_int_equal(qf_gemm_mat_alloc(&m, N, K, NULL), 0);
    qf_gemm_mat_set_rows(&m, 0, N, w);
    row = malloc(K * sizeof(float));
    qf_gemm_mat_get_row(&m, 40, row);
    assert_memory_equal(row, w + 40 * K, K * sizeof(float));
    /* the contract, written out */
    for (i = 0; i < T; i++)
        for (o = 0; o < N; o++) {
            float s = 0.0f;
            for (k = 0; k < K; k++)
                s = s + x[i * K + k] * w[o * K + k];
            y0[i * N + o] = s;
        }
    for (isa = QF_GEMM_ISA_GENERIC; isa <= QF_GEMM_ISA_AVX512; isa++) {
        if (qf_gemm_set_isa(isa) != isa)
            continue; /* this CPU lacks it */
        memset(y1, 0, T * N * sizeof(float));
        assert_int_equal(qf_gemm(&m, x, K, T, y1, N, 3, NULL), 0);
        if (memcmp(y0, y1, T * N * sizeof(float)) != 0)
            fail_msg("qf_gemm path %s differs from the plain sums", qf_gemm_isa_name(isa));
        /* a small block: the first mr rows of x (packed) times w viewed as
         * a row-major K' x N' matrix (K' = 40 rows of lda N), every width */
        for (o = 1; o <= N; o += 7) {
            float xp[40 * QF_GEMM_MR], *v = y1;
            int mr = 1 + (int)(o % QF_GEMM_MR), rr;
            for (k = 0; k < 40; k++)
                for (rr = 0; rr < QF_GEMM_MR; rr++)
                    xp[k * QF_GEMM_MR + rr] = rr < mr ? x[rr * K + k] : 0.0f;
            qf_gemm_block(xp, mr, w, N, 40, o, v, N);
            for (rr = 0; rr < mr; rr++)
                for (i = 0; i < o; i++) {
                    float s = 0.0f;
                    for (k = 0; k < 40; k++)
                        s = s + x[rr * K + k] * w[k * N + i];
                    if (memcmp(&s, &v[rr * N + i], sizeof s) != 0)
                        fail_msg("qf_gemm_block path %s, width %d, row %d differs",
                                 qf_gemm_isa_name(isa), (int)o, rr);
                }
        }
    }
    qf_gemm_set_isa(prev);
    qf_gemm_mat_free(&m);
    qf_gemm_mat_free(NULL);
    free(w);
    free(x);
    free(y0);
    free(y1);
    free(row);
}

/* =====================================================================
 * Quantized model, ggml numerics, statistics
 * ===================================================================== */

/* Q4_K_M (Q5_0/Q8_0/F16 tensors on this 64-wide model) drifts from F32 but
 * stays close: mean KLD well under 0.5, top token mostly the same. */
static void test_quantized_kld(void **state)
{
    float *base = run_model("fixtures/stories260K", 2, 0, QF_NUMERICS_F32);
    float *q = run_model("fixtures/gguf/stories260K-Q4_K_M.gguf", 2, 0, QF_NUMERICS_GGML);
    qf_kld *k = NULL;
    qf_kld_stats s;
    int i;
    (void)state;

    assert_int_equal(qf_kld_new(N_TOK - 1, &k, NULL), 0);
    for (i = 0; i + 1 < N_TOK; i++)
        assert_int_equal(qf_kld_add(k, q + i * N_VOCAB, base + i * N_VOCAB, N_VOCAB,
                                    ref_tokens[i + 1], NULL), 0);
    assert_int_equal(qf_kld_add(k, q, base, N_VOCAB, 0, NULL), QF_ELIMIT);
    assert_int_equal(qf_kld_get_stats(k, 1, &s, NULL), 0);
    assert_int_equal(s.count, N_TOK - 1);
    assert_true(s.kld_mean > 1e-4 && s.kld_mean < 0.5);
    assert_true(s.kld_min <= s.kld_median && s.kld_median <= s.kld_p99 && s.kld_p99 <= s.kld_max);
    assert_true(s.same_top > 0.6 && s.same_top <= 1.0);
    assert_true(s.rms_dp > 0 && s.rms_dp < 0.2);
    qf_kld_free(k);
    free(base);
    free(q);
}

/* An F32 model under ggml numerics differs from pure F32 only by the F16
 * KV cache (keys, values, queries and softmax weights rounded at 2^-11
 * relative): we measure 1.7e-3 of the largest logit from PyTorch's; 5e-3
 * bounds it, and it must not be 0 (the rounding must happen). */
static void test_ggml_numerics(void **state)
{
    float *a = run_model("fixtures/stories260K", 2, 0, QF_NUMERICS_GGML);
    double e = rel_err(a);
    (void)state;
    if (!(e > 0 && e < 5e-3))
        fail_msg("ggml numerics: max rel logit error %.3g, expected in (0, 5e-3)", e);
    free(a);
}

static void test_ppl_stats(void **state)
{
    float z[4] = { 0, 0, 0, 0 }, y[4] = { 3, 1, 0, -2 };
    qf_ppl p = { 0, 0, 0 };
    qf_kld *k = NULL;
    qf_kld_stats s;
    int i;
    (void)state;

    /* uniform over 4: nll = ln 4, PPL = 4 */
    for (i = 0; i < 20; i++)
        assert_true(fabs(qf_ppl_add(&p, z, 4, i % 4) - log(4.0)) < 1e-12);
    assert_true(fabs(qf_ppl_value(&p) - 4.0) < 1e-9);
    assert_true(qf_ppl_uncertainty(&p) < 1e-6);

    /* a model against itself: no divergence, same top token */
    assert_int_equal(qf_kld_new(20, &k, NULL), 0);
    for (i = 0; i < 20; i++)
        assert_int_equal(qf_kld_add(k, y, y, 4, i % 4, NULL), 0);
    assert_int_equal(qf_kld_add(k, y, y, 4, 4, NULL), QF_EINVAL);
    assert_int_equal(qf_kld_get_stats(k, 1, &s, NULL), 0);
    assert_true(fabs(s.kld_mean) < 1e-7 && fabs(s.kld_max) < 1e-6);
    assert_true(s.same_top == 1.0 && s.rms_dp < 1e-6 && fabs(s.dp_mean) < 1e-6);
    assert_true(fabs(s.ppl_q - s.ppl_base) < 1e-6 && fabs(s.ln_ratio) < 1e-7);
    qf_kld_free(k);

    /* KL(P || Q) by hand for one position; P's top token is 1, Q's is 0 */
    y[0] = 1;
    y[1] = 3;
    assert_int_equal(qf_kld_new(1, &k, NULL), 0);
    assert_int_equal(qf_kld_add(k, z, y, 4, 0, NULL), 0);
    assert_int_equal(qf_kld_get_stats(k, 1, &s, NULL), 0);
    {
        double lse = log(exp(1.0) + exp(3.0) + exp(0.0) + exp(-2.0)), kl = 0;
        for (i = 0; i < 4; i++)
            kl += exp((double)y[i] - lse) * (((double)y[i] - lse) - log(0.25));
        assert_true(fabs(s.kld_mean - kl) < 1e-5);
        assert_true(fabs(s.dp_mean - (0.25 - exp(1.0 - lse))) < 1e-6);
        assert_true(s.same_top == 0.0);
    }
    qf_kld_free(k);
    qf_kld_free(NULL);
}

/* =====================================================================
 * Errors
 * ===================================================================== */

/* A small GGUF with the given architecture and F32 tensors (zeros). */
static void write_gguf(const char *path, const char *arch, const char *const *names,
                       const uint64_t (*shapes)[2], int n)
{
    qf_gguf_writer *w = NULL;
    qf_err err = { 0 };
    char key[64];
    int i;

    assert_int_equal(qf_gguf_writer_new(&w, &err), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "general.architecture", arch, &err), 0);
#define U32(k, v)                                                                                 \
    snprintf(key, sizeof key, "%s." k, arch);                                                     \
    assert_int_equal(qf_gguf_writer_set_u32(w, key, v, &err), 0);
    U32("block_count", 1)
    U32("embedding_length", 8)
    U32("feed_forward_length", 16)
    U32("attention.head_count", 2)
#undef U32
    for (i = 0; i < n; i++)
        assert_int_equal(qf_gguf_writer_add_tensor(w, names[i], QF_GGML_F32,
                                                   shapes[i][1] > 1 ? 2 : 1, shapes[i], &err),
                         0);
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, &err), 0);
    for (i = 0; i < n; i++) {
        uint64_t bytes = shapes[i][0] * shapes[i][1] * 4;
        void *z = calloc(1, bytes);
        assert_int_equal(qf_gguf_writer_write(w, z, bytes, &err), 0);
        free(z);
    }
    if (qf_gguf_writer_finish(w, &err) != 0)
        fail_msg("%s", err.msg);
    qf_gguf_writer_free(w);
}

static int load_path(const char *path, qf_err *err)
{
    qf_source *src = NULL;
    qf_model *m = NULL;
    int rc = qf_source_open(path, &src, err);
    if (rc == 0)
        rc = qf_model_load(src, 2, &m, err);
    qf_model_free(m);
    qf_source_close(src);
    return rc;
}

static void test_errors(void **state)
{
    static const char *const names[] = { "token_embd.weight", "blk.0.attn_norm.weight" };
    static const uint64_t shapes[][2] = { { 8, 4 }, { 8, 1 } };
    char path[128];
    qf_err err = { 0 };
    (void)state;

    snprintf(path, sizeof path, "%s/gpt2.gguf", dir);
    write_gguf(path, "gpt2", names, shapes, 2);
    assert_int_equal(load_path(path, &err), QF_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "architecture \"gpt2\" is not supported"));

    /* tied (no output.weight), then output_norm.weight is missing */
    qf_err_clear(&err);
    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    write_gguf(path, "llama", names, shapes, 2);
    assert_int_equal(load_path(path, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "\"output_norm.weight\" is missing"));

    qf_err_clear(&err);
    snprintf(path, sizeof path, "%s/shape.gguf", dir);
    {
        static const char *const n3[] = { "token_embd.weight", "output_norm.weight",
                                          "blk.0.attn_norm.weight" };
        static const uint64_t s3[][2] = { { 8, 4 }, { 8, 1 }, { 7, 1 } };
        write_gguf(path, "llama", n3, s3, 3);
    }
    assert_int_equal(load_path(path, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "\"blk.0.attn_norm.weight\" is 7 x 1, expected 8 x 1"));
}

static void test_eval_errors(void **state)
{
    char path[1200];
    qf_err err = { 0 };
    qf_source *src = NULL;
    qf_model *m = NULL;
    qf_model_state *st = NULL;
    float logits[4 * N_VOCAB];
    int32_t bad[2] = { 1, N_VOCAB };
    const qf_model_config *c;
    (void)state;

    fixture(path, sizeof path, "fixtures/stories260K");
    assert_int_equal(qf_source_open(path, &src, &err), 0);
    assert_int_equal(qf_model_load(src, 1, &m, &err), 0);
    c = qf_model_get_config(m);
    assert_string_equal(c->arch, "llama");
    assert_int_equal(c->n_layer, 5);
    assert_int_equal(c->dim, 64);
    assert_int_equal(c->n_head, 8);
    assert_int_equal(c->n_head_kv, 4);
    assert_int_equal(c->n_ff, 172);
    assert_int_equal(c->n_vocab, N_VOCAB);
    assert_int_equal(c->rope_mode, QF_ROPE_NORM);
    assert_true(c->tied_output);
    assert_int_equal(qf_model_state_new(m, 4, 0, 1, 7, &st, &err), QF_EINVAL);
    assert_int_equal(qf_model_state_new(m, 4, 0, 1, QF_NUMERICS_F32, &st, &err), 0);
    assert_int_equal(qf_model_eval(m, st, bad, 2, 0, logits, &err), QF_EINVAL);
    assert_int_equal(qf_model_eval(m, st, ref_tokens, 3, 3, NULL, &err), 0);
    qf_err_clear(&err);
    assert_int_equal(qf_model_eval(m, st, ref_tokens, 2, 0, logits, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "pass the context"));
    qf_model_state_reset(st);
    assert_int_equal(qf_model_state_pos(st), 0);
    assert_int_equal(qf_model_eval(m, st, ref_tokens, 4, 2, logits, &err), 0);
    /* rows 2, 3 of the reference, to F32 accuracy */
    assert_true(fabsf(logits[N_VOCAB + 7] - ref_logits[3 * N_VOCAB + 7]) < 1e-3f);
    qf_model_state_free(st);
    qf_model_state_free(NULL);
    qf_model_free(m);
    qf_model_free(NULL);
    qf_source_close(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pytorch_hf_folder),
        cmocka_unit_test(test_pytorch_f16_gguf),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_gemm_paths),
        cmocka_unit_test(test_quantized_kld),
        cmocka_unit_test(test_ggml_numerics),
        cmocka_unit_test(test_ppl_stats),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_eval_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
