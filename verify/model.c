/*
 * verify/model.c - the LLaMA-family forward pass (see model.h).
 *
 * Read it top to bottom: configuration, weights, run state, then the
 * forward pass itself (one layer is rmsnorm -> qkv -> rope -> attention ->
 * output -> rmsnorm -> gate/up -> swiglu -> down, each on a batch of
 * tokens so the products are matrix-matrix).
 */
#include "verify/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/parallel.h"
#include "formats/types.h"
#include "verify/gemm.h"

/* =====================================================================
 * Weights. Shapes are (rows, row length) of the matrix as the product uses
 * it: out x in. q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim.
 * ===================================================================== */

/* A matrix packed for qf_gemm, and the ggml type it was stored in (which
 * decides how ggml would have rounded its input: see "ggml numerics"). */
typedef struct {
    qf_gemm_mat w;
    int type;
    char name[64]; /* the tensor's name, for observers */
} matrix;

typedef struct {
    float *attn_norm;    /* (dim) */
    matrix wq;           /* (q_dim, dim) attn_q */
    matrix wk;           /* (kv_dim, dim) attn_k */
    matrix wv;           /* (kv_dim, dim) attn_v */
    float *bqkv;         /* (q_dim + 2 kv_dim) q|k|v biases (qwen2), or NULL */
    float *q_norm;       /* (head_dim) per-head RMSNorm weight (qwen3), or NULL */
    float *k_norm;       /* (head_dim) */
    matrix wo;           /* (dim, q_dim) attn_output */
    float *ffn_norm;     /* (dim) */
    matrix w1;           /* (n_ff, dim) ffn_gate */
    matrix w3;           /* (n_ff, dim) ffn_up */
    matrix w2;           /* (dim, n_ff) ffn_down */
} layer_weights;

struct qf_model {
    qf_model_config cfg;
    float *token_embd;   /* (n_vocab, dim) row-major; NULL when tied (read from output) */
    layer_weights *layers; /* (n_layer) */
    float *output_norm;  /* (dim) */
    matrix output;       /* (n_vocab, dim): output.weight, or token_embd when tied */
    float *inv_freq;     /* (n_rot / 2) RoPE frequencies, scaling and rope_freqs applied */
    uint64_t bytes;
};

/* =====================================================================
 * Configuration
 * ===================================================================== */

static int get_u64(const qf_source *src, const char *arch, const char *suffix, int required,
                   int64_t dflt, int64_t *out, qf_err *err)
{
    char key[128];
    uint64_t v;
    int rc;

    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    rc = qf_source_get_uint(src, key, &v, err);
    if (rc == QF_ENOTFOUND) {
        if (required)
            return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\" is missing", qf_source_path(src),
                              key);
        *out = dflt;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v > (uint64_t)1 << 40)
        return qf_err_set(err, QF_ELIMIT, "%s: key \"%s\" is %llu, too large",
                          qf_source_path(src), key, (unsigned long long)v);
    *out = (int64_t)v;
    return 0;
}

static int get_f(const qf_source *src, const char *arch, const char *suffix, double dflt,
                 double *out, qf_err *err)
{
    char key[128];
    int rc;

    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    rc = qf_source_get_float(src, key, out, err);
    if (rc == QF_ENOTFOUND) {
        *out = dflt;
        return 0;
    }
    if (rc == 0 && !isfinite(*out))
        return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\" is not finite", qf_source_path(src),
                          key);
    return rc;
}

