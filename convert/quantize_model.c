/*
 * convert/quantize_model.c - plan and write a quantized GGUF from a source
 * (see quantize_model.h).
 */
#include "convert/quantize_model.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/qfm_io.h"
#include "formats/parallel.h"
#include "formats/types.h"
#include "quantize/affine.h"
#include "quantize/imatrix.h"
#include "quantize/mix.h"
#include "quantize/quant.h"

/* F32 elements read per write: 16 MiB, and at most as much again out. */
#define CHUNK_ELEMS ((uint64_t)1 << 22)
/* Elements handed to a thread at a time (llama.cpp's 32 * 512). */
#define TASK_ELEMS ((uint64_t)16384)
/* Bytes per write when copying a mapped tensor (for progress). */
#define COPY_BYTES ((uint64_t)64 << 20)
/* llama-quantize copies --imatrix strings into 128-byte override buffers. */
#define KV_STR_MAX 127

struct qf_quantize {
    const qf_source *src;
    qf_quantize_opts o;
    qf_quantize_tensor *t;
    const float **weights; /* per tensor: importance weights, or NULL */
    int64_t nt;
    qf_gguf_writer *w;
    qf_imatrix *im;
    qf_mix *mix;           /* kept: tensors' `pattern` points into it */
    char *arch;
    int has_affine;        /* some tensor gets an affine type */
    int used;              /* qf_quantize_write was called */
    uint64_t qfm_size;     /* the QFM written, or 0 */
};

void qf_quantize_opts_init(qf_quantize_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ftype = -1;
    o->affine = -1;
    o->threads = 1;
    o->output_tensor_type = -1;
    o->token_embedding_type = -1;
}

void qf_quantize_free(qf_quantize *q)
{
    if (!q)
        return;
    qf_gguf_writer_free(q->w);
    qf_imatrix_close(q->im);
    qf_mix_free(q->mix);
    free(q->t);
    free(q->weights);
    free(q->arch);
    free(q);
}

int64_t qf_quantize_tensor_count(const qf_quantize *q) { return q->nt; }

const qf_quantize_tensor *qf_quantize_tensor_at(const qf_quantize *q, int64_t i)
{
    return i >= 0 && i < q->nt ? &q->t[i] : NULL;
}

const qf_gguf_writer *qf_quantize_metadata(const qf_quantize *q) { return q->w; }

int qf_quantize_has_affine(const qf_quantize *q) { return q->has_affine; }

const char *qf_quantize_type_name(int type)
{
    qf_affine a;
    if (qf_affine_from_code(type, &a))
        return qf_affine_name(a);
    return qf_ggml_type_name(type);
}

/* Bytes of a row of n columns of a plan type. */
static int type_row_size(int type, uint64_t n, uint64_t *bytes)
{
    qf_affine a;
    if (!qf_affine_from_code(type, &a))
        return qf_ggml_row_size(type, n, bytes);
    if (n > INT64_MAX || (*bytes = qf_affine_row_size(a, (int64_t)n)) == 0)
        return QF_EINVAL;
    return 0;
}

int qf_quantize_imatrix_info(const qf_quantize *q, int64_t *entries, int64_t *chunks,
                             const char **dataset)
{
    if (entries)
        *entries = q->im ? qf_imatrix_count(q->im) : -1;
    if (chunks)
        *chunks = q->im ? qf_imatrix_last_chunk(q->im) : -1;
    if (dataset)
        *dataset = q->im ? qf_imatrix_dataset(q->im) : NULL;
    return q->im != NULL;
}

void qf_quantize_get_totals(const qf_quantize *q, qf_quantize_totals *tt)
{
    int64_t i;
    memset(tt, 0, sizeof *tt);
    tt->n_tensors = q->nt;
    for (i = 0; i < q->nt; i++) {
        const qf_quantize_tensor *t = &q->t[i];
        tt->n_quantized += t->quantize;
        tt->n_copied += !t->quantize;
        tt->n_fallback += t->fallback;
        tt->n_llama_fails += t->llama_fails;
        tt->n_requantized += t->requantize;
        tt->n_imatrix_used += t->imatrix;
        tt->n_imatrix_missing += t->imatrix_missing;
        tt->n_elements += t->n_elements;
        tt->in_bytes += t->in_bytes;
        tt->out_bytes += t->out_bytes;
    }
    tt->file_size = q->qfm_size       ? q->qfm_size
                  : q->has_affine || !q->w ? 0
                                           : qf_gguf_writer_file_size(q->w);
}

/* ---------------------------------------------------------------------
 * Planning
 * ------------------------------------------------------------------- */

/* An integer key, or the first element of an integer array (per-layer
 * values); 0 if absent or not an integer. */
