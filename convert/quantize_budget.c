/*
 * convert/quantize_budget.c - per-tensor, per-type error measurement and the
 * JSON plan (see quantize_budget.h).
 */
#include "convert/quantize_budget.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/hash.h"
#include "formats/parallel.h"
#include "formats/types.h"
#include "quantize/budget.h"
#include "quantize/imatrix.h"
#include "quantize/mix.h"
#include "quantize/quant.h"

#define PLAN_FORMAT "qforge-budget-plan"
#define PLAN_VERSION 1
/* Elements handed to a thread at a time. */
#define TASK_ELEMS ((uint64_t)16384)

struct qf_budget_plan {
    qf_budget_tensor *t;
    char **names;          /* owned copies of the names */
    int64_t n;
    uint64_t sample_rows;
    char source_id[QF_SHA256_HEX];
    char imatrix_id[QF_SHA256_HEX]; /* "" without an imatrix */
    double sens[16];       /* calibrated sensitivity per kind, 0: the built-in one */
};

static const int DEFAULT_TYPES[] = {
    QF_GGML_Q2_K, QF_GGML_Q3_K, QF_GGML_Q4_K, QF_GGML_Q5_K, QF_GGML_Q6_K, QF_GGML_Q8_0,
    QF_GGML_IQ4_XS, QF_GGML_Q4_0, QF_GGML_Q4_1, QF_GGML_Q5_0, QF_GGML_Q5_1, QF_GGML_F16,
};
#define N_DEFAULT_TYPES ((int)(sizeof DEFAULT_TYPES / sizeof DEFAULT_TYPES[0]))

const int *qf_budget_default_types(int *n)
{
    *n = N_DEFAULT_TYPES;
    return DEFAULT_TYPES;
}

void qf_budget_opts_init(qf_budget_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->sample_rows = QF_BUDGET_SAMPLE_ROWS;
}

void qf_budget_plan_free(qf_budget_plan *p)
{
    if (!p)
        return;
    for (int64_t i = 0; i < p->n; i++)
        free(p->names[i]);
    free(p->names);
    free(p->t);
    free(p);
}

int64_t qf_budget_plan_count(const qf_budget_plan *p) { return p->n; }

const qf_budget_tensor *qf_budget_plan_at(const qf_budget_plan *p, int64_t i)
{
    return i >= 0 && i < p->n ? &p->t[i] : NULL;
}

uint64_t qf_budget_plan_sample_rows(const qf_budget_plan *p) { return p->sample_rows; }

static qf_budget_plan *plan_new(int64_t n)
{
    qf_budget_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->t = calloc((size_t)(n ? n : 1), sizeof *p->t);
    p->names = calloc((size_t)(n ? n : 1), sizeof *p->names);
    if (!p->t || !p->names) {
        qf_budget_plan_free(p);
        return NULL;
    }
    p->n = n;
    return p;
}

/* ---------------------------------------------------------------------
 * Identity: what a plan must match to be reused
 * ------------------------------------------------------------------- */