static int read_config(const qf_source *src, qf_model_config *c, qf_err *err)
{
    const char *path = qf_source_path(src), *arch, *s;
    uint64_t len, slen;
    double base, eps, factor;
    char key[128];
    int64_t value_len, ti;
    int rc;

    memset(c, 0, sizeof *c);
    rc = qf_source_get_str(src, "general.architecture", &arch, &len, err);
    if (rc == QF_ENOTFOUND)
        return qf_err_set(err, QF_EFORMAT, "%s: key \"general.architecture\" is missing", path);
    if (rc != 0)
        return rc;
    if ((len == 5 && memcmp(arch, "llama", 5) == 0) || (len == 5 && memcmp(arch, "qwen2", 5) == 0) ||
        (len == 5 && memcmp(arch, "qwen3", 5) == 0)) {
        memcpy(c->arch, arch, len);
        c->arch[len] = '\0';
    } else {
        return qf_err_set(err, QF_EUNSUPPORTED,
                          "%s: architecture \"%.*s\" is not supported (llama, qwen2, qwen3)", path,
                          (int)(len < 64 ? len : 64), arch);
    }
    c->rope_mode = strcmp(c->arch, "llama") == 0 ? QF_ROPE_NORM : QF_ROPE_NEOX;

    if ((rc = get_u64(src, c->arch, "block_count", 1, 0, &c->n_layer, err)) ||
        (rc = get_u64(src, c->arch, "embedding_length", 1, 0, &c->dim, err)) ||
        (rc = get_u64(src, c->arch, "feed_forward_length", 1, 0, &c->n_ff, err)) ||
        (rc = get_u64(src, c->arch, "attention.head_count", 1, 0, &c->n_head, err)))
        return rc;
    if (c->n_layer < 1 || c->dim < 1 || c->n_ff < 1 || c->n_head < 1)
        return qf_err_set(err, QF_EFORMAT, "%s: block_count, embedding_length, "
                          "feed_forward_length and head_count must be positive", path);
    if ((rc = get_u64(src, c->arch, "attention.head_count_kv", 0, c->n_head, &c->n_head_kv, err)) ||
        (rc = get_u64(src, c->arch, "attention.key_length", 0, c->dim / c->n_head, &c->head_dim,
                      err)) ||
        (rc = get_u64(src, c->arch, "attention.value_length", 0, c->head_dim, &value_len, err)) ||
        (rc = get_u64(src, c->arch, "context_length", 0, 0, &c->n_ctx_train, err)))
        return rc;
    if (c->n_head_kv < 1 || c->n_head % c->n_head_kv != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: head_count %lld is not a multiple of "
                          "head_count_kv %lld", path, (long long)c->n_head,
                          (long long)c->n_head_kv);
    if (c->head_dim < 2 || c->head_dim % 2 != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: head dimension %lld is not even", path,
                          (long long)c->head_dim);
    if (value_len != c->head_dim)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: value_length %lld differs from "
                          "key_length %lld", path, (long long)value_len, (long long)c->head_dim);
    if ((rc = get_u64(src, c->arch, "rope.dimension_count", 0, c->head_dim, &c->n_rot, err)))
        return rc;
    if (c->n_rot < 2 || c->n_rot > c->head_dim || c->n_rot % 2 != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: rope.dimension_count %lld does not fit head "
                          "dimension %lld", path, (long long)c->n_rot, (long long)c->head_dim);
    if ((rc = get_f(src, c->arch, "rope.freq_base", 10000.0, &base, err)) ||
        (rc = get_f(src, c->arch, "attention.layer_norm_rms_epsilon", 1e-5, &eps, err)))
        return rc;
    if (!(base > 0) || !(eps >= 0))
        return qf_err_set(err, QF_EFORMAT, "%s: rope.freq_base or rms epsilon out of range", path);
    c->rope_base = (float)base;
    c->norm_eps = (float)eps;

    /* Rope scaling: "linear" (and the older rope.scale_linear) divide
     * positions; "none" or no key: none. Others change attention too. */
    c->rope_freq_scale = 1.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
    rc = qf_source_get_str(src, key, &s, &slen, err);
    if (rc != 0 && rc != QF_ENOTFOUND)
        return rc;
    if (rc == 0 && !(slen == 4 && memcmp(s, "none", 4) == 0)) {
        if (!(slen == 6 && memcmp(s, "linear", 6) == 0))
            return qf_err_set(err, QF_EUNSUPPORTED, "%s: rope scaling \"%.*s\" is not supported "
                              "(linear, llama3 rope_freqs)", path, (int)(slen < 32 ? slen : 32), s);
        if ((rc = get_f(src, c->arch, "rope.scaling.factor", 1.0, &factor, err)))
            return rc;
        if (!(factor > 0))
            return qf_err_set(err, QF_EFORMAT, "%s: rope.scaling.factor must be positive", path);
        c->rope_freq_scale = (float)(1.0 / factor);
    } else if (rc == QF_ENOTFOUND) {
        if ((rc = get_f(src, c->arch, "rope.scale_linear", 1.0, &factor, err)))
            return rc;
        if (!(factor > 0))
            return qf_err_set(err, QF_EFORMAT, "%s: rope.scale_linear must be positive", path);
        c->rope_freq_scale = (float)(1.0 / factor);
    }

    ti = qf_source_find_tensor(src, "token_embd.weight");
    if (ti < 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"token_embd.weight\" is missing", path);
    c->n_vocab = (int64_t)qf_source_tensor_at(src, ti)->ne[1];
    c->tied_output = qf_source_find_tensor(src, "output.weight") < 0;
    c->has_rope_freqs = qf_source_find_tensor(src, "rope_freqs.weight") >= 0;
    c->has_qkv_bias = qf_source_find_tensor(src, "blk.0.attn_q.bias") >= 0;
    c->has_qk_norm = qf_source_find_tensor(src, "blk.0.attn_q_norm.weight") >= 0;
    return 0;
}

/* =====================================================================
 * Loading: every tensor is found, its shape checked against the config,
 * then read as F32 rows. Matrices are packed for qf_gemm panel by panel, in
 * parallel.
 * ===================================================================== */

typedef struct {
    const qf_source *src;
    int n_threads;
    float *tmp;        /* (n_threads, NR * max row length) */
    qf_err *errs;      /* (n_threads) */
    uint64_t bytes;
} loader;

typedef struct {
    loader *L;
    qf_gemm_mat *mat;
    int64_t tensor;
} pack_job;

static int pack_panels(void *ctx, int64_t begin, int64_t end, int worker)
{
    pack_job *j = ctx;
    int64_t K = j->mat->n_in, p;
    float *tmp = j->L->tmp + (int64_t)worker * QF_GEMM_NR * K;

    for (p = begin; p < end; p++) {
        int64_t row0 = p * QF_GEMM_NR, n = j->mat->n_out - row0 < QF_GEMM_NR ? j->mat->n_out - row0
                                                                             : QF_GEMM_NR;
        int rc = qf_source_rows_f32(j->L->src, j->tensor, (uint64_t)row0, (uint64_t)n, tmp,
                                    &j->L->errs[worker]);
        if (rc != 0)
            return rc;
        qf_gemm_mat_set_rows(j->mat, row0, n, tmp);
    }
    return 0;
}

/* Index of tensor `name` with exactly the shape (ne0, ne1) (ne1 = 1 for a
 * vector), or a negative code. */
static int64_t find_shaped(loader *L, const char *name, int64_t ne0, int64_t ne1, qf_err *err)
{
    int64_t i = qf_source_find_tensor(L->src, name);
    const qf_source_tensor *t;

    if (i < 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" is missing",
                          qf_source_path(L->src), name);
    t = qf_source_tensor_at(L->src, i);
    if ((int64_t)t->ne[0] != ne0 || (int64_t)t->n_rows != ne1)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" is %llu x %llu, expected %lld x %lld",
                          qf_source_path(L->src), name, (unsigned long long)t->ne[0],
                          (unsigned long long)t->n_rows, (long long)ne0, (long long)ne1);
    return i;
}