static int64_t hparam(const qf_source *s, const char *arch, const char *suffix, int *found)
{
    char key[256];
    int64_t i;
    qf_gguf_val v;

    if (found)
        *found = 0;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if ((i = qf_source_find_key(s, key)) < 0 || qf_source_kv_value(s, i, &v) != 0)
        return 0;
    if (v.type == QF_GGUF_ARRAY) {
        qf_gguf_iter it;
        qf_gguf_val e;
        qf_gguf_iter_init(&it, &v);
        if (qf_gguf_iter_next(&it, &e) != 1)
            return 0;
        v = e;
    }
    switch (v.type) {
    case QF_GGUF_UINT8: case QF_GGUF_UINT16: case QF_GGUF_UINT32: case QF_GGUF_UINT64:
        if (found)
            *found = 1;
        return v.u > INT64_MAX ? INT64_MAX : (int64_t)v.u;
    case QF_GGUF_INT8: case QF_GGUF_INT16: case QF_GGUF_INT32: case QF_GGUF_INT64:
        if (found)
            *found = 1;
        return v.i;
    default:
        return 0;
    }
}

typedef struct order_item {
    const char *name;
    int64_t layer;
    int64_t index;
} order_item;

/* llama.cpp's weight_name_comparer: by layer (-1 outside blocks), then name. */
static int by_layer_then_name(const void *pa, const void *pb)
{
    const order_item *a = pa, *b = pb;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

static uint32_t effective_dims(uint32_t n_dims, const uint64_t ne[4])
{
    uint32_t d;
    for (d = n_dims < 4 ? n_dims : 4; d > 1; d--)
        if (ne[d - 1] > 1)
            return d;
    return 1;
}

/* A string value cut to llama.cpp's 127 bytes, at a UTF-8 boundary. */
static int set_str_cut(qf_gguf_writer *w, const char *key, const char *s, qf_err *err)
{
    size_t n = strnlen(s, KV_STR_MAX);
    if (s[n] != '\0')
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    return qf_gguf_writer_set_strn(w, key, s, n, err);
}

static int is_float_type(int t) { return t == QF_GGML_F32 || t == QF_GGML_F16 || t == QF_GGML_BF16; }

static int plan_metadata(qf_quantize *q, qf_err *err)
{
    static const char *const SPLIT_KEYS[] = { "split.no", "split.count", "split.tensors.count" };
    int rc;
    size_t k;

    if ((rc = qf_source_copy_kvs(q->src, q->w, err)) != 0)
        return rc;
    if ((rc = qf_gguf_writer_set_u32(q->w, "general.quantization_version", 2, err)) != 0 ||
        (rc = qf_gguf_writer_set_u32(q->w, "general.file_type", (uint32_t)q->o.ftype, err)) != 0)
        return rc;
    for (k = 0; k < sizeof SPLIT_KEYS / sizeof SPLIT_KEYS[0]; k++)
        (void)qf_gguf_writer_remove(q->w, SPLIT_KEYS[k]);
    if (q->im) {
        const char *ds = qf_imatrix_dataset(q->im);
        int32_t chunks = qf_imatrix_last_chunk(q->im);
        if ((rc = set_str_cut(q->w, "quantize.imatrix.file", q->o.imatrix, err)) != 0)
            return rc;
        if (ds && *ds && (rc = set_str_cut(q->w, "quantize.imatrix.dataset", ds, err)) != 0)
            return rc;
        if ((rc = qf_gguf_writer_set_i32(q->w, "quantize.imatrix.entries_count",
                                         (int32_t)qf_imatrix_count(q->im), err)) != 0)
            return rc;
        if (chunks > 0 &&
            (rc = qf_gguf_writer_set_i32(q->w, "quantize.imatrix.chunks_count", chunks, err)) != 0)
            return rc;
    }
    if (q->o.extra_kv)
        return q->o.extra_kv(q->o.extra_kv_ctx, q->w, err);
    return 0;
}

/* Importance weights for planned tensor t (llama.cpp's look-up). */
static int plan_weights(qf_quantize *q, int64_t i, qf_err *err)
{
    qf_quantize_tensor *t = &q->t[i];
    const qf_imatrix_entry *e;
    uint64_t want = t->ne[0] * t->ne[2];

    if (!q->im || !t->quantize)
        return 0;
    e = qf_imatrix_find(q->im, t->name);
    if (!e) {
        t->imatrix_missing = 1;
        return 0;
    }
    if ((uint64_t)e->n_values == want) {
        q->weights[i] = e->weights;
        t->imatrix = 1;
        return 0;
    }
    if (strcmp(t->name, "token_embd.weight") == 0) /* llama.cpp: always mismatched, ignored */
        return 0;
    return qf_err_set(err, QF_EINVAL,
                      "%s: entry \"%s\" has %lld values, the tensor needs %llu (columns x experts)",
                      q->o.imatrix, t->name, (long long)e->n_values, (unsigned long long)want);
}

int qf_quantize_plan(const qf_source *src, const qf_quantize_opts *opts, qf_quantize **out,
                     qf_err *err)
{
    qf_quantize *q = NULL;
    qf_mix *mix;
    order_item *ord = NULL;
    qf_mix_model model;
    qf_mix_opts mo;
    const char *arch_s = NULL;
    uint64_t arch_len = 0;
    int64_t i, n;
    int rc = 0, found;

    *out = NULL;
    if (opts->affine >= 0) {
        qf_affine a;
        if (!qf_affine_from_code(opts->affine, &a))
            return qf_err_set(err, QF_EINVAL, "unknown affine type (code %d)", opts->affine);
        if (opts->imatrix)
            return qf_err_set(err, QF_EINVAL, "%s: the affine type %s takes no importance matrix",
                              opts->imatrix, qf_affine_name(a));
        if (opts->source_types)
            return qf_err_set(err, QF_EINVAL, "a size budget chooses ggml types, not %s",
                              qf_affine_name(a));
    } else if (qf_mix_default_type(opts->ftype) < 0)
        return qf_err_set(err, QF_EINVAL, "unknown mix (ftype %d)", opts->ftype);
    if (opts->threads < 1)
        return qf_err_set(err, QF_EINVAL, "threads must be at least 1");
    n = qf_source_tensor_count(src);
    q = calloc(1, sizeof *q);
    if (!q)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    q->src = src;
    q->o = *opts;
    if (opts->affine >= 0) /* the F16 mix decides which tensors are converted */
        q->o.ftype = QF_FTYPE_F16;
    q->nt = n;
    q->t = calloc((size_t)(n ? n : 1), sizeof *q->t);
    q->weights = calloc((size_t)(n ? n : 1), sizeof *q->weights);
    ord = calloc((size_t)(n ? n : 1), sizeof *ord);
    if (!q->t || !q->weights || !ord) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }

    /* the model, as the rules see it */
    (void)qf_source_get_str(src, "general.architecture", &arch_s, &arch_len, NULL);
    q->arch = arch_s ? strndup(arch_s, (size_t)arch_len) : strdup("");
    if (!q->arch) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    memset(&model, 0, sizeof model);
    model.arch = q->arch;
    model.n_layer = hparam(src, q->arch, "block_count", NULL);
    model.n_head = hparam(src, q->arch, "attention.head_count", NULL);
    model.n_head_kv = hparam(src, q->arch, "attention.head_count_kv", &found);
    if (!found)
        model.n_head_kv = model.n_head;
    model.n_expert = hparam(src, q->arch, "expert_count", NULL);
    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(src, i);
        qf_mix_model_scan(&model, st->name);
        ord[i].name = st->name;
        ord[i].layer = qf_mix_layer(st->name);
        ord[i].index = i;
    }
    qsort(ord, (size_t)n, sizeof *ord, by_layer_then_name);

    if (opts->imatrix && (rc = qf_imatrix_open(opts->imatrix, &q->im, err)) != 0)
        goto done;

    mo.ftype = q->o.ftype;
    mo.pure = opts->pure;
    mo.leave_output_tensor = opts->leave_output_tensor;
    mo.has_imatrix = q->im && qf_imatrix_count(q->im) > 0;
    mo.output_tensor_type = opts->output_tensor_type;
    mo.token_embedding_type = opts->token_embedding_type;
    if ((rc = qf_mix_new(&mo, &model, &q->mix, err)) != 0)
        goto done;
    mix = q->mix;
    for (i = 0; i < opts->n_tensor_types; i++)
        if ((rc = qf_mix_add_override(mix, opts->tensor_types[i], err)) != 0)
            goto done;

    if ((rc = qf_gguf_writer_new(&q->w, err)) != 0 || (rc = plan_metadata(q, err)) != 0)
        goto done;

    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(src, ord[i].index);
        qf_quantize_tensor *t = &q->t[i];
        qf_mix_choice c;
        uint64_t row_bytes;

        if ((rc = qf_mix_choose(mix, st->name, st->n_dims, st->ne, st->type, &c, err)) != 0) {
            qf_err_prefix(err, qf_source_path(src));
            goto done;
        }
        if (opts->source_types && opts->source_types[ord[i].index] >= 0 && c.why != QF_MIX_KEPT) {
            int want = opts->source_types[ord[i].index];
            c.wanted = want;
            c.type = qf_mix_fallback(want, st->ne[0], &c.llama_fails);
            c.fallback = c.type != want;
            c.quantize = c.type != st->type;
            if (!c.quantize)
                c.type = st->type;
            c.pattern = NULL;
            t->budget = 1;
        }
        if (opts->affine >= 0 &&
            (c.why == QF_MIX_DEFAULT || c.why == QF_MIX_RULE || c.why == QF_MIX_PURE)) {
            qf_affine a;
            (void)qf_affine_from_code(opts->affine, &a);
            c.wanted = opts->affine;
            c.type = opts->affine;
            c.fallback = st->ne[0] > INT64_MAX || qf_affine_row_size(a, (int64_t)st->ne[0]) == 0;
            if (c.fallback) { /* int8-ch takes any row length */
                a.bits = 8;
                a.group = 0;
                c.type = qf_affine_code(a);
            }
            c.llama_fails = 0;
            c.quantize = 1;
            c.pattern = NULL;
        }
        t->name = st->name;
        t->source_index = ord[i].index;
        t->in_type = st->type;
        t->type = c.type;
        t->wanted = c.wanted;
        t->quantize = c.quantize;
        t->fallback = c.fallback;
        t->llama_fails = c.llama_fails;
        t->why = (int)c.why;
        t->pattern = c.pattern;
        t->n_dims = effective_dims(st->n_dims, st->ne);
        memcpy(t->ne, st->ne, sizeof t->ne);
        t->n_elements = st->ne[0] * st->n_rows;
        t->in_bytes = st->nbytes;
        if ((rc = type_row_size(t->type, t->ne[0], &row_bytes)) != 0) {
            rc = qf_err_set(err, rc, "%s: tensor \"%s\": bad row length %llu for %s",
                            qf_source_path(src), t->name, (unsigned long long)t->ne[0],
                            qf_quantize_type_name(t->type));
            goto done;
        }
        t->out_bytes = row_bytes * st->n_rows;
        if (t->quantize) {
            const qf_ggml_traits *tr = qf_ggml_type_traits(st->type);
            if (!is_float_type(st->type) && !(tr && tr->is_quantized)) {
                rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot convert type %s to %s",
                                qf_source_path(src), t->name, qf_ggml_type_name(st->type),
                                qf_quantize_type_name(t->type));
                goto done;
            }
            if (tr && tr->is_quantized) {
                if (!opts->allow_requantize) {
                    rc = qf_err_set(err, QF_EINVAL,
                                    "%s: tensor \"%s\" is already quantized (%s); requantizing "
                                    "loses quality and is refused unless allowed "
                                    "(--allow-requantize)",
                                    qf_source_path(src), t->name, qf_ggml_type_name(st->type));
                    goto done;
                }
                if (!qf_quant_can_dequantize(st->type)) {
                    rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot read type %s",
                                    qf_source_path(src), t->name, qf_ggml_type_name(st->type));
                    goto done;
                }
                t->requantize = 1;
            }
        }
        if ((rc = plan_weights(q, i, err)) != 0)
            goto done;
        if (t->type >= QF_AFFINE_CODE_BASE) /* no GGUF form: declared on the QFM writer */
            q->has_affine = 1;
        else if ((rc = qf_gguf_writer_add_tensor(q->w, t->name, t->type, t->n_dims, t->ne, err)) != 0)
            goto done;
    }
    *out = q;
    q = NULL;
