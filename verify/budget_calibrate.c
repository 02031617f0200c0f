/*
 * verify/budget_calibrate.c - per-kind sensitivities by KL divergence (see
 * budget_calibrate.h).
 */
#include "verify/budget_calibrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/quantize_model.h"
#include "formats/file.h"
#include "formats/types.h"
#include "quantize/mix.h"
#include "verify/metrics.h"
#include "verify/model.h"
#include "verify/tokenizer.h"

typedef struct calib {
    const qf_source *src;
    const qf_calibrate_opts *o;
    int32_t *ids;        /* n_chunks * n_ctx tokens */
    int64_t n_chunks;
    int32_t bos;         /* put first in each chunk, or -1 */
    int64_t n_vocab;
    float *base;         /* F32 model's logits: n_chunks * rows * n_vocab */
    float *logits;       /* one chunk: rows * n_vocab */
    int64_t rows;        /* logits kept per chunk: n_ctx - n_ctx / 2 */
} calib;

/* BOS as llama.cpp's vocabulary adds it (tokenizer.ggml.add_bos_token,
 * default on for SentencePiece), or -1. */
static int32_t chunk_bos(const qf_source *src)
{
    const char *model = NULL;
    uint64_t len = 0, bos;
    int64_t i = qf_source_find_key(src, "tokenizer.ggml.add_bos_token");
    int spm = qf_source_get_str(src, "tokenizer.ggml.model", &model, &len, NULL) == 0 &&
              len == 5 && memcmp(model, "llama", 5) == 0;
    int add = spm;
    if (i >= 0) {
        qf_gguf_val v;
        if (qf_source_kv_value(src, i, &v) == 0 && v.type == QF_GGUF_BOOL)
            add = v.u != 0;
    }
    if (!add)
        return -1;
    if (qf_source_get_uint(src, "tokenizer.ggml.bos_token_id", &bos, NULL) == 0 && bos < INT32_MAX)
        return (int32_t)bos;
    return spm ? 1 : -1;
}