static int source_identity(const qf_source *src, char hex[QF_SHA256_HEX])
{
    qf_sha256 *h = qf_sha256_new();
    uint8_t d[QF_SHA256_LEN];
    int64_t i, n = qf_source_tensor_count(src);
    if (!h)
        return QF_ENOMEM;
    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(src, i);
        char line[96];
        int k = snprintf(line, sizeof line, "\t%d\t%u\t%llu\t%llu\t%llu\t%llu\n", st->type,
                         st->n_dims, (unsigned long long)st->ne[0], (unsigned long long)st->ne[1],
                         (unsigned long long)st->ne[2], (unsigned long long)st->ne[3]);
        qf_sha256_update(h, st->name, strlen(st->name));
        qf_sha256_update(h, line, (size_t)k);
    }
    qf_sha256_final(h, d);
    qf_sha256_free(h);
    for (i = 0; i < QF_SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

static int file_identity(const char *path, char hex[QF_SHA256_HEX], qf_err *err)
{
    qf_map *m = NULL;
    uint8_t d[QF_SHA256_LEN];
    int rc, i;
    if ((rc = qf_map_open(path, &m, err)) != 0)
        return rc;
    rc = qf_sha256_buf(qf_map_data(m), (size_t)qf_map_size(m), d);
    qf_map_close(m);
    if (rc)
        return qf_err_set(err, rc, "%s: cannot hash", path);
    for (i = 0; i < QF_SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* ---------------------------------------------------------------------
 * Scores
 * ------------------------------------------------------------------- */

/* How relative noise in a tensor's output reaches the logits, by kind:
 * mean KL divergence per unit of err/signal when only that kind is
 * quantized, relative to output.weight's, measured on tiny-llama-256 with
 * bench/budget_calibrate.sh (with and without its importance matrix: the
 * two agree within 25%, the mean is listed); docs/budget.md. The first
 * pattern found in the name wins; "other" takes the rest. */
static const struct {
    const char *pattern;
    int exact;
    double s;
} KINDS[] = {
    { "output.weight", 1, 1.0 },
    { "token_embd.weight", 1, 1.0 },
    { "attn_v.weight", 0, 0.135 },
    { "attn_k.weight", 0, 0.068 },
    { "attn_q.weight", 0, 0.05 },
    { "attn_output.weight", 0, 0.117 },
    { "attn_qkv.weight", 0, 0.085 },
    { "ffn_down", 0, 0.32 },
    { "ffn_gate", 0, 0.23 },
    { "ffn_up", 0, 0.14 },
    { "other", 1, 0.1 },
};
#define N_KINDS ((int)(sizeof KINDS / sizeof KINDS[0]))
_Static_assert(sizeof KINDS / sizeof KINDS[0] <= sizeof((qf_budget_plan *)0)->sens /
                                                     sizeof(double),
               "qf_budget_plan.sens holds every kind");

int qf_budget_kind_count(void) { return N_KINDS; }

const char *qf_budget_kind_name(int kind)
{
    return kind >= 0 && kind < N_KINDS ? KINDS[kind].pattern : NULL;
}

int qf_budget_kind_of(const char *name)
{
    for (int k = 0; k < N_KINDS - 1; k++)
        if (KINDS[k].exact ? strcmp(name, KINDS[k].pattern) == 0
                           : strstr(name, KINDS[k].pattern) != NULL)
            return k;
    return N_KINDS - 1;
}

double qf_budget_default_sensitivity(int kind)
{
    return kind >= 0 && kind < N_KINDS ? KINDS[kind].s : 0.0;
}

double qf_budget_plan_sensitivity(const qf_budget_plan *p, int kind)
{
    if (kind < 0 || kind >= N_KINDS)
        return 0.0;
    return p->sens[kind] > 0.0 ? p->sens[kind] : KINDS[kind].s;
}

void qf_budget_plan_set_sensitivity(qf_budget_plan *p, int kind, double s)
{
    if (kind >= 0 && kind < N_KINDS && isfinite(s) && s > 0.0)
        p->sens[kind] = s;
}

int qf_budget_plan_calibrated(const qf_budget_plan *p)
{
    for (int k = 0; k < N_KINDS; k++)
        if (p->sens[k] > 0.0)
            return 1;
    return 0;
}

double qf_budget_plan_score(const qf_budget_plan *p, int64_t i, int c)
{
    const qf_budget_tensor *t = qf_budget_plan_at(p, i);
    if (!t || c < 0 || c >= t->n_cand || t->fixed || !(t->signal > 0.0))
        return 0.0;
    return qf_budget_plan_sensitivity(p, qf_budget_kind_of(t->name)) * t->cand[c].err / t->signal;
}

/* ---------------------------------------------------------------------
 * Measurement
 * ------------------------------------------------------------------- */

typedef struct mjob {
    const qf_source *src;
    int64_t index;              /* source tensor */
    const qf_budget_tensor *t;
    const float *weights;       /* ne[0] * ne[2] importance weights, or NULL */
    const uint64_t *rows;       /* sampled rows */
    double *err;                /* [sampled][n_cand] */
    double *sig;                /* [sampled] */
    float *scratch;             /* per worker: ne0 F32 in, ne0 F32 back, ne0 * 4 bytes out */
    uint64_t scratch_floats;    /* per worker */
    const char *path;
    int bad_rc;
    char bad_msg[QF_ERR_MSG_MAX];
} mjob;

static int measure_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    mjob *j = ctx;
    const qf_budget_tensor *t = j->t;
    const uint64_t ne0 = t->ne[0];
    float *x = j->scratch + (uint64_t)worker * j->scratch_floats, *y = x + ne0;
    uint8_t *q = (uint8_t *)(y + ne0);
    int64_t s;
    int c, rc;

    for (s = begin; s < end; s++) {
        uint64_t row = j->rows[s], col;
        const float *w = j->weights;
        double sig = 0.0;
        qf_err le = { 0 };
        if (w && t->ne[2] > 1)
            w += ((row / t->ne[1]) % t->ne[2]) * ne0;
        if ((rc = qf_source_rows_f32(j->src, j->index, row, 1, x, &le)) != 0) {
            j->bad_rc = rc;
            snprintf(j->bad_msg, sizeof j->bad_msg, "tensor \"%s\": row %llu: %.300s", t->name,
                     (unsigned long long)row, le.msg[0] ? le.msg : qf_err_name(rc));
            return rc;
        }
        for (col = 0; col < ne0; col++) {
            if (!isfinite(x[col])) {
                j->bad_rc = QF_EINVAL;
                snprintf(j->bad_msg, sizeof j->bad_msg, "tensor \"%s\": row %llu: %s at column %llu",
                         t->name, (unsigned long long)row, isnan(x[col]) ? "NaN" : "infinity",
                         (unsigned long long)col);
                return QF_EINVAL;
            }
            sig += (double)(w ? w[col] : 1.0f) * (double)x[col] * (double)x[col];
        }
        j->sig[s] = sig;
        for (c = 0; c < t->n_cand; c++) {
            double e = 0.0;
            int type = t->cand[c].type;
            if ((rc = qf_quant_rows(type, x, q, 1, (int64_t)ne0, w)) != 0 ||
                (rc = qf_quant_dequantize(type, q, y, (int64_t)ne0)) != 0) {
                j->bad_rc = rc;
                snprintf(j->bad_msg, sizeof j->bad_msg, "tensor \"%s\": row %llu: cannot quantize to %s",
                         t->name, (unsigned long long)row, qf_ggml_type_name(type));
                return rc;
            }
            for (col = 0; col < ne0; col++) {
                double d = (double)x[col] - (double)y[col];
                e += (double)(w ? w[col] : 1.0f) * d * d;
            }
            j->err[(uint64_t)s * (uint64_t)t->n_cand + (uint64_t)c] = e;
        }
    }
    return 0;
}

static int is_float_type(int t) { return t == QF_GGML_F32 || t == QF_GGML_F16 || t == QF_GGML_BF16; }

/* The candidate types of a quantized tensor of row length ne0. */
static int candidates(const int *types, int n_types, uint64_t ne0, qf_budget_tensor *t,
                      uint64_t rows)
{
    int k_fit = ne0 % 256 == 0, i, n = 0;
    for (i = 0; i < n_types && n < QF_BUDGET_MAX_TYPES; i++) {
        int ty = types[i], dup = 0, c;
        const qf_ggml_traits *tr = qf_ggml_type_traits(ty);
        uint64_t rb;
        if (!tr || ne0 % tr->block_size != 0 || !qf_quant_can_quantize(ty))
            continue;
        /* the default list: K types for 256-multiples, legacy blocks and F16
         * for the other rows (an explicit list is taken as given) */
        if (types == DEFAULT_TYPES && k_fit &&
            (ty == QF_GGML_Q4_0 || ty == QF_GGML_Q4_1 || ty == QF_GGML_Q5_0 || ty == QF_GGML_Q5_1 ||
             ty == QF_GGML_F16))
            continue;
        for (c = 0; c < n; c++)
            dup |= t->cand[c].type == ty;
        if (dup || qf_ggml_row_size(ty, ne0, &rb) != 0)
            continue;
        t->cand[n].type = ty;
        t->cand[n].bytes = rb * rows;
        n++;
    }
    if (n == 0) {
        uint64_t rb = 0;
        (void)qf_ggml_row_size(QF_GGML_F16, ne0, &rb);
        t->cand[0].type = QF_GGML_F16;
        t->cand[0].bytes = rb * rows;
        n = 1;
    }
    return n;
}

int qf_budget_measure(const qf_source *src, const qf_budget_opts *opts, qf_budget_plan **out,
                      qf_progress_fn progress, void *pctx, qf_err *err)
{
    qf_budget_plan *p = NULL;
    qf_imatrix *im = NULL;
    qf_mix *mix = NULL;
    qf_mix_model model;
    qf_mix_opts mo = { QF_FTYPE_Q8_0, 1, 0, 0, -1, -1 };
    const int *types = opts->types;
    int n_types = opts->n_types, rc = 0;
    int64_t i, n = qf_source_tensor_count(src);
    uint64_t *rows = NULL;
    double *errs = NULL, *sigs = NULL;
    float *scratch = NULL;
    mjob j;

    *out = NULL;
    if (!types) {
        types = DEFAULT_TYPES;
        n_types = N_DEFAULT_TYPES;
    }
    if (n_types < 1 || opts->threads < 1 || opts->sample_rows < 1)
        return qf_err_set(err, QF_EINVAL, "budget: empty type list, or threads/sample rows < 1");
    if (!(p = plan_new(n)))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    p->sample_rows = opts->sample_rows;
    if ((rc = source_identity(src, p->source_id)) != 0) {
        rc = qf_err_set(err, rc, "out of memory");
        goto done;
    }
    if (opts->imatrix) {
        if ((rc = qf_imatrix_open(opts->imatrix, &im, err)) != 0 ||
            (rc = file_identity(opts->imatrix, p->imatrix_id, err)) != 0)
            goto done;
    }
    memset(&model, 0, sizeof model);
    model.arch = "";
    for (i = 0; i < n; i++)
        qf_mix_model_scan(&model, qf_source_tensor_at(src, i)->name);
    if ((rc = qf_mix_new(&mo, &model, &mix, err)) != 0)
        goto done;

    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(src, i);
        qf_budget_tensor *t = &p->t[i];
        qf_mix_choice ch;
        if (!(p->names[i] = strdup(st->name))) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        t->name = p->names[i];
        t->in_type = st->type;
        t->n_dims = st->n_dims;
        memcpy(t->ne, st->ne, sizeof t->ne);
        t->rows = st->n_rows;
        if ((rc = qf_mix_choose(mix, st->name, st->n_dims, st->ne, st->type, &ch, err)) != 0)
            goto done;
        if (ch.why == QF_MIX_KEPT) {
            t->fixed = 1;
            t->n_cand = 1;
            t->cand[0].type = st->type;
            t->cand[0].bytes = st->nbytes;
            continue;
        }
        if (!is_float_type(st->type)) {
            rc = qf_err_set(err, QF_EINVAL, "%s: tensor \"%s\" is stored as %s: a size budget "
                            "needs F32, F16 or BF16 weights", qf_source_path(src), st->name,
                            qf_ggml_type_name(st->type));
            goto done;
        }
        t->n_cand = candidates(types, n_types, st->ne[0], t, st->n_rows);
    }

    memset(&j, 0, sizeof j);
    for (i = 0; i < n; i++) {
        qf_budget_tensor *t = &p->t[i];
        uint64_t ns, s, ne0 = t->ne[0], task;
        int c;
        if (progress)
            progress(pctx, (uint64_t)i, (uint64_t)n);
        if (t->fixed)
            continue;
        ns = t->rows < opts->sample_rows ? t->rows : opts->sample_rows;
        if (ns == 0 || ne0 == 0) /* nothing to measure: every candidate scores 0 */
            continue;
        free(rows);
        free(errs);
        free(sigs);
        free(scratch);
        rows = malloc((size_t)ns * sizeof *rows);
        errs = malloc((size_t)ns * (size_t)t->n_cand * sizeof *errs);
        sigs = malloc((size_t)ns * sizeof *sigs);
        j.scratch_floats = 3 * ne0 + 64;
        scratch = malloc((size_t)opts->threads * (size_t)j.scratch_floats * sizeof *scratch);
        if (!rows || !errs || !sigs || !scratch) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        for (s = 0; s < ns; s++) /* evenly spaced; all rows when ns == rows */
            rows[s] = (uint64_t)((unsigned __int128)s * t->rows / ns);
        j.src = src;
        j.index = i;
        j.t = t;
        j.weights = NULL;
        if (im) {
            const qf_imatrix_entry *e = qf_imatrix_find(im, t->name);
            if (e && (uint64_t)e->n_values == ne0 * t->ne[2])
                j.weights = e->weights;
            else if (e && strcmp(t->name, "token_embd.weight") != 0) {
                rc = qf_err_set(err, QF_EINVAL, "%s: entry \"%s\" has %lld values, the tensor "
                                "needs %llu (columns x experts)", opts->imatrix, t->name,
                                (long long)e->n_values, (unsigned long long)(ne0 * t->ne[2]));
                goto done;
            }
        }
        j.rows = rows;
        j.err = errs;
        j.sig = sigs;
        j.scratch = scratch;
        j.bad_rc = 0;
        task = TASK_ELEMS / ne0 ? TASK_ELEMS / ne0 : 1;
        rc = qf_parallel_for(opts->threads, (int64_t)ns, (int64_t)task, measure_rows, &j);
        qf_source_release(src, i);
        if (rc) {
            rc = qf_err_set(err, rc, "%s: %s", qf_source_path(src),
                            j.bad_msg[0] ? j.bad_msg : qf_err_name(rc));
            goto done;
        }
        t->sampled = ns;
        t->signal = 0.0;
        for (s = 0; s < ns; s++)
            t->signal += sigs[s];
        t->signal *= (double)t->rows / (double)ns;
        for (c = 0; c < t->n_cand; c++) {
            double e = 0.0;
            for (s = 0; s < ns; s++)
                e += errs[s * (uint64_t)t->n_cand + (uint64_t)c];
            t->cand[c].err = e * (double)t->rows / (double)ns;
        }
    }
    if (progress)
        progress(pctx, (uint64_t)n, (uint64_t)n);
    *out = p;
    p = NULL;
done:
    free(rows);
    free(errs);
    free(sigs);
    free(scratch);
    qf_mix_free(mix);
    qf_imatrix_close(im);
    qf_budget_plan_free(p);
    return rc;
}

/* ---------------------------------------------------------------------
 * Solving
 * ------------------------------------------------------------------- */

int qf_budget_plan_solve(const qf_budget_plan *p, uint64_t data_budget, uint32_t align,
                         uint64_t allowed, int *types, qf_budget_solution *sol, qf_err *err)
{
    qf_budget_item *items = NULL;
    uint64_t *bytes = NULL;
    double *errs = NULL;
    int *map = NULL, *choice = NULL, rc = 0;
    int64_t i;
    qf_budget_result r;

    memset(sol, 0, sizeof *sol);
    if (align == 0 || (align & (align - 1)))
        return qf_err_set(err, QF_EINVAL, "alignment %u is not a power of two", align);
    items = calloc((size_t)(p->n ? p->n : 1), sizeof *items);
    bytes = calloc((size_t)(p->n ? p->n : 1) * QF_BUDGET_MAX_TYPES, sizeof *bytes);
    errs = calloc((size_t)(p->n ? p->n : 1) * QF_BUDGET_MAX_TYPES, sizeof *errs);
    map = calloc((size_t)(p->n ? p->n : 1) * QF_BUDGET_MAX_TYPES, sizeof *map);
    choice = calloc((size_t)(p->n ? p->n : 1), sizeof *choice);
    if (!items || !bytes || !errs || !map || !choice) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < p->n; i++) {
        const qf_budget_tensor *t = &p->t[i];
        uint64_t *b = bytes + i * QF_BUDGET_MAX_TYPES;
        double *e = errs + i * QF_BUDGET_MAX_TYPES;
        int *m = map + i * QF_BUDGET_MAX_TYPES, k = 0, c, pass;
        for (pass = 0; pass < 2 && k == 0; pass++) /* pass 1: nothing allowed, take all */
            for (c = 0; c < t->n_cand; c++) {
                if (!pass && !t->fixed && t->cand[c].type < 64 && !(allowed >> t->cand[c].type & 1))
                    continue;
                b[k] = (t->cand[c].bytes + align - 1) / align * align;
                e[k] = qf_budget_plan_score(p, i, c);
                m[k] = c;
                k++;
            }
        items[i].n = k;
        items[i].bytes = b;
        items[i].err = e;
    }
    rc = qf_budget_solve(items, p->n, data_budget, choice, &r, err);
    sol->min_bytes = r.min_bytes;
    sol->max_bytes = r.max_bytes;
    if (rc)
        goto done;
    for (i = 0; i < p->n; i++)
        types[i] = p->t[i].cand[map[i * QF_BUDGET_MAX_TYPES + choice[i]]].type;
    sol->data_bytes = r.bytes;
    sol->score = r.err;
    sol->exact = r.exact;
done:
    free(items);
    free(bytes);
    free(errs);
    free(map);
    free(choice);
    return rc;
}