done:
    free(ord);
    qf_quantize_free(q);
    return rc;
}

/* ---------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------- */

typedef struct job {
    const qf_source *src;
    const qf_quantize_tensor *t;
    const float *weights;   /* ne[0] * ne[2] importance weights, or NULL */
    uint64_t row0;          /* first row of the chunk in the tensor */
    uint64_t row_bytes;
    float *f32;             /* the chunk's rows as F32 */
    uint8_t *out;           /* the chunk's output */
    pthread_mutex_t lock;
    int64_t bad_row;        /* the smallest row (in the tensor) that failed, or -1 */
    int bad_rc;
    char bad_msg[QF_ERR_MSG_MAX];
} job;

/* Keep the failure of the smallest row, so the message does not depend on
 * the thread count (rows are handed out in order; every row before a
 * failing chunk has been handed out and finishes). */
static void job_fail(job *j, uint64_t row, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void job_fail(job *j, uint64_t row, int rc, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&j->lock);
    if (j->bad_row < 0 || (int64_t)row < j->bad_row) {
        j->bad_row = (int64_t)row;
        j->bad_rc = rc;
        va_start(ap, fmt);
        vsnprintf(j->bad_msg, sizeof j->bad_msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&j->lock);
}

/* First non-finite value in rows x[0..nrows) of n: its row, or -1. */
static int64_t first_bad(const float *x, uint64_t nrows, uint64_t n, uint64_t *col, float *val)
{
    for (uint64_t r = 0; r < nrows; r++)
        for (uint64_t c = 0; c < n; c++)
            if (!isfinite(x[r * n + c])) {
                *col = c;
                *val = x[r * n + c];
                return (int64_t)r;
            }
    return -1;
}

/* The first row of rows x[0..nrows) of n that affine type a refuses (a group
 * out of F16 range), or -1. */
static int64_t first_affine_bad(qf_affine a, const float *x, uint64_t nrows, uint64_t n, uint8_t *o,
                                uint64_t row_bytes)
{
    for (uint64_t r = 0; r < nrows; r++)
        if (qf_affine_quantize(a, x + r * n, o + r * row_bytes, 1, (int64_t)n) != 0)
            return (int64_t)r;
    return -1;
}

static int job_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    job *j = ctx;
    const qf_quantize_tensor *t = j->t;
    const uint64_t ne0 = t->ne[0];
    uint64_t b = (uint64_t)begin;
    qf_affine a;
    const int affine = qf_affine_from_code(t->type, &a);
    (void)worker;

    while (b < (uint64_t)end) {
        uint64_t row = j->row0 + b, e = (uint64_t)end, col;
        const float *w = j->weights;
        float *f = j->f32 + b * ne0, val;
        uint8_t *o = j->out + b * j->row_bytes;
        qf_err le = { 0 };
        int64_t bad;
        int rc;

        if (w && t->ne[2] > 1) { /* each expert has its own weights: split there */
            uint64_t next = (row / t->ne[1] + 1) * t->ne[1] - j->row0;
            if (next < e)
                e = next;
            w += ((row / t->ne[1]) % t->ne[2]) * ne0;
        }
        if ((rc = qf_source_rows_f32(j->src, t->source_index, row, e - b, f, &le)) != 0) {
            job_fail(j, row, rc, "tensor \"%s\": rows %llu..%llu: %s", t->name,
                     (unsigned long long)row, (unsigned long long)(row + (e - b) - 1),
                     le.msg[0] ? le.msg : qf_err_name(rc));
            return rc;
        }
        /* the block and affine quantizers refuse NaN/Inf themselves; plain
         * types do not */
        if (affine)
            rc = qf_affine_quantize(a, f, o, (int64_t)(e - b), (int64_t)ne0);
        else if (!(rc = is_float_type(t->type) ? QF_EINVAL : 0))
            rc = qf_quant_rows(t->type, f, o, (int64_t)(e - b), (int64_t)ne0, w);
        if (rc && (bad = first_bad(f, e - b, ne0, &col, &val)) >= 0) {
            job_fail(j, row + (uint64_t)bad, QF_EINVAL, "tensor \"%s\": row %llu: %s at column %llu",
                     t->name, (unsigned long long)(row + (uint64_t)bad),
                     isnan(val) ? "NaN" : "infinity", (unsigned long long)col);
            return QF_EINVAL;
        }
        if (rc && affine && (bad = first_affine_bad(a, f, e - b, ne0, o, j->row_bytes)) >= 0) {
            job_fail(j, row + (uint64_t)bad, QF_EINVAL,
                     "tensor \"%s\": row %llu: its values do not fit %s (a group's F16 bias or "
                     "scale would overflow)",
                     t->name, (unsigned long long)(row + (uint64_t)bad), qf_affine_name(a));
            return QF_EINVAL;
        }
        if (rc && !affine && is_float_type(t->type))
            rc = qf_quant_rows(t->type, f, o, (int64_t)(e - b), (int64_t)ne0, w);
        if (rc) {
            job_fail(j, row, rc, "tensor \"%s\": rows %llu..%llu: cannot quantize to %s", t->name,
                     (unsigned long long)row, (unsigned long long)(row + (e - b) - 1),
                     qf_quantize_type_name(t->type));
            return rc;
        }
        if (!affine && (bad = qf_quant_check_rows(t->type, o, (int64_t)(e - b), (int64_t)ne0)) >= 0) {
            job_fail(j, row + (uint64_t)bad, QF_EINVAL,
                     "tensor \"%s\": row %llu: its values do not fit %s (the output would hold "
                     "NaN or infinity)",
                     t->name, (unsigned long long)(row + (uint64_t)bad), qf_ggml_type_name(t->type));
            return QF_EINVAL;
        }
        b = e;
    }
    return 0;
}

