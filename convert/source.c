/*
 * convert/source.c - a model to read from: GGUF file or HF folder.
 */
#include "convert/source.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert.h"
#include "convert/qfm_io.h"
#include "convert/source_qfm.h"
#include "formats/archive.h"
#include "formats/types.h"
#include "quantize/quant.h"

struct qf_source {
    char *path;
    qf_gguf *g;         /* a GGUF file, or */
    qf_convert *c;      /* a folder, planned as its F32 conversion, or */
    qf_qfm *q;          /* a QFM file (convert/source_qfm.c) */
    const qf_gguf_writer *meta; /* folder or QFM: the metadata */
    qf_archive *ar;     /* the archive the folder was unpacked from, or NULL */
    qf_source_tensor *t;
    int64_t nt;
};

void qf_source_close(qf_source *s)
{
    if (!s)
        return;
    qf_gguf_close(s->g);
    qf_convert_free(s->c);
    qf_qfm_close(s->q);
    qf_archive_close(s->ar);
    free(s->t);
    free(s->path);
    free(s);
}

int qf_source_open(const char *path, qf_source **out, qf_err *err)
{
    qf_source *s = calloc(1, sizeof *s);
    struct stat sb;
    int64_t i;
    int rc = 0;

    *out = NULL;
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    if (qf_archive_kind_of(path) != QF_ARCHIVE_NONE) { /* read the folder inside */
        if ((rc = qf_archive_open(path, NULL, NULL, &s->ar, err)) != 0 ||
            (rc = qf_archive_unpack(s->ar, err)) != 0)
            goto done;
        path = qf_archive_dir(s->ar);
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        qf_convert_opts o = { QF_OUTTYPE_F32, 1, 0, NULL };
        if ((rc = qf_convert_plan(path, &o, &s->c, err)) != 0) {
            qf_archive_fix_err(s->ar, err);
            goto done;
        }
        s->nt = qf_convert_tensor_count(s->c);
        s->meta = qf_convert_metadata(s->c);
    } else if (qf_source_is_qfm(path)) {
        if ((rc = qf_qfm_open_model(path, &s->q, err)) != 0)
            goto done;
        s->nt = qf_qfm_tensor_count(s->q);
        s->meta = qf_qfm_metadata(s->q);
    } else {
        if ((rc = qf_gguf_open(path, &s->g, err)) != 0)
            goto done;
        s->nt = qf_gguf_tensor_count(s->g);
    }
    s->t = calloc((size_t)(s->nt ? s->nt : 1), sizeof *s->t);
    if (!s->t) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < s->nt; i++) {
        qf_source_tensor *t = &s->t[i];
        if (s->g) {
            const qf_gguf_tensor *g = qf_gguf_tensor_at(s->g, i);
            t->name = g->name;
            t->type = g->type;
            t->n_dims = g->n_dims;
            memcpy(t->ne, g->ne, sizeof t->ne);
            t->nbytes = g->nbytes;
            t->data = g->data;
        } else if (s->q) {
            const qf_qfm_tensor *x = qf_qfm_tensor_at(s->q, i);
            t->name = x->name;
            t->type = qf_source_qfm_type(x);
            t->n_dims = x->n_dims;
            memcpy(t->ne, x->ne, sizeof t->ne);
            t->nbytes = qf_source_qfm_nbytes(x);
            t->data = qf_source_qfm_data(x);
        } else {
            const qf_convert_tensor *c = qf_convert_tensor_at(s->c, i);
            t->name = c->name;
            t->type = c->type;
            t->n_dims = c->n_dims;
            memcpy(t->ne, c->ne, sizeof t->ne);
            t->nbytes = c->nbytes;
            t->data = NULL;
        }
        t->n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    }
    *out = s;
    s = NULL;
done:
    qf_source_close(s);
    return rc;
}

const char *qf_source_kind(const qf_source *s) { return s->g ? "gguf" : s->q ? "qfm" : "folder"; }
const char *qf_source_path(const qf_source *s) { return s->path; }

int64_t qf_source_kv_count(const qf_source *s)
{
    return s->g ? qf_gguf_kv_count(s->g) : qf_gguf_writer_kv_count(s->meta);
}

const char *qf_source_kv_key(const qf_source *s, int64_t i)
{
    return s->g ? qf_gguf_kv_key(s->g, i) : qf_gguf_writer_kv_key(s->meta, i);
}

int qf_source_kv_value(const qf_source *s, int64_t i, qf_gguf_val *v)
{
    return s->g ? qf_gguf_kv_value(s->g, i, v)
                : qf_gguf_writer_kv_value(s->meta, i, v);
}

int64_t qf_source_find_key(const qf_source *s, const char *key)
{
    return s->g ? qf_gguf_find_key(s->g, key)
                : qf_gguf_writer_find_key(s->meta, key);
}

static int lookup(const qf_source *s, const char *key, qf_gguf_val *v)
{
    int64_t i = qf_source_find_key(s, key);
    if (i < 0)
        return QF_ENOTFOUND;
    return qf_source_kv_value(s, i, v);
}

