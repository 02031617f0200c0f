/*
 * quantize/imatrix.c - the imatrix reader: the legacy binary format and the
 * GGUF format (both in quantize/imatrix.h and docs/imatrix.md).
 *
 * Everything is parsed through a bounds-checked cursor and copied out, so
 * the reader holds no reference to the file or buffer after open returns.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/types.h"
#include "quantize/imatrix.h"

struct qf_imatrix {
    qf_imatrix_entry *entries;
    int64_t n;
    int32_t last_chunk;  /* -1 without trailer */
    char *dataset;       /* NULL without trailer */
    float *weights;      /* the weights of all entries, back to back */
    char *names;         /* the names of all entries, each NUL-terminated */
    const qf_imatrix_entry **sorted; /* entries by name, for look-ups */
};

void qf_imatrix_close(qf_imatrix *im)
{
    if (!im)
        return;
    free(im->entries);
    free(im->sorted);
    free(im->weights);
    free(im->names);
    free(im->dataset);
    free(im);
}

static int read_i32(qf_cur *c, int32_t *v)
{
    uint32_t u;
    int rc = qf_cur_u32(c, &u);
    if (rc == 0)
        memcpy(v, &u, sizeof *v);
    return rc;
}

static float f32_at(const uint8_t *p)
{
    uint32_t u = qf_le32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Smallest possible entry: name_len, 1 name byte, ncall, n_values, 1 value. */
#define MIN_ENTRY_BYTES (4 + 1 + 4 + 4 + 4)

/*
 * One pass over the n entries at the cursor. With im == NULL it validates
 * everything and counts the values and name bytes to allocate; with im set
 * (second pass, over input already validated) it fills im's arrays.
 */
static int scan_entries(qf_cur *c, int32_t n, const char *name, qf_imatrix *im,
                        uint64_t *n_weights, uint64_t *n_name_bytes, qf_err *err)
{
    uint64_t nw = 0, nn = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t len, ncall, nval;
        const uint8_t *nm, *vals;
        if (read_i32(c, &len) != 0)
            return qf_err_set(err, QF_ETRUNC, "%s: entry %d: file ends before its name length",
                              name, i + 1);
        if (len < 1 || len > QF_IMATRIX_MAX_NAME)
            return qf_err_set(err, QF_EFORMAT, "%s: entry %d: name length %d not in 1..%d", name,
                              i + 1, len, QF_IMATRIX_MAX_NAME);
        if (qf_cur_bytes(c, (uint64_t)len, &nm) != 0)
            return qf_err_set(err, QF_ETRUNC,
                              "%s: entry %d: name of %d bytes but only %llu bytes left", name,
                              i + 1, len, (unsigned long long)qf_cur_left(c));
        if (memchr(nm, 0, (size_t)len) || !qf_utf8_valid((const char *)nm, (size_t)len))
            return qf_err_set(err, QF_EFORMAT, "%s: entry %d: name is not NUL-free UTF-8", name,
                              i + 1);
        if (read_i32(c, &ncall) != 0 || read_i32(c, &nval) != 0)
            return qf_err_set(err, QF_ETRUNC, "%s: entry \"%.*s\": file ends in its header",
                              name, len, (const char *)nm);
        if (ncall < 0)
            return qf_err_set(err, QF_EFORMAT, "%s: entry \"%.*s\": negative ncall %d", name, len,
                              (const char *)nm, ncall);
        if (nval < 1)
            return qf_err_set(err, QF_EFORMAT, "%s: entry \"%.*s\": value count %d < 1", name,
                              len, (const char *)nm, nval);
        if (qf_cur_bytes(c, (uint64_t)nval * 4, &vals) != 0)
            return qf_err_set(err, QF_ETRUNC,
                              "%s: entry \"%.*s\": %d values (%llu bytes) but only %llu bytes left",
                              name, len, (const char *)nm, nval, (unsigned long long)nval * 4,
                              (unsigned long long)qf_cur_left(c));
        if (!im) {
            for (int32_t k = 0; k < nval; k++) {
                const float v = f32_at(vals + 4 * (size_t)k);
                if (!isfinite(v) || v < 0)
                    return qf_err_set(err, QF_EFORMAT,
                                      "%s: entry \"%.*s\": value %d is %g (must be finite, >= 0)",
                                      name, len, (const char *)nm, k, (double)v);
            }
        } else {
            qf_imatrix_entry *e = &im->entries[i];
            float *w = im->weights + nw;
            char *dst = im->names + nn;
            for (int32_t k = 0; k < nval; k++) {
                w[k] = f32_at(vals + 4 * (size_t)k);
                if (ncall > 0)
                    w[k] /= (float)ncall; /* llama-quantize: v /= ncall, in float */
            }
            memcpy(dst, nm, (size_t)len);
            dst[len] = 0;
            e->name = dst;
            e->ncall = ncall;
            e->n_values = nval;
            e->weights = w;
        }
        nw += (uint64_t)nval;
        nn += (uint64_t)len + 1;
    }
    if (n_weights)
        *n_weights = nw;
    if (n_name_bytes)
        *n_name_bytes = nn;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const qf_imatrix_entry *const *ea = a, *const *eb = b;
    return strcmp((*ea)->name, (*eb)->name);
}