/* The first worker's error, else a message for rc. */
static int first_err(loader *L, int rc, qf_err *err)
{
    int w;
    for (w = 0; w < L->n_threads; w++)
        if (L->errs[w].code != 0) {
            if (err && !err->code)
                *err = L->errs[w];
            return L->errs[w].code;
        }
    return rc < 0 ? qf_err_set(err, rc, "%s: %s", qf_source_path(L->src), qf_err_name(rc)) : rc;
}

/* A vector (n floats) from tensor `name`; *out owned by the caller. */
static int load_vec(loader *L, const char *name, int64_t n, float **out, qf_err *err)
{
    int64_t i = find_shaped(L, name, n, 1, err);
    int rc;

    if (i < 0)
        return (int)i;
    if (!(*out = malloc((size_t)n * sizeof(float))))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if ((rc = qf_source_rows_f32(L->src, i, 0, 1, *out, err)) != 0)
        return rc;
    qf_source_release(L->src, i);
    L->bytes += (uint64_t)n * sizeof(float);
    return 0;
}

/* Matrix `name` of n_out rows of n_in. */
static int load_mat(loader *L, matrix *m, const char *name, int64_t n_out, int64_t n_in,
                    qf_err *err)
{
    pack_job j;
    int64_t i = find_shaped(L, name, n_in, n_out, err);
    int rc;

    if (i < 0)
        return (int)i;
    m->type = qf_source_tensor_at(L->src, i)->type;
    snprintf(m->name, sizeof m->name, "%s", name);
    if ((rc = qf_gemm_mat_alloc(&m->w, n_out, n_in, err)) != 0)
        return rc;
    j.L = L;
    j.mat = &m->w;
    j.tensor = i;
    rc = qf_parallel_for(L->n_threads, (n_out + QF_GEMM_NR - 1) / QF_GEMM_NR, 4, pack_panels, &j);
    if (rc != 0)
        return first_err(L, rc, err);
    qf_source_release(L->src, i);
    L->bytes += (uint64_t)n_out * (uint64_t)n_in * sizeof(float);
    return 0;
}

typedef struct {
    loader *L;
    int64_t tensor, n_in;
    float *dst;
} embd_job;

static int embd_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    embd_job *j = ctx;
    return qf_source_rows_f32(j->L->src, j->tensor, (uint64_t)begin, (uint64_t)(end - begin),
                              j->dst + begin * j->n_in, &j->L->errs[worker]);
}

void qf_model_free(qf_model *m)
{
    int64_t l;
    if (!m)
        return;
    if (m->layers) {
        for (l = 0; l < m->cfg.n_layer; l++) {
            layer_weights *w = &m->layers[l];
            free(w->attn_norm);
            qf_gemm_mat_free(&w->wq.w);
            qf_gemm_mat_free(&w->wk.w);
            qf_gemm_mat_free(&w->wv.w);
            free(w->bqkv);
            free(w->q_norm);
            free(w->k_norm);
            qf_gemm_mat_free(&w->wo.w);
            free(w->ffn_norm);
            qf_gemm_mat_free(&w->w1.w);
            qf_gemm_mat_free(&w->w3.w);
            qf_gemm_mat_free(&w->w2.w);
        }
        free(m->layers);
    }
    free(m->token_embd);
    free(m->output_norm);
    qf_gemm_mat_free(&m->output.w);
    free(m->inv_freq);
    free(m);
}

/* inv_freq[i] as PyTorch forms it: 1 / base^(2i / n_rot) in float, then
 * linear scaling and llama3's per-frequency factors (rope_freqs.weight). */
static int make_inv_freq(loader *L, qf_model *m, qf_err *err)
{
    const qf_model_config *c = &m->cfg;
    int64_t i, half = c->n_rot / 2;
    float *ff = NULL;
    int rc;

    if (!(m->inv_freq = malloc((size_t)half * sizeof(float))))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if (c->has_rope_freqs && (rc = load_vec(L, "rope_freqs.weight", half, &ff, err)) != 0) {
        free(ff);
        return rc;
    }
    for (i = 0; i < half; i++) {
        float f = 1.0f / powf(c->rope_base, (float)(2 * i) / (float)c->n_rot);
        f = f * c->rope_freq_scale;
        if (ff)
            f = f / ff[i];
        m->inv_freq[i] = f;
    }
    free(ff);
    return 0;
}