/* ---------------------------------------------------------------------
 * The JSON plan
 * ------------------------------------------------------------------- */

/* A number written with 17 significant digits, which read back gives the
 * same double (cJSON's own printing settles for 15 digits when they come
 * within an epsilon). */
static void add_num(cJSON *o, const char *key, double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddRawToObject(o, key, buf);
}

int qf_budget_plan_save(const qf_budget_plan *p, const char *path, int flags, qf_err *err)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    char *text = NULL;
    qf_out *o = NULL;
    int64_t i;
    int rc = 0, c;
    uint32_t d;

    if (!root)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    cJSON_AddStringToObject(root, "format", PLAN_FORMAT);
    add_num(root, "version", PLAN_VERSION);
    cJSON_AddStringToObject(root, "source", p->source_id);
    if (p->imatrix_id[0])
        cJSON_AddStringToObject(root, "imatrix", p->imatrix_id);
    else
        cJSON_AddNullToObject(root, "imatrix");
    add_num(root, "sample_rows", (double)p->sample_rows);
    if (qf_budget_plan_calibrated(p)) {
        cJSON *so = cJSON_AddObjectToObject(root, "sensitivity");
        for (c = 0; so && c < N_KINDS; c++)
            if (p->sens[c] > 0.0)
                add_num(so, KINDS[c].pattern, p->sens[c]);
    }
    arr = cJSON_AddArrayToObject(root, "tensors");
    for (i = 0; arr && i < p->n; i++) {
        const qf_budget_tensor *t = &p->t[i];
        cJSON *o_t = cJSON_CreateObject(), *sh, *ca;
        if (!o_t)
            break;
        cJSON_AddItemToArray(arr, o_t);
        cJSON_AddStringToObject(o_t, "name", t->name);
        sh = cJSON_AddArrayToObject(o_t, "shape");
        for (d = 0; sh && d < t->n_dims; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d])); /* exact: < 2^53 */
        cJSON_AddStringToObject(o_t, "in_type", qf_ggml_type_name(t->in_type));
        cJSON_AddBoolToObject(o_t, "fixed", t->fixed);
        add_num(o_t, "rows", (double)t->rows);
        add_num(o_t, "sampled", (double)t->sampled);
        add_num(o_t, "signal", t->signal);
        ca = cJSON_AddArrayToObject(o_t, "candidates");
        for (c = 0; ca && c < t->n_cand; c++) {
            cJSON *oc = cJSON_CreateObject();
            if (!oc)
                break;
            cJSON_AddItemToArray(ca, oc);
            cJSON_AddStringToObject(oc, "type", qf_ggml_type_name(t->cand[c].type));
            add_num(oc, "bytes", (double)t->cand[c].bytes);
            add_num(oc, "err", t->cand[c].err);
        }
    }
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if ((rc = qf_out_open(path, flags, &o, err)) == 0) {
        if ((rc = qf_out_write(o, text, strlen(text), err)) == 0 &&
            (rc = qf_out_write(o, "\n", 1, err)) == 0)
            rc = qf_out_commit(o, err); /* frees o */
        else
            qf_out_close(o);
    }
    cJSON_free(text);
    return rc;
}