/* Sort the look-up index (im->sorted, allocated with n slots) and refuse
 * duplicate names. */
static int finish_index(qf_imatrix *im, const char *name, qf_err *err)
{
    for (int64_t i = 0; i < im->n; i++)
        im->sorted[i] = &im->entries[i];
    qsort(im->sorted, (size_t)im->n, sizeof *im->sorted, cmp_entry);
    for (int64_t i = 1; i < im->n; i++)
        if (strcmp(im->sorted[i]->name, im->sorted[i - 1]->name) == 0)
            return qf_err_set(err, QF_EFORMAT, "%s: entry \"%s\" appears twice", name,
                              im->sorted[i]->name);
    return 0;
}

/* ---------------------------------------------------------------------
 * GGUF imatrix
 * ------------------------------------------------------------------- */

static const char SUMS_SUFFIX[] = ".in_sum2";
static const char COUNTS_SUFFIX[] = ".counts";

/* 1 if s ends with suffix; *base_len gets the length before it. */
static int has_suffix(const char *s, const char *suffix, size_t *base_len)
{
    size_t n = strlen(s), k = strlen(suffix);
    if (n <= k || memcmp(s + n - k, suffix, k) != 0)
        return 0;
    *base_len = n - k;
    return 1;
}

/* The "<base>.counts" tensor of "<base>.in_sum2", or -1. */
static int64_t counts_for(const qf_gguf *g, const char *sums_name, size_t base_len)
{
    char buf[QF_GGUF_MAX_NAME + sizeof COUNTS_SUFFIX];
    if (base_len >= QF_GGUF_MAX_NAME)
        return -1;
    memcpy(buf, sums_name, base_len);
    memcpy(buf + base_len, COUNTS_SUFFIX, sizeof COUNTS_SUFFIX);
    return qf_gguf_find_tensor(g, buf);
}

/*
 * Newer llama-imatrix output: per matrix, "<name>.in_sum2" (F32, ne =
 * [n_cols, n_mat]: sums of squared activations) and "<name>.counts" (F32,
 * ne = [1, n_mat]: how many activations each sum has). Weights, as
 * llama-quantize computes them: sum / count, or 1 where count is 0.
 * Other tensors are ignored; a sums tensor without counts (or the reverse)
 * is an error, as it is for llama-quantize.
 */
