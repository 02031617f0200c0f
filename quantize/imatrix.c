/*
 * quantize/imatrix.c - the imatrix reader: the legacy binary format and the
 * GGUF format (both in quantize/imatrix.h and docs/imatrix.md).
 *
 * Everything is parsed through a bounds-checked cursor and copied out, so
 * the reader holds no reference to the file or buffer after open returns.
 */
#include <math.h>
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