int qf_model_load(const qf_source *src, int n_threads, qf_model **out, qf_err *err)
{
    qf_model *m = calloc(1, sizeof *m);
    loader L;
    qf_model_config *c;
    int64_t l, q_dim, kv_dim, max_in;
    char n1[64], n2[64], n3[64];
    int rc = 0;

    *out = NULL;
    memset(&L, 0, sizeof L);
    if (!m)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    c = &m->cfg;
    if ((rc = read_config(src, c, err)) != 0)
        goto done;
    q_dim = c->n_head * c->head_dim;
    kv_dim = c->n_head_kv * c->head_dim;
    max_in = c->dim > c->n_ff ? c->dim : c->n_ff;
    if (q_dim > max_in)
        max_in = q_dim;
    L.src = src;
    L.n_threads = n_threads < 1 ? 1 : n_threads;
    L.tmp = malloc((size_t)L.n_threads * QF_GEMM_NR * (size_t)max_in * sizeof(float));
    L.errs = calloc((size_t)L.n_threads, sizeof *L.errs);
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!L.tmp || !L.errs || !m->layers) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }

    /* Token embedding: plain rows for the look-up, unless it doubles as
     * the output matrix, where the look-up reads the packed copy. */
    if (c->tied_output) {
        if ((rc = load_mat(&L, &m->output, "token_embd.weight", c->n_vocab, c->dim, err)) != 0)
            goto done;
    } else {
        embd_job rj;
        int64_t ti = find_shaped(&L, "token_embd.weight", c->dim, c->n_vocab, err);
        if (ti < 0) {
            rc = (int)ti;
            goto done;
        }
        if (!(m->token_embd = malloc((size_t)c->n_vocab * (size_t)c->dim * sizeof(float)))) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory (token_embd.weight)");
            goto done;
        }
        rj.L = &L;
        rj.tensor = ti;
        rj.n_in = c->dim;
        rj.dst = m->token_embd;
        if ((rc = qf_parallel_for(L.n_threads, c->n_vocab, 256, embd_rows, &rj)) != 0) {
            rc = first_err(&L, rc, err);
            goto done;
        }
        qf_source_release(src, ti);
        L.bytes += (uint64_t)c->n_vocab * (uint64_t)c->dim * sizeof(float);
        if ((rc = load_mat(&L, &m->output, "output.weight", c->n_vocab, c->dim, err)) != 0)
            goto done;
    }
    if ((rc = load_vec(&L, "output_norm.weight", c->dim, &m->output_norm, err)) != 0 ||
        (rc = make_inv_freq(&L, m, err)) != 0)
        goto done;

    for (l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];

#define NAME(buf, what) snprintf(buf, sizeof buf, "blk.%lld." what, (long long)l)
        NAME(n1, "attn_norm.weight");
        if ((rc = load_vec(&L, n1, c->dim, &w->attn_norm, err)) != 0)
            goto done;
        NAME(n1, "attn_q.weight");
        NAME(n2, "attn_k.weight");
        NAME(n3, "attn_v.weight");
        if ((rc = load_mat(&L, &w->wq, n1, q_dim, c->dim, err)) != 0 ||
            (rc = load_mat(&L, &w->wk, n2, kv_dim, c->dim, err)) != 0 ||
            (rc = load_mat(&L, &w->wv, n3, kv_dim, c->dim, err)) != 0)
            goto done;
        if (c->has_qkv_bias) {
            float *bq = NULL, *bk = NULL, *bv = NULL;
            NAME(n1, "attn_q.bias");
            NAME(n2, "attn_k.bias");
            NAME(n3, "attn_v.bias");
            if ((rc = load_vec(&L, n1, q_dim, &bq, err)) == 0 &&
                (rc = load_vec(&L, n2, kv_dim, &bk, err)) == 0 &&
                (rc = load_vec(&L, n3, kv_dim, &bv, err)) == 0) {
                if (!(w->bqkv = malloc((size_t)(q_dim + 2 * kv_dim) * sizeof(float)))) {
                    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                } else {
                    memcpy(w->bqkv, bq, (size_t)q_dim * sizeof(float));
                    memcpy(w->bqkv + q_dim, bk, (size_t)kv_dim * sizeof(float));
                    memcpy(w->bqkv + q_dim + kv_dim, bv, (size_t)kv_dim * sizeof(float));
                }
            }
            free(bq);
            free(bk);
            free(bv);
            if (rc != 0)
                goto done;
        }
        if (c->has_qk_norm) {
            NAME(n1, "attn_q_norm.weight");
            NAME(n2, "attn_k_norm.weight");
            if ((rc = load_vec(&L, n1, c->head_dim, &w->q_norm, err)) != 0 ||
                (rc = load_vec(&L, n2, c->head_dim, &w->k_norm, err)) != 0)
                goto done;
        }
        NAME(n1, "attn_output.weight");
        if ((rc = load_mat(&L, &w->wo, n1, c->dim, q_dim, err)) != 0)
            goto done;
        NAME(n1, "ffn_norm.weight");
        if ((rc = load_vec(&L, n1, c->dim, &w->ffn_norm, err)) != 0)
            goto done;
        NAME(n1, "ffn_gate.weight");
        NAME(n2, "ffn_up.weight");
        NAME(n3, "ffn_down.weight");
        if ((rc = load_mat(&L, &w->w1, n1, c->n_ff, c->dim, err)) != 0 ||
            (rc = load_mat(&L, &w->w3, n2, c->n_ff, c->dim, err)) != 0 ||
            (rc = load_mat(&L, &w->w2, n3, c->dim, c->n_ff, err)) != 0)
            goto done;
#undef NAME
    }
    m->bytes = L.bytes;