static int parse_gguf(const uint8_t *data, uint64_t size, const char *name, qf_imatrix **out,
                      qf_err *err)
{
    qf_gguf *g = NULL;
    qf_imatrix *im = NULL;
    int rc = qf_gguf_open_buffer(data, size, name, &g, err);
    if (rc != 0)
        return rc;
    const int64_t nt = qf_gguf_tensor_count(g);
    int64_t n = 0;
    uint64_t n_weights = 0, n_name_bytes = 0;
    for (int64_t i = 0; i < nt; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        size_t bl;
        if (has_suffix(t->name, COUNTS_SUFFIX, &bl)) {
            char buf[QF_GGUF_MAX_NAME + sizeof SUMS_SUFFIX];
            memcpy(buf, t->name, bl);
            memcpy(buf + bl, SUMS_SUFFIX, sizeof SUMS_SUFFIX);
            if (qf_gguf_find_tensor(g, buf) < 0) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" has no \"%s\"", name,
                                t->name, buf);
                goto done;
            }
            continue;
        }
        if (!has_suffix(t->name, SUMS_SUFFIX, &bl))
            continue;
        const int64_t ci = counts_for(g, t->name, bl);
        if (ci < 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" has no counts tensor", name,
                            t->name);
            goto done;
        }
        const qf_gguf_tensor *ct = qf_gguf_tensor_at(g, ci);
        if (t->type != QF_GGML_F32 || ct->type != QF_GGML_F32 || t->n_dims > 2 ||
            ct->n_elements != t->ne[1] || ct->ne[0] != 1) {
            rc = qf_err_set(err, QF_EFORMAT,
                            "%s: tensor \"%s\": expected F32 sums [n_cols, n_mat] and F32 "
                            "counts [1, n_mat]",
                            name, t->name);
            goto done;
        }
        if (t->n_elements > INT32_MAX) {
            rc = qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": %llu values is too many", name,
                            t->name, (unsigned long long)t->n_elements);
            goto done;
        }
        for (uint64_t k = 0; k < t->n_elements; k++) {
            const float v = f32_at(t->data + 4 * k);
            if (!isfinite(v) || v < 0) {
                rc = qf_err_set(err, QF_EFORMAT,
                                "%s: tensor \"%s\": value %llu is %g (must be finite, >= 0)",
                                name, t->name, (unsigned long long)k, (double)v);
                goto done;
            }
        }
        for (uint64_t k = 0; k < ct->n_elements; k++) {
            const float v = f32_at(ct->data + 4 * k);
            if (!isfinite(v) || v < 0) {
                rc = qf_err_set(err, QF_EFORMAT,
                                "%s: tensor \"%s\": count %llu is %g (must be finite, >= 0)",
                                name, ct->name, (unsigned long long)k, (double)v);
                goto done;
            }
        }
        n++;
        n_weights += t->n_elements;
        n_name_bytes += bl + 1;
    }
    if (n < 1) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: GGUF file holds no \"*%s\" tensors: not an imatrix",
                        name, SUMS_SUFFIX);
        goto done;
    }

    im = calloc(1, sizeof *im);
    if (!im)
        goto nomem;
    im->n = n;
    im->last_chunk = -1;
    im->entries = calloc((size_t)n, sizeof *im->entries);
    im->weights = malloc((size_t)n_weights * sizeof *im->weights);
    im->names = malloc((size_t)n_name_bytes);
    im->sorted = malloc((size_t)n * sizeof *im->sorted);
    if (!im->entries || !im->weights || !im->names || !im->sorted)
        goto nomem;

    uint64_t nw = 0, nn = 0;
    int64_t e = 0;
    for (int64_t i = 0; i < nt; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        size_t bl;
        if (!has_suffix(t->name, SUMS_SUFFIX, &bl))
            continue;
        const qf_gguf_tensor *ct = qf_gguf_tensor_at(g, counts_for(g, t->name, bl));
        const uint64_t ne0 = t->ne[0], nmat = t->ne[1];
        float *w = im->weights + nw;
        for (uint64_t j = 0; j < nmat; j++) {
            const float count = f32_at(ct->data + 4 * j);
            for (uint64_t k = 0; k < ne0; k++)
                w[j * ne0 + k] = count > 0.0f ? f32_at(t->data + 4 * (j * ne0 + k)) / count : 1.0f;
        }
        char *dst = im->names + nn;
        memcpy(dst, t->name, bl);
        dst[bl] = 0;
        im->entries[e].name = dst;
        im->entries[e].ncall = 0;
        im->entries[e].n_values = (int64_t)t->n_elements;
        im->entries[e].weights = w;
        e++;
        nw += t->n_elements;
        nn += bl + 1;
    }

    uint64_t chunks;
    qf_err probe = { 0 };
    if (qf_gguf_get_uint(g, "imatrix.chunk_count", &chunks, &probe) == 0 && chunks <= INT32_MAX)
        im->last_chunk = (int32_t)chunks;
    const int64_t dk = qf_gguf_find_key(g, "imatrix.datasets");
    qf_gguf_val v;
    if (dk >= 0 && qf_gguf_kv_value(g, dk, &v) == 0 && v.type == QF_GGUF_ARRAY &&
        v.arr_type == QF_GGUF_STRING) {
        qf_gguf_iter it;
        qf_gguf_val s;
        qf_gguf_iter_init(&it, &v);
        if (qf_gguf_iter_next(&it, &s) == 1 && !memchr(s.str, 0, (size_t)s.str_len)) {
            im->dataset = malloc((size_t)s.str_len + 1);
            if (!im->dataset)
                goto nomem;
            memcpy(im->dataset, s.str, (size_t)s.str_len);
            im->dataset[s.str_len] = 0;
        }
    }
    rc = finish_index(im, name, err);
    if (rc == 0) {
        *out = im;
        im = NULL;
    }
    goto done;