int qf_source_get_uint(const qf_source *s, const char *key, uint64_t *out, qf_err *err)
{
    qf_gguf_val v;
    int rc = lookup(s, key, &v);
    if (rc)
        return rc;
    switch (v.type) {
    case QF_GGUF_UINT8: case QF_GGUF_UINT16: case QF_GGUF_UINT32: case QF_GGUF_UINT64:
        *out = v.u;
        return 0;
    case QF_GGUF_INT8: case QF_GGUF_INT16: case QF_GGUF_INT32: case QF_GGUF_INT64:
        if (v.i >= 0) {
            *out = (uint64_t)v.i;
            return 0;
        }
        break;
    default:
        break;
    }
    return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\": expected a non-negative integer, found %s",
                      s->path, key, qf_gguf_vtype_name((int)v.type));
}

int qf_source_get_float(const qf_source *s, const char *key, double *out, qf_err *err)
{
    qf_gguf_val v;
    int rc = lookup(s, key, &v);
    if (rc)
        return rc;
    if (v.type == QF_GGUF_FLOAT32 || v.type == QF_GGUF_FLOAT64) {
        *out = v.f;
        return 0;
    }
    return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\": expected a float, found %s", s->path, key,
                      qf_gguf_vtype_name((int)v.type));
}

int qf_source_get_str(const qf_source *s, const char *key, const char **str, uint64_t *len,
                      qf_err *err)
{
    qf_gguf_val v;
    int rc = lookup(s, key, &v);
    if (rc)
        return rc;
    if (v.type != QF_GGUF_STRING)
        return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\": expected a string, found %s", s->path,
                          key, qf_gguf_vtype_name((int)v.type));
    *str = v.str;
    if (len)
        *len = v.str_len;
    return 0;
}

int qf_source_copy_kvs(const qf_source *s, qf_gguf_writer *w, qf_err *err)
{
    int64_t i, n = qf_source_kv_count(s);
    int rc;
    for (i = 0; i < n; i++) {
        qf_gguf_val v;
        qf_source_kv_value(s, i, &v);
        if ((rc = qf_gguf_writer_set_raw(w, qf_source_kv_key(s, i), v.type, v.raw, v.raw_len, err)))
            return rc;
    }
    return 0;
}

int64_t qf_source_tensor_count(const qf_source *s) { return s->nt; }

const qf_source_tensor *qf_source_tensor_at(const qf_source *s, int64_t i)
{
    return (i >= 0 && i < s->nt) ? &s->t[i] : NULL;
}

int64_t qf_source_find_tensor(const qf_source *s, const char *name)
{
    int64_t i;
    if (s->g)
        return qf_gguf_find_tensor(s->g, name);
    for (i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return i;
    return -1;
}

int qf_source_rows_f32(const qf_source *s, int64_t i, uint64_t row0, uint64_t n, float *dst,
                       qf_err *err)
{
    const qf_source_tensor *t = qf_source_tensor_at(s, i);
    uint64_t row_bytes;
    qf_dtype plain;

    if (!t || row0 > t->n_rows || n > t->n_rows - row0)
        return qf_err_set(err, QF_EINVAL, "%s: tensor %lld: rows out of range", s->path, (long long)i);
    if (s->c)
        return qf_convert_rows_f32(s->c, i, row0, n, dst);
    if (s->q)
        return qf_source_qfm_rows_f32(s->q, i, row0, n, dst, err);
    if (qf_ggml_row_size(t->type, t->ne[0], &row_bytes) != 0)
        return qf_err_set(err, QF_EINVAL, "%s: tensor \"%s\": bad row", s->path, t->name);
    plain = qf_dtype_from_ggml_type(t->type);
    if (plain != QF_DTYPE_INVALID)
        return qf_dtype_to_f32(plain, t->data + row0 * row_bytes, dst, (size_t)(n * t->ne[0]));
    if (!qf_quant_can_dequantize(t->type))
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot read type %s", s->path,
                          t->name, qf_ggml_type_name(t->type));
    return qf_quant_dequantize(t->type, t->data + row0 * row_bytes, dst, (int64_t)(n * t->ne[0]));
}

int qf_source_read_bytes(const qf_source *s, int64_t i, uint64_t off, uint64_t n, void *dst,
                         qf_err *err)
{
    const qf_source_tensor *t = qf_source_tensor_at(s, i);

    if (!t || off > t->nbytes || n > t->nbytes - off)
        return qf_err_set(err, QF_EINVAL, "%s: tensor %lld: bytes out of range", s->path, (long long)i);
    if (t->data) {
        memcpy(dst, t->data + off, (size_t)n);
        return 0;
    }
    if (s->q && qf_qfm_tensor_at(s->q, i)->ggml_type >= 0)
        return qf_qfm_read_range(s->q, i, off, n, dst, NULL, err);
    return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": no stored bytes to read", s->path, t->name);
}

void qf_source_release(const qf_source *s, int64_t i)
{
    if (s->g)
        qf_gguf_release_tensor(s->g, i);
    else if (s->q)
        qf_qfm_release(s->q, i);
    else
        qf_convert_release(s->c, i);
}

void qf_source_release_rows(const qf_source *s, int64_t i, uint64_t row0, uint64_t n)
{
    const qf_source_tensor *t = qf_source_tensor_at(s, i);
    uint64_t row_bytes;

    if (!t || s->q)
        return;
    if (!s->g) {
        qf_convert_release_rows(s->c, i, row0, n);
        return;
    }
    if (qf_ggml_row_size(t->type, t->ne[0], &row_bytes) == 0)
        qf_gguf_release_range(s->g, i, row0 * row_bytes, n * row_bytes);
}