done:
    free(L.tmp);
    free(L.errs);
    if (rc != 0) {
        qf_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const qf_model_config *qf_model_get_config(const qf_model *m)
{
    return &m->cfg;
}

uint64_t qf_model_weight_bytes(const qf_model *m)
{
    return m->bytes;
}

/* =====================================================================
 * ggml numerics. llama.cpp's CPU backend does not multiply in F32
 * throughout: before a product with a quantized weight it quantizes the
 * input rows to the weight type's "vec_dot_type", and attention runs on an
 * F16 KV cache. With QF_NUMERICS_GGML the forward pass rounds the same
 * values the same way (then multiplies in F32, which differs from ggml's
 * integer dot products only by float rounding):
 *
 *   weight type                        input rows become
 *   F32                                F32 (unchanged)
 *   F16 / BF16                         F16 / BF16 (round to nearest even)
 *   Q4_0 Q5_0 Q8_0 IQ4_NL              Q8_0: blocks of 32, d = amax/127 kept
 *   Q4_1 Q5_1                          Q8_1   as F16, q = rne(x * 127/amax)
 *   Q2_K..Q6_K IQ4_XS (and other IQ)   Q8_K: blocks of 256, iscale = -127/max
 *                                      (max: the signed value of largest |x|),
 *                                      q = min(127, rne(iscale x)), d = 1/iscale
 *   keys and values in the cache       F16; the query (for q.k) and the
 *                                      softmax weights (for p.v) also F16
 * ===================================================================== */

enum { ROUND_NONE, ROUND_F16, ROUND_BF16, ROUND_Q8_0, ROUND_Q8_K };

static int input_rounding(int type)
{
    switch (type) {
    case QF_GGML_F32: return ROUND_NONE;
    case QF_GGML_F16: return ROUND_F16;
    case QF_GGML_BF16: return ROUND_BF16;
    case QF_GGML_Q4_0: case QF_GGML_Q4_1: case QF_GGML_Q5_0: case QF_GGML_Q5_1:
    case QF_GGML_Q8_0: case QF_GGML_Q8_1: case QF_GGML_IQ4_NL:
        return ROUND_Q8_0;
    default: return ROUND_Q8_K;
    }
}

static float round_f16(float x)
{
    return qf_f16_to_f32(qf_f32_to_f16(x));
}

/* ggml's nearest_int: round to nearest, ties to even (|x| < 2^22). */
static int rne_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* One row of n values, in place. Q8 rows whose length is not a multiple of
 * the block are left as they are (ggml refuses such products). */
static void round_row(float *x, int64_t n, int mode)
{
    int64_t i, b, j;

    switch (mode) {
    case ROUND_F16:
        for (i = 0; i < n; i++)
            x[i] = round_f16(x[i]);
        break;
    case ROUND_BF16:
        for (i = 0; i < n; i++)
            x[i] = qf_bf16_to_f32(qf_f32_to_bf16(x[i]));
        break;
    case ROUND_Q8_0:
        if (n % 32 != 0)
            break;
        for (b = 0; b < n; b += 32) {
            float amax = 0.0f, d, id;
            for (j = 0; j < 32; j++)
                amax = fabsf(x[b + j]) > amax ? fabsf(x[b + j]) : amax;
            d = round_f16(amax / 127.0f);
            id = amax != 0.0f ? 127.0f / amax : 0.0f;
            for (j = 0; j < 32; j++)
                x[b + j] = (float)rne_int(x[b + j] * id) * d;
        }
        break;
    case ROUND_Q8_K:
        if (n % 256 != 0)
            break;
        for (b = 0; b < n; b += 256) {
            float amax = 0.0f, max = 0.0f, iscale, d;
            for (j = 0; j < 256; j++)
                if (fabsf(x[b + j]) > amax) {
                    amax = fabsf(x[b + j]);
                    max = x[b + j];
                }
            if (amax == 0.0f) {
                memset(x + b, 0, 256 * sizeof(float));
                continue;
            }
            iscale = -127.0f / max;
            d = 1.0f / iscale;
            for (j = 0; j < 256; j++) {
                int q = rne_int(iscale * x[b + j]);
                x[b + j] = (float)(q < 127 ? q : 127) * d;
            }
        }
        break;
    default:
        break;
    }
}

/* =====================================================================
 * Run state
 * ===================================================================== */

struct qf_model_state {
    const qf_model *m;
    int64_t n_ctx, n_batch, pos, max_in;
    int n_threads, numerics;
    float *k_cache;  /* (n_layer, n_head_kv, head_dim, n_ctx): keys, position fastest */
    float *v_cache;  /* (n_layer, n_ctx, kv_dim): values */
    float *x;        /* (n_batch, dim) residual stream */
    float *xn;       /* (n_batch, dim) normed input of a product */
    float *xq;       /* (n_batch, max_in) a product's input as ggml rounds it */
    float *qkv;      /* (n_batch, q_dim + 2 kv_dim) */
    float *att;      /* (n_batch, q_dim) attention output, heads side by side */
    float *y;        /* (n_batch, dim) product output before the residual add */
    float *ffn;      /* (n_batch, 2 n_ff) gate | up */
    float *hb;       /* (n_batch, n_ff) silu(gate) * up */
    float *scores;   /* (n_threads, scores_per_worker): a token block's scores S
                      * (MR, n_ctx), its queries packed (head_dim, MR) and its
                      * weights packed (n_ctx, MR) */
    int64_t scores_per_worker;
    float *rope;     /* (n_batch, n_rot) cos | sin of each token's angles */
    qf_model_observer observer; /* NULL, or called before each product */
    void *observer_user;
};

void qf_model_state_free(qf_model_state *s)
{
    if (!s)
        return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xn);
    free(s->xq);
    free(s->qkv);
    free(s->att);
    free(s->y);
    free(s->ffn);
    free(s->hb);
    free(s->scores);
    free(s->rope);
    free(s);
}

static float *alloc_floats(int64_t a, int64_t b, int *fail)
{
    float *p;
    if (a <= 0 || b <= 0 || (uint64_t)a > SIZE_MAX / sizeof(float) / (uint64_t)b) {
        *fail = 1;
        return NULL;
    }
    p = calloc((size_t)a * (size_t)b, sizeof(float));
    if (!p)
        *fail = 1;
    return p;
}