nomem:
    rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
done:
    qf_imatrix_close(im);
    qf_gguf_close(g);
    return rc;
}

static int parse(const uint8_t *data, uint64_t size, const char *name, qf_imatrix **out,
                 qf_err *err)
{
    qf_imatrix *im = NULL;
    int rc;
    *out = NULL;
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0)
        return parse_gguf(data, size, name, out, err);
    qf_cur c = qf_cur_make(data, size);
    int32_t n;
    if (read_i32(&c, &n) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: too short for an imatrix (%llu bytes)", name,
                          (unsigned long long)size);
    if (n < 1)
        return qf_err_set(err, QF_EFORMAT, "%s: entry count %d < 1", name, n);
    if ((uint64_t)n > qf_cur_left(&c) / MIN_ENTRY_BYTES)
        return qf_err_set(err, QF_ETRUNC, "%s: %d entries cannot fit in the %llu bytes left",
                          name, n, (unsigned long long)qf_cur_left(&c));

    /* pass 1: validate everything, count what to allocate */
    uint64_t n_weights = 0, n_name_bytes = 0;
    qf_cur c1 = c;
    if ((rc = scan_entries(&c1, n, name, NULL, &n_weights, &n_name_bytes, err)) != 0)
        return rc;

    int32_t last_chunk = -1;
    const uint8_t *ds = NULL;
    int32_t ds_len = 0;
    if (qf_cur_left(&c1) > 0) {
        if (read_i32(&c1, &last_chunk) != 0 || read_i32(&c1, &ds_len) != 0)
            return qf_err_set(err, QF_ETRUNC, "%s: %llu stray bytes after the last entry", name,
                              (unsigned long long)qf_cur_left(&c1));
        if (ds_len < 0)
            return qf_err_set(err, QF_EFORMAT, "%s: dataset name length %d < 0", name, ds_len);
        if (qf_cur_bytes(&c1, (uint64_t)ds_len, &ds) != 0)
            return qf_err_set(err, QF_ETRUNC,
                              "%s: dataset name of %d bytes but only %llu bytes left", name,
                              ds_len, (unsigned long long)qf_cur_left(&c1));
        if (memchr(ds, 0, (size_t)ds_len))
            return qf_err_set(err, QF_EFORMAT, "%s: dataset name holds a NUL byte", name);
        if (qf_cur_left(&c1) != 0)
            return qf_err_set(err, QF_EFORMAT, "%s: %llu bytes after the dataset name", name,
                              (unsigned long long)qf_cur_left(&c1));
    }

    im = calloc(1, sizeof *im);
    if (!im)
        goto nomem;
    im->n = n;
    im->last_chunk = last_chunk;
    im->entries = calloc((size_t)n, sizeof *im->entries);
    im->weights = malloc((size_t)n_weights * sizeof *im->weights);
    im->names = malloc((size_t)n_name_bytes);
    if (!im->entries || !im->weights || !im->names)
        goto nomem;
    if (ds) {
        im->dataset = malloc((size_t)ds_len + 1);
        if (!im->dataset)
            goto nomem;
        memcpy(im->dataset, ds, (size_t)ds_len);
        im->dataset[ds_len] = 0;
    }

    /* pass 2: copy (cannot fail: the input was validated) */
    scan_entries(&c, n, name, im, NULL, NULL, NULL);

    im->sorted = malloc((size_t)n * sizeof *im->sorted);
    if (!im->sorted)
        goto nomem;
    if ((rc = finish_index(im, name, err)) != 0) {
        qf_imatrix_close(im);
        return rc;
    }
    *out = im;
    return 0;