static const char *writer_tensor_name(const void *w, int64_t i)
{
    return qf_gguf_writer_tensor_name(w, i);
}

/* Where tensor bytes go: the GGUF writer or the QFM writer. */
typedef int (*emit_fn)(void *ctx, const void *data, uint64_t n, qf_err *err);

static int emit_gguf(void *ctx, const void *data, uint64_t n, qf_err *err)
{
    return qf_gguf_writer_write(ctx, data, n, err);
}

static int emit_qfm(void *ctx, const void *data, uint64_t n, qf_err *err)
{
    return qf_qfm_writer_write(ctx, data, n, err);
}

/* Copy tensor t as stored: straight from the mapping, or (a folder) its F32
 * rows. */
static int write_copy(qf_quantize *q, const qf_quantize_tensor *t, float *buf, emit_fn emit,
                      void *ectx, uint64_t *done, uint64_t total, qf_progress_fn progress,
                      void *pctx, qf_err *err)
{
    const qf_source_tensor *st = qf_source_tensor_at(q->src, t->source_index);
    uint64_t off, rows = st->n_rows, per, r0;
    int rc;

    if (st->data) {
        for (off = 0; off < st->nbytes; off += COPY_BYTES) {
            uint64_t n = st->nbytes - off < COPY_BYTES ? st->nbytes - off : COPY_BYTES;
            if ((rc = emit(ectx, st->data + off, n, err)) != 0)
                return rc;
            *done += n;
            if (progress)
                progress(pctx, *done, total);
        }
        return 0;
    }
    if (st->type != QF_GGML_F32 && !strcmp(qf_source_kind(q->src), "qfm")) { /* compressed */
        uint8_t *tmp = malloc(COPY_BYTES);
        if (!tmp)
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        for (off = 0, rc = 0; off < st->nbytes && rc == 0; off += COPY_BYTES) {
            uint64_t n = st->nbytes - off < COPY_BYTES ? st->nbytes - off : COPY_BYTES;
            if ((rc = qf_source_read_bytes(q->src, t->source_index, off, n, tmp, err)) == 0 &&
                (rc = emit(ectx, tmp, n, err)) == 0) {
                *done += n;
                if (progress)
                    progress(pctx, *done, total);
            }
        }
        free(tmp);
        return rc;
    }
    if (st->type != QF_GGML_F32)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot copy type %s",
                          qf_source_path(q->src), t->name, qf_ggml_type_name(st->type));
    per = CHUNK_ELEMS / t->ne[0] ? CHUNK_ELEMS / t->ne[0] : 1;
    for (r0 = 0; r0 < rows; r0 += per) {
        uint64_t n = rows - r0 < per ? rows - r0 : per;
        if ((rc = qf_source_rows_f32(q->src, t->source_index, r0, n, buf, err)) != 0 ||
            (rc = emit(ectx, buf, n * t->ne[0] * sizeof(float), err)) != 0)
            return rc;
        *done += n * t->ne[0] * sizeof(float);
        if (progress)
            progress(pctx, *done, total);
    }
    return 0;
}