int qf_model_state_new(const qf_model *m, int64_t n_ctx, int64_t n_batch, int n_threads,
                       int numerics, qf_model_state **out, qf_err *err)
{
    const qf_model_config *c = &m->cfg;
    qf_model_state *s;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    int fail = 0;

    *out = NULL;
    if (n_ctx < 1 || n_ctx > ((int64_t)1 << 30))
        return qf_err_set(err, QF_EINVAL, "context of %lld tokens", (long long)n_ctx);
    if (numerics != QF_NUMERICS_F32 && numerics != QF_NUMERICS_GGML)
        return qf_err_set(err, QF_EINVAL, "numerics %d", numerics);
    if (n_batch < 1 || n_batch > n_ctx)
        n_batch = n_ctx;
    if (!(s = calloc(1, sizeof *s)))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->n_threads = n_threads < 1 ? 1 : n_threads;
    s->numerics = numerics;
    s->max_in = c->dim > c->n_ff ? c->dim : c->n_ff;
    if (q_dim > s->max_in)
        s->max_in = q_dim;
    /* qf_gemm_block reads keys and values in whole groups of QF_GEMM_NR:
     * a group's slack after the last row keeps that inside the buffers */
    s->k_cache = alloc_floats(c->n_layer * kv_dim * n_ctx + QF_GEMM_NR, 1, &fail);
    s->v_cache = alloc_floats(c->n_layer * n_ctx * kv_dim + QF_GEMM_NR, 1, &fail);
    s->x = alloc_floats(n_batch, c->dim, &fail);
    s->xn = alloc_floats(n_batch, c->dim, &fail);
    if (numerics == QF_NUMERICS_GGML)
        s->xq = alloc_floats(n_batch, s->max_in, &fail);
    s->qkv = alloc_floats(n_batch, q_dim + 2 * kv_dim, &fail);
    s->att = alloc_floats(n_batch, q_dim, &fail);
    s->y = alloc_floats(n_batch, c->dim, &fail);
    s->ffn = alloc_floats(n_batch, 2 * c->n_ff, &fail);
    s->hb = alloc_floats(n_batch, c->n_ff, &fail);
    s->scores_per_worker = QF_GEMM_MR * (2 * n_ctx + c->head_dim);
    s->scores = alloc_floats(s->n_threads, s->scores_per_worker, &fail);
    s->rope = alloc_floats(n_batch, c->n_rot, &fail);
    if (fail) {
        qf_model_state_free(s);
        return qf_err_set(err, QF_ENOMEM, "out of memory (run state for %lld tokens)",
                          (long long)n_ctx);
    }
    *out = s;
    return 0;
}

void qf_model_state_set_observer(qf_model_state *s, qf_model_observer fn, void *user)
{
    s->observer = fn;
    s->observer_user = user;
}

void qf_model_state_reset(qf_model_state *s)
{
    s->pos = 0;
}

int64_t qf_model_state_pos(const qf_model_state *s)
{
    return s->pos;
}

/* =====================================================================
 * Forward pass
 * ===================================================================== */

/* out = x / sqrt(mean(x^2) + eps) * w, the sum of squares in double. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0.0;
    float scale;
    int64_t i;

    for (i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

/* Rotate one head in place by the token's angles (cs: n_rot/2 cos, then
 * n_rot/2 sin). NORM pairs (2i, 2i+1); NEOX pairs (i, i + n_rot/2). */