nomem:
    qf_imatrix_close(im);
    return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
}

int qf_imatrix_open_buffer(const void *buf, uint64_t size, const char *name, qf_imatrix **out,
                           qf_err *err)
{
    if (!out || (!buf && size))
        return qf_err_set(err, QF_EINVAL, "qf_imatrix_open_buffer: bad arguments");
    return parse(buf, size, name ? name : "imatrix", out, err);
}

int qf_imatrix_open(const char *path, qf_imatrix **out, qf_err *err)
{
    qf_map *m = NULL;
    if (!out || !path)
        return qf_err_set(err, QF_EINVAL, "qf_imatrix_open: bad arguments");
    *out = NULL;
    int rc = qf_map_open(path, &m, err);
    if (rc != 0)
        return rc;
    rc = parse(qf_map_data(m), qf_map_size(m), path, out, err);
    qf_map_close(m);
    return rc;
}

int64_t qf_imatrix_count(const qf_imatrix *im) { return im ? im->n : 0; }

const qf_imatrix_entry *qf_imatrix_at(const qf_imatrix *im, int64_t i)
{
    return im && i >= 0 && i < im->n ? &im->entries[i] : NULL;
}

const qf_imatrix_entry *qf_imatrix_find(const qf_imatrix *im, const char *name)
{
    if (!im || !name)
        return NULL;
    qf_imatrix_entry key = { 0 };
    key.name = name;
    const qf_imatrix_entry *pkey = &key;
    const qf_imatrix_entry *const *hit =
        bsearch(&pkey, im->sorted, (size_t)im->n, sizeof *im->sorted, cmp_entry);
    return hit ? *hit : NULL;
}

const float *qf_imatrix_weights(const qf_imatrix *im, const char *name, int64_t n_per_row,
                                int *mismatch)
{
    if (mismatch)
        *mismatch = 0;
    const qf_imatrix_entry *e = qf_imatrix_find(im, name);
    if (!e)
        return NULL;
    if (e->n_values != n_per_row) {
        if (mismatch)
            *mismatch = 1;
        return NULL;
    }
    return e->weights;
}

int32_t qf_imatrix_last_chunk(const qf_imatrix *im) { return im ? im->last_chunk : -1; }

const char *qf_imatrix_dataset(const qf_imatrix *im) { return im ? im->dataset : NULL; }

/* ---------------------------------------------------------------------
 * Collecting
 * ------------------------------------------------------------------- */

typedef struct {
    char *name;
    float *sums;    /* (n_cols) */
    int64_t n_cols;
    int64_t count;  /* rows summed */
    int32_t ncall;
} acc_entry;

struct qf_imatrix_acc {
    acc_entry *e;   /* (n) in first-added order */
    int64_t n, cap;
    float *scratch; /* (scratch_cap) a sum being updated */
    int64_t scratch_cap;
};