/* Every planned tensor, in order, into emit: copied, or quantized a chunk
 * of rows at a time on the plan's threads. */
static int emit_tensors(qf_quantize *q, emit_fn emit, void *ectx, qf_progress_fn progress,
                        void *pctx, qf_err *err)
{
    float *f32 = NULL;
    uint8_t *obuf = NULL;
    uint64_t max_elems = CHUNK_ELEMS, max_out = 1, total = 0, done_bytes = 0;
    job j;
    int64_t i;
    int rc = 0, lock_ok = 0;

    for (i = 0; i < q->nt; i++) {
        const qf_quantize_tensor *t = &q->t[i];
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        uint64_t per = CHUNK_ELEMS / t->ne[0] ? CHUNK_ELEMS / t->ne[0] : 1;
        total += t->out_bytes;
        if (t->ne[0] > max_elems)
            max_elems = t->ne[0];
        if (t->quantize && (per < rows ? per : rows) * (t->out_bytes / rows) > max_out)
            max_out = (per < rows ? per : rows) * (t->out_bytes / rows);
    }
    f32 = malloc((size_t)max_elems * sizeof(float));
    obuf = malloc((size_t)max_out); /* a chunk's output: about its F32 input or less */
    if (!f32 || !obuf) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    memset(&j, 0, sizeof j);
    if (pthread_mutex_init(&j.lock, NULL) != 0) {
        rc = qf_err_set(err, QF_ENOMEM, "cannot create a lock");
        goto done;
    }
    lock_ok = 1;

    for (i = 0; i < q->nt; i++) {
        const qf_quantize_tensor *t = &q->t[i];
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3], per, r0, task;

        if (!t->quantize) {
            rc = write_copy(q, t, f32, emit, ectx, &done_bytes, total, progress, pctx, err);
            qf_source_release(q->src, t->source_index);
            if (rc)
                goto done;
            continue;
        }
        j.src = q->src;
        j.t = t;
        j.weights = q->weights[i];
        j.row_bytes = t->out_bytes / rows;
        j.f32 = f32;
        j.out = obuf;
        per = CHUNK_ELEMS / t->ne[0] ? CHUNK_ELEMS / t->ne[0] : 1;
        task = TASK_ELEMS / t->ne[0] ? TASK_ELEMS / t->ne[0] : 1;
        for (r0 = 0; r0 < rows; r0 += per) {
            uint64_t n = rows - r0 < per ? rows - r0 : per;
            j.row0 = r0;
            j.bad_row = -1;
            j.bad_rc = 0;
            j.bad_msg[0] = '\0';
            rc = qf_parallel_for(q->o.threads, (int64_t)n, (int64_t)task, job_rows, &j);
            if (rc != 0) {
                if (j.bad_row >= 0)
                    rc = qf_err_set(err, j.bad_rc, "%s: %s", qf_source_path(q->src), j.bad_msg);
                else
                    rc = qf_err_set(err, rc, "%s: tensor \"%s\": %s", qf_source_path(q->src),
                                    t->name, qf_err_name(rc));
                goto done;
            }
            if ((rc = emit(ectx, obuf, n * j.row_bytes, err)) != 0)
                goto done;
            qf_source_release_rows(q->src, t->source_index, r0, n);
            done_bytes += n * j.row_bytes;
            if (progress)
                progress(pctx, done_bytes, total);
        }
        qf_source_release(q->src, t->source_index);
    }