static void rope_head(float *v, const float *cs, int64_t n_rot, int mode)
{
    int64_t i, half = n_rot / 2;
    const float *sn = cs + half;

    for (i = 0; i < half; i++) {
        int64_t a = mode == QF_ROPE_NEOX ? i : 2 * i, b = mode == QF_ROPE_NEOX ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

typedef struct {
    float *x;
    int64_t ld, n_in;
    int mode;
} round_job;

static int round_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    round_job *j = ctx;
    int64_t t;
    (void)worker;
    for (t = begin; t < end; t++)
        round_row(j->x + t * j->ld, j->n_in, j->mode);
    return 0;
}

/* y (n rows, stride ldy) = x (n rows, stride ldx) times mx^T, with the
 * input rounded as ggml would round it when the state asks for that. */
static int product(qf_model_state *s, const matrix *mx, const float *x, int64_t ldx, int64_t n,
                   float *y, int64_t ldy, qf_err *err)
{
    int64_t K = mx->w.n_in, t;
    int mode = input_rounding(mx->type);

    if (s->observer && n > 0) {
        int rc;
        if (ldx != K) /* every product's input is contiguous today; keep the contract */
            return qf_err_set(err, QF_EINVAL, "%s: observer: input rows not contiguous", mx->name);
        if ((rc = s->observer(s->observer_user, mx->name, x, n, K, err)) != 0)
            return qf_err_set(err, rc < 0 ? rc : QF_EINVAL, "%s: observer stopped the evaluation (%s)",
                              mx->name, qf_err_name(rc));
    }
    if (s->numerics == QF_NUMERICS_GGML && mode != ROUND_NONE) {
        round_job j;
        for (t = 0; t < n; t++)
            memcpy(s->xq + t * K, x + t * ldx, (size_t)K * sizeof(float));
        j.x = s->xq;
        j.ld = K;
        j.n_in = K;
        j.mode = mode;
        qf_parallel_for(s->n_threads, n, 16, round_rows, &j);
        x = s->xq;
        ldx = K;
    }
    return qf_gemm(&mx->w, x, ldx, n, y, ldy, s->n_threads, err);
}

typedef struct {
    const qf_model *m;
    qf_model_state *s;
    int64_t layer, pos0, n_tok;
} attn_job;

/*
 * One item = one head over a block of up to MR tokens t0 .. t1 (the rows
 * of qf_gemm_block): scores S = q . K^T / sqrt(head_dim) over positions
 * 0 .. pos0 + t1, each token's row softmaxed over its own positions
 * 0 .. pos0 + t (the rest of the row set to 0), then S . V. Every sum runs
 * over head dimensions or positions in order, so the result is the one a
 * token alone would get: the extra terms of an earlier token's p . V are
 * exact zeros added at the end.
 */
static int attn_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    attn_job *j = ctx;
    const qf_model_config *c = &j->m->cfg;
    qf_model_state *s = j->s;
    int64_t hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    int64_t ld = q_dim + 2 * kv_dim, group = c->n_head / c->n_head_kv, it, d, p;
    int64_t lds = s->n_ctx; /* row stride of S */
    float *S = s->scores + (int64_t)worker * s->scores_per_worker;
    float *qp = S + QF_GEMM_MR * lds, *pp = qp + QF_GEMM_MR * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int ggml = s->numerics == QF_NUMERICS_GGML;

    for (it = begin; it < end; it++) {
        int64_t b = it / c->n_head, h = it % c->n_head, kvh = h / group;
        int64_t t0 = b * QF_GEMM_MR, t1 = t0 + QF_GEMM_MR < j->n_tok ? t0 + QF_GEMM_MR : j->n_tok;
        int64_t n_max = j->pos0 + t1; /* positions the last token sees */
        const float *kt = s->k_cache + (j->layer * kv_dim + kvh * hd) * s->n_ctx;
        const float *vc = s->v_cache + j->layer * s->n_ctx * kv_dim + kvh * hd;
        int mr = (int)(t1 - t0), r;

        /* queries, packed k-major (F16 under ggml numerics) */
        memset(qp, 0, (size_t)(QF_GEMM_MR * hd) * sizeof(float));
        for (r = 0; r < mr; r++) {
            const float *q = s->qkv + (t0 + r) * ld + h * hd;
            for (d = 0; d < hd; d++)
                qp[d * QF_GEMM_MR + r] = ggml ? round_f16(q[d]) : q[d];
        }
        qf_gemm_block(qp, mr, kt, s->n_ctx, hd, n_max, S, lds);

        /* each row's softmax over its own positions */
        memset(pp, 0, (size_t)(QF_GEMM_MR * n_max) * sizeof(float));
        for (r = 0; r < mr; r++) {
            float *sr = S + r * lds, mx = -INFINITY, inv;
            int64_t n_kv = j->pos0 + t0 + r + 1;
            double sum = 0.0;
            for (p = 0; p < n_kv; p++) {
                sr[p] = sr[p] * scale;
                if (sr[p] > mx)
                    mx = sr[p];
            }
            for (p = 0; p < n_kv; p++) {
                sr[p] = expf(sr[p] - mx);
                sum += (double)sr[p];
            }
            inv = (float)(1.0 / sum);
            for (p = 0; p < n_kv; p++)
                pp[p * QF_GEMM_MR + r] = ggml ? round_f16(sr[p] * inv) : sr[p] * inv;
        }
        qf_gemm_block(pp, mr, vc, kv_dim, n_max, hd, s->att + t0 * q_dim + h * hd, q_dim);
    }
    return 0;
}

/* Per-token work after the q, k, v products: biases, q/k norms, RoPE, and
 * the keys and values into the cache. */
typedef struct {
    const qf_model *m;
    qf_model_state *s;
    const layer_weights *w;
    int64_t layer, pos0;
} qkv_job;

static int qkv_tokens(void *ctx, int64_t begin, int64_t end, int worker)
{
    qkv_job *j = ctx;
    const qf_model_config *c = &j->m->cfg;
    qf_model_state *s = j->s;
    int64_t hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    int64_t ld = q_dim + 2 * kv_dim, t, h, d;
    int ggml = s->numerics == QF_NUMERICS_GGML;
    (void)worker;

    for (t = begin; t < end; t++) {
        float *q = s->qkv + t * ld, *k = q + q_dim, *v = k + kv_dim, *vdst;
        const float *cs = s->rope + t * c->n_rot;
        int64_t pos = j->pos0 + t;
        if (j->w->bqkv)
            for (d = 0; d < ld; d++)
                q[d] = q[d] + j->w->bqkv[d];
        for (h = 0; h < c->n_head; h++) {
            if (j->w->q_norm)
                rmsnorm(q + h * hd, q + h * hd, j->w->q_norm, hd, c->norm_eps);
            rope_head(q + h * hd, cs, c->n_rot, c->rope_mode);
        }
        for (h = 0; h < c->n_head_kv; h++) {
            if (j->w->k_norm)
                rmsnorm(k + h * hd, k + h * hd, j->w->k_norm, hd, c->norm_eps);
            rope_head(k + h * hd, cs, c->n_rot, c->rope_mode);
        }
        vdst = s->v_cache + (j->layer * s->n_ctx + pos) * kv_dim;
        for (d = 0; d < kv_dim; d++) {
            s->k_cache[(j->layer * kv_dim + d) * s->n_ctx + pos] = ggml ? round_f16(k[d]) : k[d];
            vdst[d] = ggml ? round_f16(v[d]) : v[d];
        }
    }
    return 0;
}

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* The per-token steps between products, run in parallel over tokens. */
enum { ROWS_NORM, ROWS_ADD, ROWS_ADD_NORM, ROWS_SWIGLU };

typedef struct {
    const qf_model *m;
    qf_model_state *s;
    int op;
    const float *w;  /* the norm's weight */
    int64_t first;   /* item i is token first + i */
} rows_job;