int qf_imatrix_acc_new(qf_imatrix_acc **out, qf_err *err)
{
    if (!out)
        return qf_err_set(err, QF_EINVAL, "qf_imatrix_acc_new: bad arguments");
    *out = calloc(1, sizeof **out);
    return *out ? 0 : qf_err_set(err, QF_ENOMEM, "out of memory");
}

void qf_imatrix_acc_free(qf_imatrix_acc *a)
{
    if (!a)
        return;
    for (int64_t i = 0; i < a->n; i++) {
        free(a->e[i].name);
        free(a->e[i].sums);
    }
    free(a->e);
    free(a->scratch);
    free(a);
}

/* The entry called name (a linear search: a model has a few hundred
 * matrices, and a look-up costs far less than the product it follows). */
static acc_entry *acc_find(qf_imatrix_acc *a, const char *name)
{
    for (int64_t i = a->n - 1; i >= 0; i--)
        if (strcmp(a->e[i].name, name) == 0)
            return &a->e[i];
    return NULL;
}

static int acc_make(qf_imatrix_acc *a, const char *name, int64_t n_cols, acc_entry **out,
                    qf_err *err)
{
    acc_entry *e;
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 64;
        acc_entry *ne = realloc(a->e, (size_t)cap * sizeof *ne);
        if (!ne)
            return qf_err_set(err, QF_ENOMEM, "imatrix: out of memory");
        a->e = ne;
        a->cap = cap;
    }
    e = &a->e[a->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->sums = calloc((size_t)n_cols, sizeof *e->sums);
    if (!e->name || !e->sums) {
        free(e->name);
        free(e->sums);
        return qf_err_set(err, QF_ENOMEM, "imatrix: out of memory (\"%s\")", name);
    }
    e->n_cols = n_cols;
    a->n++;
    *out = e;
    return 0;
}

int qf_imatrix_acc_add(qf_imatrix_acc *a, const char *name, const float *x, int64_t n_rows,
                       int64_t n_cols, qf_err *err)
{
    acc_entry *e;
    size_t len;
    int rc;

    if (!a || !name || (!x && n_rows > 0) || n_rows < 0 || n_cols < 1 || n_cols > INT32_MAX)
        return qf_err_set(err, QF_EINVAL, "qf_imatrix_acc_add: bad arguments");
    len = strlen(name);
    if (len < 1 || len > QF_IMATRIX_MAX_NAME)
        return qf_err_set(err, QF_EINVAL, "imatrix: name of %zu bytes not in 1..%d", len,
                          QF_IMATRIX_MAX_NAME);
    if (!(e = acc_find(a, name)) && (rc = acc_make(a, name, n_cols, &e, err)) != 0)
        return rc;
    if (e->n_cols != n_cols)
        return qf_err_set(err, QF_EMISMATCH, "imatrix: \"%s\": %lld columns, earlier %lld", name,
                          (long long)n_cols, (long long)e->n_cols);
    if (e->ncall == INT32_MAX || n_rows > INT32_MAX - e->count)
        return qf_err_set(err, QF_ELIMIT, "imatrix: \"%s\": too many calls or rows", name);
    if (a->scratch_cap < n_cols) {
        float *s = realloc(a->scratch, (size_t)n_cols * sizeof *s);
        if (!s)
            return qf_err_set(err, QF_ENOMEM, "imatrix: out of memory");
        a->scratch = s;
        a->scratch_cap = n_cols;
    }
    /* llama-imatrix's loop: row by row, e.values[j] += x[j]*x[j] in float */
    memcpy(a->scratch, e->sums, (size_t)n_cols * sizeof *a->scratch);
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n_cols;
        for (int64_t j = 0; j < n_cols; j++) {
            const float sq = xr[j] * xr[j];
            a->scratch[j] = a->scratch[j] + sq;
        }
    }
    for (int64_t j = 0; j < n_cols; j++)
        if (!isfinite(a->scratch[j]))
            return qf_err_set(err, QF_EFORMAT, "imatrix: \"%s\": column %lld: the sum of squares "
                              "is %g", name, (long long)j, (double)a->scratch[j]);
    memcpy(e->sums, a->scratch, (size_t)n_cols * sizeof *e->sums);
    e->count += n_rows;
    e->ncall++;
    return 0;
}