/* A non-negative integer that a double holds exactly. */
static int json_u64(const cJSON *o, const char *key, uint64_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 9007199254740992.0 ||
        x->valuedouble != floor(x->valuedouble))
        return -1;
    *v = (uint64_t)x->valuedouble;
    return 0;
}

static int json_f64(const cJSON *o, const char *key, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < 0)
        return -1;
    *v = x->valuedouble;
    return 0;
}

static int parse_plan(const cJSON *root, const char *path, qf_budget_plan **out, qf_err *err)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
    const cJSON *imx = cJSON_GetObjectItemCaseSensitive(root, "imatrix");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "tensors"), *e;
    const cJSON *sens = cJSON_GetObjectItemCaseSensitive(root, "sensitivity");
    qf_budget_plan *p;
    uint64_t ver, sr;
    int64_t i = 0;

    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, PLAN_FORMAT) != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: not a qforge budget plan", path);
    if (json_u64(root, "version", &ver) != 0 || ver != PLAN_VERSION)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: plan version is not %d", path, PLAN_VERSION);
    if (!cJSON_IsString(src) || strlen(src->valuestring) != QF_SHA256_HEX - 1 ||
        !(cJSON_IsNull(imx) || (cJSON_IsString(imx) && strlen(imx->valuestring) == QF_SHA256_HEX - 1)) ||
        json_u64(root, "sample_rows", &sr) != 0 || sr < 1 || !cJSON_IsArray(arr))
        return qf_err_set(err, QF_EFORMAT, "%s: \"source\", \"imatrix\", \"sample_rows\" or "
                          "\"tensors\" missing or malformed", path);
    if (!(p = plan_new(cJSON_GetArraySize(arr))))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    p->sample_rows = sr;
    if (cJSON_IsObject(sens)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, sens) {
            int k;
            for (k = 0; k < N_KINDS; k++)
                if (x->string && strcmp(x->string, KINDS[k].pattern) == 0)
                    break;
            if (k == N_KINDS || !cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble <= 0) {
                qf_budget_plan_free(p);
                return qf_err_set(err, QF_EFORMAT, "%s: \"sensitivity\": bad entry \"%s\"", path,
                                  x->string ? x->string : "");
            }
            p->sens[k] = x->valuedouble;
        }
    }
    memcpy(p->source_id, src->valuestring, QF_SHA256_HEX);
    if (cJSON_IsString(imx))
        memcpy(p->imatrix_id, imx->valuestring, QF_SHA256_HEX);
    cJSON_ArrayForEach(e, arr) {
        qf_budget_tensor *t = &p->t[i];
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(e, "in_type");
        const cJSON *fx = cJSON_GetObjectItemCaseSensitive(e, "fixed");
        const cJSON *ca = cJSON_GetObjectItemCaseSensitive(e, "candidates"), *x;
        uint32_t d = 0;
        int c = 0;
        if (!cJSON_IsString(nm) || !cJSON_IsArray(sh) || cJSON_GetArraySize(sh) < 1 ||
            cJSON_GetArraySize(sh) > 4 || !cJSON_IsString(it) || !cJSON_IsBool(fx) ||
            !cJSON_IsArray(ca) || cJSON_GetArraySize(ca) < 1 ||
            cJSON_GetArraySize(ca) > QF_BUDGET_MAX_TYPES || json_u64(e, "rows", &t->rows) != 0 ||
            json_u64(e, "sampled", &t->sampled) != 0 || json_f64(e, "signal", &t->signal) != 0 ||
            (t->in_type = qf_ggml_type_from_name(it->valuestring)) < 0 ||
            !(p->names[i] = strdup(nm->valuestring)))
            goto bad;
        t->name = p->names[i];
        t->fixed = cJSON_IsTrue(fx);
        t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = 1;
        cJSON_ArrayForEach(x, sh) {
            uint64_t v;
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble != floor(x->valuedouble))
                goto bad;
            v = (uint64_t)x->valuedouble;
            t->ne[d++] = v;
        }
        t->n_dims = d;
        cJSON_ArrayForEach(x, ca) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(x, "type");
            if (!cJSON_IsString(ty) || (t->cand[c].type = qf_ggml_type_from_name(ty->valuestring)) < 0 ||
                json_u64(x, "bytes", &t->cand[c].bytes) != 0 || json_f64(x, "err", &t->cand[c].err) != 0)
                goto bad;
            c++;
        }
        t->n_cand = c;
        i++;
        continue;
    bad:
        qf_budget_plan_free(p);
        return qf_err_set(err, QF_EFORMAT, "%s: tensor %lld: malformed entry", path, (long long)i);
    }
    *out = p;
    return 0;
}