static int rows_step(void *ctx, int64_t begin, int64_t end, int worker)
{
    rows_job *j = ctx;
    qf_model_state *s = j->s;
    int64_t dim = j->m->cfg.dim, nff = j->m->cfg.n_ff, t, i;
    (void)worker;

    for (t = begin + j->first; t < end + j->first; t++) {
        float *x = s->x + t * dim, *y = s->y + t * dim;
        switch (j->op) {
        case ROWS_ADD:
        case ROWS_ADD_NORM: /* residual: x = x + y, then the next norm */
            for (i = 0; i < dim; i++)
                x[i] = x[i] + y[i];
            if (j->op == ROWS_ADD)
                break;
            /* fall through */
        case ROWS_NORM:
            rmsnorm(s->xn + t * dim, x, j->w, dim, j->m->cfg.norm_eps);
            break;
        case ROWS_SWIGLU: { /* silu(gate) * up */
            const float *g = s->ffn + t * 2 * nff, *u = g + nff;
            float *hb = s->hb + t * nff;
            for (i = 0; i < nff; i++)
                hb[i] = silu(g[i]) * u[i];
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

static void rows(const qf_model *m, qf_model_state *s, int op, const float *w, int64_t first,
                 int64_t n)
{
    rows_job j = { m, s, op, w, first };
    qf_parallel_for(s->n_threads, n - first, 8, rows_step, &j);
}

/* Run n (<= n_batch) tokens at positions pos .. pos+n-1; logits of tokens
 * [out_first, n) into logits. */
static int eval_batch(const qf_model *m, qf_model_state *s, const int32_t *tokens, int64_t n,
                      int64_t out_first, float *logits, qf_err *err)
{
    const qf_model_config *c = &m->cfg;
    int64_t dim = c->dim, hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    int64_t ld = q_dim + 2 * kv_dim, nff = c->n_ff, half = c->n_rot / 2, t, i, l;
    int nt = s->n_threads, rc;

    /* Token embeddings, and each token's RoPE angles (cos, sin). */
    for (t = 0; t < n; t++) {
        float *cs = s->rope + t * c->n_rot;
        if (m->token_embd)
            memcpy(s->x + t * dim, m->token_embd + (int64_t)tokens[t] * dim,
                   (size_t)dim * sizeof(float));
        else
            qf_gemm_mat_get_row(&m->output.w, tokens[t], s->x + t * dim);
        for (i = 0; i < half; i++) {
            float angle = (float)(s->pos + t) * m->inv_freq[i];
            cs[i] = (float)cos((double)angle);
            cs[half + i] = (float)sin((double)angle);
        }
    }
    rows(m, s, ROWS_NORM, m->layers[0].attn_norm, 0, n);

    for (l = 0; l < c->n_layer; l++) {
        const layer_weights *w = &m->layers[l];
        qkv_job qj = { m, s, w, l, s->pos };
        attn_job aj = { m, s, l, s->pos, n };

        /* attention (its input xn = attn_norm(x) is ready) */
        if ((rc = product(s, &w->wq, s->xn, dim, n, s->qkv, ld, err)) != 0 ||
            (rc = product(s, &w->wk, s->xn, dim, n, s->qkv + q_dim, ld, err)) != 0 ||
            (rc = product(s, &w->wv, s->xn, dim, n, s->qkv + q_dim + kv_dim, ld, err)) != 0)
            return rc;
        qf_parallel_for(nt, n, 8, qkv_tokens, &qj);
        qf_parallel_for(nt, (n + QF_GEMM_MR - 1) / QF_GEMM_MR * c->n_head, 1, attn_items, &aj);
        if ((rc = product(s, &w->wo, s->att, q_dim, n, s->y, dim, err)) != 0)
            return rc;
        rows(m, s, ROWS_ADD_NORM, w->ffn_norm, 0, n);

        /* feed-forward: down(silu(gate(xn)) * up(xn)) */
        if ((rc = product(s, &w->w1, s->xn, dim, n, s->ffn, 2 * nff, err)) != 0 ||
            (rc = product(s, &w->w3, s->xn, dim, n, s->ffn + nff, 2 * nff, err)) != 0)
            return rc;
        rows(m, s, ROWS_SWIGLU, NULL, 0, n);
        if ((rc = product(s, &w->w2, s->hb, nff, n, s->y, dim, err)) != 0)
            return rc;
        if (l + 1 < c->n_layer)
            rows(m, s, ROWS_ADD_NORM, m->layers[l + 1].attn_norm, 0, n);
        else
            rows(m, s, ROWS_ADD, NULL, 0, n);
    }

    s->pos += n;
    if (out_first >= n)
        return 0;
    rows(m, s, ROWS_NORM, m->output_norm, out_first, n);
    return product(s, &m->output, s->xn + out_first * dim, dim, n - out_first, logits,
                   c->n_vocab, err);
}

int qf_model_eval(const qf_model *m, qf_model_state *s, const int32_t *tokens, int64_t n,
                  int64_t out_first, float *logits, qf_err *err)
{
    int64_t done = 0, i;

    if (n < 0 || out_first < 0 || out_first > n)
        return qf_err_set(err, QF_EINVAL, "eval: %lld tokens, logits from %lld", (long long)n,
                          (long long)out_first);
    if (n > s->n_ctx - s->pos)
        return qf_err_set(err, QF_EINVAL, "eval: %lld tokens at position %lld pass the context "
                          "of %lld", (long long)n, (long long)s->pos, (long long)s->n_ctx);
    for (i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.n_vocab)
            return qf_err_set(err, QF_EINVAL, "eval: token id %ld outside the vocabulary of %lld",
                              (long)tokens[i], (long long)m->cfg.n_vocab);
    while (done < n) {
        int64_t nb = n - done < s->n_batch ? n - done : s->n_batch, first;
        int rc;
        first = out_first - done;
        if (first < 0)
            first = 0;
        if (first > nb)
            first = nb;
        rc = eval_batch(m, s, tokens + done, nb, first, logits, err);
        if (rc != 0)
            return rc;
        if (first < nb)
            logits += (nb - first) * m->cfg.n_vocab;
        done += nb;
    }
    return 0;
}