int64_t qf_imatrix_acc_count(const qf_imatrix_acc *a) { return a ? a->n : 0; }

int qf_imatrix_acc_get(const qf_imatrix_acc *a, int64_t i, qf_imatrix_sums *out)
{
    if (!a || !out || i < 0 || i >= a->n)
        return QF_EINVAL;
    out->name = a->e[i].name;
    out->n_cols = a->e[i].n_cols;
    out->sums = a->e[i].sums;
    out->count = a->e[i].count;
    out->ncall = a->e[i].ncall;
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int out_i32(qf_out *o, int32_t v, qf_err *err)
{
    uint8_t b[4];
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_le32(b, u);
    return qf_out_write(o, b, 4, err);
}

/* n floats, little-endian, through a small buffer. */
static int out_f32s(qf_out *o, const float *v, int64_t n, qf_err *err)
{
    uint8_t b[4096];
    int64_t i = 0;
    while (i < n) {
        int64_t k = n - i < 1024 ? n - i : 1024;
        for (int64_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, &v[i + j], sizeof u);
            put_le32(b + 4 * j, u);
        }
        int rc = qf_out_write(o, b, (size_t)k * 4, err);
        if (rc != 0)
            return rc;
        i += k;
    }
    return 0;
}

/* The legacy file: what llama-imatrix b4747's save_imatrix writes. */
static int write_dat(const qf_imatrix_acc *a, const char *path, int flags, const char *dataset,
                     qf_err *err)
{
    qf_out *o = NULL;
    float *tmp = NULL;
    int64_t max_cols = 1;
    int32_t last_call = 0;
    size_t ds_len = dataset ? strlen(dataset) : 0;
    int rc;

    if (ds_len > INT32_MAX)
        return qf_err_set(err, QF_EINVAL, "%s: dataset name too long", path);
    for (int64_t i = 0; i < a->n; i++) {
        if (a->e[i].n_cols > max_cols)
            max_cols = a->e[i].n_cols;
        if (a->e[i].ncall > last_call)
            last_call = a->e[i].ncall;
    }
    if (!(tmp = malloc((size_t)max_cols * sizeof *tmp)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    if ((rc = qf_out_open(path, flags, &o, err)) != 0)
        goto done;
    if ((rc = out_i32(o, (int32_t)a->n, err)) != 0)
        goto done;
    for (int64_t i = 0; i < a->n; i++) {
        const acc_entry *e = &a->e[i];
        const size_t len = strlen(e->name);
        /* (sum / count) * ncall, in float, as llama-imatrix stores it */
        for (int64_t j = 0; j < e->n_cols; j++)
            tmp[j] = e->count > 0 ? (e->sums[j] / (float)e->count) * (float)e->ncall : 0.0f;
        if ((rc = out_i32(o, (int32_t)len, err)) != 0 ||
            (rc = qf_out_write(o, e->name, len, err)) != 0 ||
            (rc = out_i32(o, e->ncall, err)) != 0 ||
            (rc = out_i32(o, (int32_t)e->n_cols, err)) != 0 ||
            (rc = out_f32s(o, tmp, e->n_cols, err)) != 0)
            goto done;
    }
    if ((rc = out_i32(o, last_call, err)) != 0 || (rc = out_i32(o, (int32_t)ds_len, err)) != 0 ||
        (ds_len && (rc = qf_out_write(o, dataset, ds_len, err)) != 0))
        goto done;
    rc = qf_out_commit(o, err);
    o = NULL;
done:
    qf_out_close(o);
    free(tmp);
    return rc;
}

static int cmp_acc_name(const void *x, const void *y)
{
    const acc_entry *const *a = x, *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

/* The newer GGUF file: sums and counts, unscaled, entries by name. */
static int write_gguf(const qf_imatrix_acc *a, const char *path, int flags, const char *dataset,
                      uint32_t chunk_count, uint32_t chunk_size, qf_err *err)
{
    qf_gguf_writer *w = NULL;
    const acc_entry **order = NULL;
    char tn[QF_GGUF_MAX_NAME + 1];
    int rc;

    if (!(order = malloc((size_t)a->n * sizeof *order)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < a->n; i++)
        order[i] = &a->e[i];
    qsort(order, (size_t)a->n, sizeof *order, cmp_acc_name);
    if ((rc = qf_gguf_writer_new(&w, err)) != 0 ||
        (rc = qf_gguf_writer_set_str(w, "general.type", "imatrix", err)) != 0 ||
        (dataset &&
         (rc = qf_gguf_writer_set_arr_str(w, "imatrix.datasets", &dataset, NULL, 1, err)) != 0) ||
        (rc = qf_gguf_writer_set_u32(w, "imatrix.chunk_count", chunk_count, err)) != 0 ||
        (rc = qf_gguf_writer_set_u32(w, "imatrix.chunk_size", chunk_size, err)) != 0)
        goto done;
    for (int64_t i = 0; i < a->n; i++) {
        const uint64_t ne_sums = (uint64_t)order[i]->n_cols, ne_counts = 1;
        if ((size_t)snprintf(tn, sizeof tn, "%s%s", order[i]->name, SUMS_SUFFIX) >= sizeof tn) {
            rc = qf_err_set(err, QF_EINVAL, "%s: \"%s\": name too long for a GGUF tensor", path,
                            order[i]->name);
            goto done;
        }
        if ((rc = qf_gguf_writer_add_tensor(w, tn, QF_GGML_F32, 1, &ne_sums, err)) != 0)
            goto done;
        snprintf(tn, sizeof tn, "%s%s", order[i]->name, COUNTS_SUFFIX);
        if ((rc = qf_gguf_writer_add_tensor(w, tn, QF_GGML_F32, 1, &ne_counts, err)) != 0)
            goto done;
    }
    if ((rc = qf_gguf_writer_begin(w, path, flags, err)) != 0)
        goto done;
    for (int64_t i = 0; i < a->n; i++) {
        uint8_t b[4];
        const float c = (float)order[i]->count;
        uint32_t u;
        uint8_t *row = malloc((size_t)order[i]->n_cols * 4);
        if (!row) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int64_t j = 0; j < order[i]->n_cols; j++) {
            memcpy(&u, &order[i]->sums[j], sizeof u);
            put_le32(row + 4 * j, u);
        }
        rc = qf_gguf_writer_write(w, row, (uint64_t)order[i]->n_cols * 4, err);
        free(row);
        memcpy(&u, &c, sizeof u);
        put_le32(b, u);
        if (rc != 0 || (rc = qf_gguf_writer_write(w, b, 4, err)) != 0)
            goto done;
    }
    rc = qf_gguf_writer_finish(w, err);
done:
    qf_gguf_writer_free(w);
    free(order);
    return rc;
}

int qf_imatrix_acc_write(const qf_imatrix_acc *a, const char *path, int format, int flags,
                         const char *dataset, uint32_t chunk_count, uint32_t chunk_size,
                         qf_err *err)
{
    if (!a || !path)
        return qf_err_set(err, QF_EINVAL, "qf_imatrix_acc_write: bad arguments");
    if (a->n < 1)
        return qf_err_set(err, QF_EINVAL, "%s: no matrix products were collected", path);
    if (a->n > INT32_MAX)
        return qf_err_set(err, QF_ELIMIT, "%s: too many entries", path);
    switch (format) {
    case QF_IMATRIX_FORMAT_DAT: return write_dat(a, path, flags, dataset, err);
    case QF_IMATRIX_FORMAT_GGUF:
        return write_gguf(a, path, flags, dataset, chunk_count, chunk_size, err);
    default: return qf_err_set(err, QF_EINVAL, "%s: imatrix format %d", path, format);
    }
}