int qf_budget_plan_load(const char *path, const qf_source *src, const char *imatrix,
                        qf_budget_plan **out, qf_err *err)
{
    qf_map *m = NULL;
    cJSON *root = NULL;
    qf_budget_plan *p = NULL;
    char id[QF_SHA256_HEX];
    int rc;
    int64_t i, n;

    *out = NULL;
    if ((rc = qf_map_open(path, &m, err)) != 0)
        return rc;
    root = cJSON_ParseWithLength((const char *)qf_map_data(m), (size_t)qf_map_size(m));
    if (!root) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid JSON", path);
        goto done;
    }
    if ((rc = parse_plan(root, path, &p, err)) != 0)
        goto done;
    n = qf_source_tensor_count(src);
    if (p->n != n) {
        rc = qf_err_set(err, QF_EMISMATCH, "%s: measured on another model (%lld tensors, %s has "
                        "%lld): measure again", path, (long long)p->n, qf_source_path(src),
                        (long long)n);
        goto done;
    }
    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(src, i);
        const qf_budget_tensor *t = &p->t[i];
        if (strcmp(st->name, t->name) != 0 || st->type != t->in_type ||
            memcmp(st->ne, t->ne, sizeof t->ne) != 0) {
            rc = qf_err_set(err, QF_EMISMATCH, "%s: measured on another model (tensor %lld is "
                            "\"%s\" there, \"%s\" in %s): measure again", path, (long long)i,
                            t->name, st->name, qf_source_path(src));
            goto done;
        }
    }
    if ((rc = source_identity(src, id)) != 0) {
        rc = qf_err_set(err, rc, "out of memory");
        goto done;
    }
    if (strcmp(id, p->source_id) != 0) {
        rc = qf_err_set(err, QF_EMISMATCH, "%s: measured on another model (its tensor list "
                        "differs from %s): measure again", path, qf_source_path(src));
        goto done;
    }
    id[0] = '\0';
    if (imatrix && (rc = file_identity(imatrix, id, err)) != 0)
        goto done;
    if (strcmp(id, p->imatrix_id) != 0) {
        rc = qf_err_set(err, QF_EMISMATCH, "%s: measured %s, but %s: measure again", path,
                        p->imatrix_id[0] ? "with an importance matrix" : "without an importance matrix",
                        !imatrix ? "none is given" : p->imatrix_id[0] ? "--imatrix names another one"
                                                                       : "--imatrix is given");
        goto done;
    }
    *out = p;
    p = NULL;
done:
    cJSON_Delete(root);
    qf_map_close(m);
    qf_budget_plan_free(p);
    return rc;
}