done:
    if (lock_ok)
        pthread_mutex_destroy(&j.lock);
    free(f32);
    free(obuf);
    return rc;
}

int qf_quantize_write(qf_quantize *q, const char *path, int flags, const char *manifest_path,
                      qf_progress_fn progress, void *pctx, qf_err *err)
{
    int rc = 0;

    if (q->used || !q->w)
        return qf_err_set(err, QF_EINVAL, "a quantization plan is written at most once");
    if (q->has_affine)
        return qf_err_set(err, QF_EINVAL, "%s: the affine types have no GGUF form: write a QFM",
                          path);
    q->used = 1;
    if (manifest_path && (rc = qf_gguf_writer_hash(q->w, err)) != 0)
        goto done;
    if ((rc = qf_gguf_writer_begin(q->w, path, flags, err)) != 0 ||
        (rc = emit_tensors(q, emit_gguf, q->w, progress, pctx, err)) != 0 ||
        (rc = qf_gguf_writer_finish(q->w, err)) != 0)
        goto done;
    if (manifest_path) {
        qf_digest_list d;
        const char *label = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if ((rc = qf_gguf_writer_digests(q->w, &d)) != 0)
            goto done;
        rc = qf_manifest_write(manifest_path, flags, label, &d, writer_tensor_name, q->w, err);
        if (rc)
            (void)remove(path); /* no model without its requested manifest */
    }
done:
    if (rc) { /* abandon the output now: the temp file goes with the writer */
        qf_gguf_writer_free(q->w);
        q->w = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------------
 * QFM output
 * ------------------------------------------------------------------- */

void qf_quantize_qfm_opts_init(qf_quantize_qfm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->qfm.codec = QF_QFM_ZSTD;
    o->qfm.level = QF_QFM_DEFAULT_LEVEL;
}

/* cJSON_Add*ToObject return NULL when out of memory. */
#define JSON_OK(x) do { if (!(x)) goto nomem; } while (0)

/* The recipe object (see qf_quantize_write_qfm) as compact JSON text (owned
 * by the caller: free). */
static int build_recipe(const qf_quantize *q, const qf_quantize_qfm_opts *o, char **out, qf_err *err)
{
    cJSON *r = cJSON_CreateObject(), *opt, *arr, *x;
    qf_affine a;
    const char *type = o->type_name;
    int64_t i;
    int rc = 0;

    *out = NULL;
    if (!r)
        goto nomem;
    if (!type)
        type = q->o.affine >= 0 && qf_affine_from_code(q->o.affine, &a) ? qf_affine_name(a)
                                                                        : qf_mix_name(q->o.ftype);
    JSON_OK(cJSON_AddStringToObject(r, "type", type ? type : "?"));
    JSON_OK(cJSON_AddNumberToObject(r, "ftype", q->o.ftype));
    JSON_OK(opt = cJSON_AddObjectToObject(r, "options"));
    if (q->o.pure)
        JSON_OK(cJSON_AddBoolToObject(opt, "pure", 1));
    if (q->o.leave_output_tensor)
        JSON_OK(cJSON_AddBoolToObject(opt, "leave_output_tensor", 1));
    if (q->o.allow_requantize)
        JSON_OK(cJSON_AddBoolToObject(opt, "allow_requantize", 1));
    if (q->o.output_tensor_type >= 0)
        JSON_OK(cJSON_AddStringToObject(opt, "output_tensor_type",
                                        qf_ggml_type_name(q->o.output_tensor_type)));
    if (q->o.token_embedding_type >= 0)
        JSON_OK(cJSON_AddStringToObject(opt, "token_embedding_type",
                                        qf_ggml_type_name(q->o.token_embedding_type)));
    if (q->o.n_tensor_types > 0) {
        JSON_OK(arr = cJSON_AddArrayToObject(opt, "tensor_types"));
        for (i = 0; i < q->o.n_tensor_types; i++) {
            JSON_OK(x = cJSON_CreateString(q->o.tensor_types[i]));
            cJSON_AddItemToArray(arr, x);
        }
    }
    if (q->im) {
        char hex[QF_SHA256_HEX];
        uint64_t size;
        const char *ds = qf_imatrix_dataset(q->im);
        cJSON *im;
        if ((rc = qf_qfm_hash_file(q->o.imatrix, hex, &size, err)) != 0)
            goto done;
        JSON_OK(im = cJSON_AddObjectToObject(r, "imatrix"));
        JSON_OK(cJSON_AddStringToObject(im, "file", q->o.imatrix));
        JSON_OK(cJSON_AddStringToObject(im, "sha256", hex));
        JSON_OK(cJSON_AddNumberToObject(im, "bytes", (double)size));
        JSON_OK(cJSON_AddNumberToObject(im, "entries", (double)qf_imatrix_count(q->im)));
        JSON_OK(cJSON_AddNumberToObject(im, "chunks", qf_imatrix_last_chunk(q->im)));
        if (ds && *ds)
            JSON_OK(cJSON_AddStringToObject(im, "dataset", ds));
    }
    if (o->budget_json) {
        cJSON *b = cJSON_Parse(o->budget_json);
        if (!b || !cJSON_IsObject(b)) {
            cJSON_Delete(b);
            rc = qf_err_set(err, QF_EINVAL, "recipe: the budget summary is not a JSON object");
            goto done;
        }
        cJSON_AddItemToObject(r, "budget", b);
    }
    JSON_OK(arr = cJSON_AddArrayToObject(r, "tensors"));
    for (i = 0; i < q->nt; i++) {
        const qf_quantize_tensor *t = &q->t[i];
        JSON_OK(x = cJSON_CreateObject());
        cJSON_AddItemToArray(arr, x);
        JSON_OK(cJSON_AddStringToObject(x, "name", t->name));
        JSON_OK(cJSON_AddStringToObject(x, "type", qf_quantize_type_name(t->type)));
        JSON_OK(cJSON_AddStringToObject(x, "from", qf_ggml_type_name(t->in_type)));
        if (t->fallback)
            JSON_OK(cJSON_AddStringToObject(x, "fallback_from", qf_quantize_type_name(t->wanted)));
        if (t->imatrix)
            JSON_OK(cJSON_AddBoolToObject(x, "imatrix", 1));
    }
    JSON_OK(*out = cJSON_PrintUnformatted(r));
    goto done;
nomem:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    cJSON_Delete(r);
    return rc;
}

int qf_quantize_write_qfm(qf_quantize *q, const char *path, int flags,
                          const qf_quantize_qfm_opts *o, qf_progress_fn progress, void *pctx,
                          qf_err *err)
{
    qf_qfm_writer *w = NULL;
    qf_gguf_writer *meta;
    qf_qfm_opts qo = o->qfm;
    const char *src_path = qf_source_path(q->src);
    char *recipe = NULL;
    int64_t i;
    int rc;

    if (q->used || !q->w)
        return qf_err_set(err, QF_EINVAL, "a quantization plan is written at most once");
    q->used = 1;
    if (qo.threads <= 0)
        qo.threads = q->o.threads;
    if ((rc = qf_qfm_writer_new(NULL, &qo, &w, err)) != 0)
        goto done;
    meta = qf_qfm_writer_metadata(w);
    for (i = 0; i < qf_gguf_writer_kv_count(q->w); i++) {
        qf_gguf_val v;
        qf_gguf_writer_kv_value(q->w, i, &v);
        if ((rc = qf_gguf_writer_set_raw(meta, qf_gguf_writer_kv_key(q->w, i), v.type, v.raw,
                                         v.raw_len, err)) != 0)
            goto done;
    }
    for (i = 0; i < q->nt; i++) {
        const qf_quantize_tensor *t = &q->t[i];
        if ((rc = qf_qfm_writer_add_tensor(w, t->name, qf_quantize_type_name(t->type), t->n_dims,
                                           t->ne, t->out_bytes, err)) != 0)
            goto done;
    }
    if ((rc = qf_qfm_set_basic_provenance(w, o->sources ? o->sources : &src_path,
                                          o->sources ? o->n_sources : 1, o->argc, o->argv,
                                          err)) != 0 ||
        (rc = build_recipe(q, o, &recipe, err)) != 0 ||
        (rc = qf_qfm_writer_set_provenance(w, "recipe", recipe, err)) != 0 ||
        (rc = qf_qfm_writer_begin(w, path, flags, err)) != 0 ||
        (rc = emit_tensors(q, emit_qfm, w, progress, pctx, err)) != 0 ||
        (rc = qf_qfm_writer_finish(w, err)) != 0)
        goto done;
    q->qfm_size = qf_qfm_writer_file_size(w);
done:
    free(recipe);
    qf_qfm_writer_free(w);
    return rc;
}