static int tokenize(calib *c, qf_err *err)
{
    qf_map *m = NULL;
    qf_tokenizer *tok = NULL;
    const char *text;
    size_t len;
    int64_t need, n;
    int rc;

    if ((rc = qf_map_open(c->o->text, &m, err)) != 0)
        return rc;
    text = (const char *)qf_map_data(m);
    len = (size_t)qf_map_size(m);
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if ((rc = qf_tokenizer_from_source(c->src, &tok, err)) != 0)
        goto done;
    if ((need = qf_tokenizer_encode(tok, text, len, 1, 1, NULL, 0, err)) < 0) {
        rc = (int)need;
        goto done;
    }
    if (!(c->ids = malloc((size_t)(need ? need : 1) * sizeof *c->ids))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    if ((n = qf_tokenizer_encode(tok, text, len, 1, 1, c->ids, need, err)) < 0) {
        rc = (int)n;
        goto done;
    }
    c->n_chunks = n / c->o->n_ctx;
    if (c->n_chunks > c->o->max_chunks)
        c->n_chunks = c->o->max_chunks;
    if (c->n_chunks < 1)
        rc = qf_err_set(err, QF_EINVAL, "%s: %lld tokens, fewer than one chunk of %lld",
                        c->o->text, (long long)n, (long long)c->o->n_ctx);
done:
    qf_tokenizer_free(tok);
    qf_map_close(m);
    return rc;
}

/* Run every chunk through the model in `src`; with `kld` NULL keep the
 * logits as the base, else the mean KL divergence against the base. */
static int run_model(calib *c, const qf_source *src, double *kld, qf_err *err)
{
    qf_model *m = NULL;
    qf_model_state *st = NULL;
    int32_t *buf = NULL;
    int64_t ch, r, first = c->o->n_ctx / 2, scored = 0;
    double sum = 0.0;
    int rc;

    if ((rc = qf_model_load(src, c->o->threads, &m, err)) != 0 ||
        (rc = qf_model_state_new(m, c->o->n_ctx, c->o->n_ctx, c->o->threads, QF_NUMERICS_F32, &st,
                                 err)) != 0)
        goto done;
    if (!kld) {
        c->n_vocab = qf_model_get_config(m)->n_vocab;
        c->rows = c->o->n_ctx - first;
        c->base = malloc((size_t)c->n_chunks * (size_t)c->rows * (size_t)c->n_vocab * sizeof(float));
        c->logits = malloc((size_t)c->rows * (size_t)c->n_vocab * sizeof(float));
        if (!c->base || !c->logits) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory (logits)");
            goto done;
        }
    }
    if (!(buf = malloc((size_t)c->o->n_ctx * sizeof *buf))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (ch = 0; ch < c->n_chunks; ch++) {
        const int32_t *tok = c->ids + ch * c->o->n_ctx;
        float *out = kld ? c->logits : c->base + ch * c->rows * c->n_vocab;
        memcpy(buf, tok, (size_t)c->o->n_ctx * sizeof *buf);
        if (c->bos >= 0)
            buf[0] = c->bos;
        qf_model_state_reset(st);
        if ((rc = qf_model_eval(m, st, buf, c->o->n_ctx, first, out, err)) != 0)
            goto done;
        if (!kld)
            continue;
        for (r = 0; r + 1 < c->rows; r++) { /* position first + r predicts the next token */
            qf_kld_row row;
            if ((rc = qf_kld_row_compute(c->logits + r * c->n_vocab,
                                         c->base + (ch * c->rows + r) * c->n_vocab, c->n_vocab,
                                         tok[first + r + 1], &row, err)) != 0)
                goto done;
            sum += row.kld;
            scored++;
        }
    }
    if (kld)
        *kld = scored ? sum / (double)scored : 0.0;
done:
    free(buf);
    qf_model_state_free(st);
    qf_model_free(m);
    return rc;
}

/* The type a tensor takes for the calibration: Q3_K, Q4_0, or its smallest
 * candidate; -1 if it has none to offer. Sets *cand. */
static int calib_type(const qf_budget_tensor *t, int *cand)
{
    static const int PREFER[] = { QF_GGML_Q3_K, QF_GGML_Q4_0 };
    int c, k, best = -1;
    for (k = 0; k < 2; k++)
        for (c = 0; c < t->n_cand; c++)
            if (t->cand[c].type == PREFER[k]) {
                *cand = c;
                return PREFER[k];
            }
    for (c = 0; c < t->n_cand; c++)
        if (t->cand[c].err > 0.0 && (best < 0 || t->cand[c].bytes < t->cand[best].bytes))
            best = c;
    if (best < 0)
        return -1;
    *cand = best;
    return t->cand[best].type;
}

int qf_budget_calibrate(const qf_source *src, qf_budget_plan *plan, const qf_calibrate_opts *o,
                        qf_calibrate_fn fn, void *ctx, qf_err *err)
{
    calib c;
    int64_t i, n = qf_budget_plan_count(plan);
    int *types = NULL, kind, rc = 0;
    char path[4096];
    qf_calibrate_kind res[16];
    int n_res = 0;

    memset(&c, 0, sizeof c);
    c.src = src;
    c.o = o;
    c.bos = chunk_bos(src);
    if (o->n_ctx < 4 || o->max_chunks < 1 || o->threads < 1)
        return qf_err_set(err, QF_EINVAL, "calibration: n_ctx >= 4, chunks and threads >= 1");
    if ((rc = tokenize(&c, err)) != 0 || (rc = run_model(&c, src, NULL, err)) != 0)
        goto done;
    if (!(types = malloc((size_t)(n ? n : 1) * sizeof *types))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/qforge-calibrate-%ld.gguf", o->tmp_dir, (long)getpid());
    for (kind = 0; kind < qf_budget_kind_count() && kind < 16; kind++) {
        qf_quantize_opts qo;
        qf_quantize *q = NULL;
        qf_source *vs = NULL;
        qf_calibrate_kind r;
        memset(&r, 0, sizeof r);
        r.kind = kind;
        for (i = 0; i < n; i++) {
            const qf_budget_tensor *t = qf_budget_plan_at(plan, i);
            int cand = -1;
            types[i] = -1;
            if (t->fixed || qf_budget_kind_of(t->name) != kind || !(t->signal > 0.0))
                continue;
            if ((types[i] = calib_type(t, &cand)) < 0)
                continue;
            r.rel_err += t->cand[cand].err / t->signal;
            r.n_tensors++;
        }
        if (r.n_tensors == 0 || !(r.rel_err > 0.0))
            continue;
        qf_quantize_opts_init(&qo);
        qo.ftype = QF_FTYPE_F32;
        qo.threads = o->threads;
        qo.imatrix = o->imatrix;
        qo.source_types = types;
        rc = qf_quantize_plan(src, &qo, &q, err);
        if (!rc)
            rc = qf_quantize_write(q, path, QF_OUT_FORCE, NULL, NULL, NULL, err);
        qf_quantize_free(q);
        if (!rc && (rc = qf_source_open(path, &vs, err)) == 0)
            rc = run_model(&c, vs, &r.kld, err);
        qf_source_close(vs);
        (void)unlink(path);
        if (rc)
            goto done;
        r.sensitivity = r.kld / r.rel_err;
        if (!(r.sensitivity > 1e-12)) /* no measurable effect: tiny, not "unset" */
            r.sensitivity = 1e-12;
        res[n_res++] = r;
        if (fn)
            fn(ctx, &r);
    }
    /* set only when every kind ran: a failed calibration changes nothing */
    for (i = 0; i < n_res; i++)
        qf_budget_plan_set_sensitivity(plan, res[i].kind, res[i].sensitivity);
done:
    free(types);
    free(c.ids);
    free(c.base);
    free(c.logits);
    return rc;
}
