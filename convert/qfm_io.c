/*
 * convert/qfm_io.c - GGUF <-> QFM, and QFM's provenance basics.
 */
#include "convert/qfm_io.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/hash.h"
#include "formats/types.h"
#include "quantize/affine.h"

#define COPY_CHUNK (16u << 20)

int qf_qfm_affine_types(void *ctx, const char *type, uint32_t n_dims, const uint64_t *ne,
                        uint64_t *nbytes, qf_err *err)
{
    qf_affine a;
    uint64_t row, rows = 1;
    uint32_t d;

    (void)ctx;
    if (qf_affine_parse(type, &a) != 0)
        return QF_ENOTFOUND;
    if (ne[0] > INT64_MAX || (row = qf_affine_row_size(a, (int64_t)ne[0])) == 0)
        return qf_err_set(err, QF_EFORMAT, "row of %" PRIu64 " columns does not suit %s", ne[0], type);
    for (d = 1; d < n_dims; d++)
        if (__builtin_mul_overflow(rows, ne[d], &rows))
            return qf_err_set(err, QF_ELIMIT, "byte size overflows");
    if (__builtin_mul_overflow(row, rows, nbytes))
        return qf_err_set(err, QF_ELIMIT, "byte size overflows");
    return 0;
}

int qf_qfm_open_model(const char *path, qf_qfm **out, qf_err *err)
{
    return qf_qfm_open(path, qf_qfm_affine_types, NULL, out, err);
}

/* ---------------------------------------------------------------------
 * Provenance
 * ------------------------------------------------------------------- */

int qf_qfm_hash_file(const char *path, char hex[QF_SHA256_HEX], uint64_t *size, qf_err *err)
{
    qf_map *m = NULL;
    qf_sha256 *h = qf_sha256_new();
    uint8_t d[QF_SHA256_LEN];
    uint64_t off, n;
    int rc;

    if (!h)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if ((rc = qf_map_open(path, &m, err)) != 0) {
        qf_sha256_free(h);
        return rc;
    }
    n = qf_map_size(m);
    for (off = 0; off < n; off += COPY_CHUNK) {
        uint64_t k = n - off < COPY_CHUNK ? n - off : COPY_CHUNK;
        qf_sha256_update(h, qf_map_data(m) + off, (size_t)k);
        qf_map_release(m, off, k);
    }
    qf_sha256_final(h, d);
    qf_sha256_hex(d, hex);
    *size = n;
    qf_sha256_free(h);
    qf_map_close(m);
    return 0;
}

static int add_source(cJSON *arr, const char *path, const char *label, qf_err *err)
{
    char hex[QF_SHA256_HEX];
    uint64_t size = 0;
    cJSON *o;
    int rc = qf_qfm_hash_file(path, hex, &size, err);

    if (rc)
        return rc;
    if (!(o = cJSON_CreateObject()))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    cJSON_AddItemToArray(arr, o);
    if (!cJSON_AddStringToObject(o, "file", label) || !cJSON_AddStringToObject(o, "sha256", hex) ||
        !cJSON_AddNumberToObject(o, "bytes", (double)size))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of a folder (not recursing), sorted by name. */
static int add_folder(cJSON *arr, const char *dir, qf_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL, path[4096];
    size_t n = 0, cap = 0, k;
    int rc = 0;

    if (!d)
        return qf_err_set(err, QF_EIO, "%s: cannot list the folder", dir);
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *nn);
            if (!nn) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        n++;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (k = 0; k < n && rc == 0; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        rc = add_source(arr, path, names[k], err);
    }
done:
    closedir(d);
    for (k = 0; k < n; k++)
        free(names[k]);
    free(names);
    return rc;
}

int qf_qfm_set_basic_provenance(qf_qfm_writer *w, const char *const *sources, int n, int argc,
                                char **argv, qf_err *err)
{
    cJSON *arr = cJSON_CreateArray(), *cmd = cJSON_CreateArray();
    char *text = NULL, when[32];
    time_t now = time(NULL);
    struct tm tm;
    int i, rc = 0;

    if (!arr || !cmd) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(sources[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = add_folder(arr, sources[i], err);
        else {
            const char *base = strrchr(sources[i], '/');
            rc = add_source(arr, sources[i], base ? base + 1 : sources[i], err);
        }
    }
    if (rc)
        goto done;
    for (i = 0; i < argc; i++) {
        cJSON *s = cJSON_CreateString(argv[i]);
        if (!s) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToArray(cmd, s);
    }
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    if (!(text = cJSON_PrintUnformatted(arr)) ||
        (rc = qf_qfm_writer_set_provenance(w, "sources", text, err)) != 0)
        goto done;
    free(text);
    if (!(text = cJSON_PrintUnformatted(cmd)) ||
        (rc = qf_qfm_writer_set_provenance(w, "command_line", text, err)) != 0 ||
        (rc = qf_qfm_writer_set_provenance(w, "qforge_version", "\"" QF_VERSION "\"", err)) != 0 ||
        (rc = qf_qfm_writer_set_provenance(w, "created", when, err)) != 0)
        goto done;
done:
    if (!rc && !text)
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
    free(text);
    cJSON_Delete(arr);
    cJSON_Delete(cmd);
    return rc;
}

/* ---------------------------------------------------------------------
 * Import
 * ------------------------------------------------------------------- */

/* The GGUF must be what our writer would give back for its keys and
 * tensors: version 3, zero padding, nothing after the last tensor. */
static int check_canonical(const qf_gguf *g, const qf_gguf_writer *w, const char *in, qf_err *err)
{
    const uint8_t *base = qf_gguf_file_data(g);
    uint64_t pos, end, k;
    int64_t i, n = qf_gguf_tensor_count(g);

    if (qf_gguf_version(g) != 3)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: GGUF version %" PRIu32 ": QFM keeps version 3 files",
                          in, qf_gguf_version(g));
    if (qf_gguf_writer_file_size(w) != qf_gguf_file_size(g))
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: %" PRIu64 " bytes where the canonical layout has %" PRIu64
                          ": export could not reproduce the file byte for byte", in, qf_gguf_file_size(g),
                          qf_gguf_writer_file_size(w));
    /* header padding: from the end of the last tensor info (or of the
     * metadata when there are no tensors, which the size check covers) */
    if (n > 0) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, n - 1);
        pos = t->info_offset + 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        for (k = pos; k < qf_gguf_data_offset(g); k++)
            if (base[k])
                return qf_err_set(err, QF_EUNSUPPORTED, "%s: non-zero padding at byte %" PRIu64
                                  ": export could not reproduce it", in, k);
    }
    for (i = 0; i < n; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        pos = qf_gguf_data_offset(g) + t->offset + t->nbytes;
        end = i + 1 < n ? qf_gguf_data_offset(g) + qf_gguf_tensor_at(g, i + 1)->offset : qf_gguf_file_size(g);
        for (k = pos; k < end; k++)
            if (base[k])
                return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": non-zero padding at byte %" PRIu64
                                  ": export could not reproduce it", in, t->name, k);
    }
    return 0;
}

int qf_qfm_import(const char *in, const char *out, int flags, const qf_qfm_opts *opts, int argc,
                  char **argv, qf_err *err)
{
    qf_gguf *g = NULL;
    qf_gguf_writer *meta = NULL;
    qf_qfm_writer *w = NULL;
    int64_t i;
    int rc;

    if ((rc = qf_gguf_open(in, &g, err)) != 0 || (rc = qf_gguf_writer_new(&meta, err)) != 0)
        goto done;
    for (i = 0; i < qf_gguf_kv_count(g); i++)
        if ((rc = qf_gguf_writer_copy_kv(meta, g, i, err)) != 0)
            goto done;
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        if ((rc = qf_gguf_writer_add_tensor(meta, t->name, t->type, t->n_dims, t->ne, err)) != 0)
            goto done;
    }
    if ((rc = check_canonical(g, meta, in, err)) != 0 || (rc = qf_qfm_writer_new(meta, opts, &w, err)) != 0 ||
        (rc = qf_qfm_set_basic_provenance(w, &in, 1, argc, argv, err)) != 0 ||
        (rc = qf_qfm_writer_begin(w, out, flags, err)) != 0)
        goto done;
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        uint64_t off;
        for (off = 0; off < t->nbytes; off += COPY_CHUNK) {
            uint64_t k = t->nbytes - off < COPY_CHUNK ? t->nbytes - off : COPY_CHUNK;
            if ((rc = qf_qfm_writer_write(w, t->data + off, k, err)) != 0)
                goto done;
            qf_gguf_release_range(g, i, off, k);
        }
    }
    rc = qf_qfm_writer_finish(w, err);
done:
    qf_qfm_writer_free(w);
    qf_gguf_writer_free(meta);
    qf_gguf_close(g);
    return rc;
}

/* ---------------------------------------------------------------------
 * Export
 * ------------------------------------------------------------------- */

static int to_gguf(void *ctx, const void *data, size_t n)
{
    return qf_gguf_writer_write(ctx, data, n, NULL);
}

int qf_qfm_export_gguf(const char *in, const char *out, int flags, qf_err *err)
{
    qf_qfm *q = NULL;
    qf_gguf_writer *w = NULL;
    const qf_gguf_writer *m;
    int64_t i;
    int rc;

    if ((rc = qf_qfm_open_model(in, &q, err)) != 0 || (rc = qf_gguf_writer_new(&w, err)) != 0)
        goto done;
    m = qf_qfm_metadata(q);
    for (i = 0; i < qf_gguf_writer_kv_count(m); i++) {
        qf_gguf_val v;
        qf_gguf_writer_kv_value(m, i, &v);
        if ((rc = qf_gguf_writer_set_raw(w, qf_gguf_writer_kv_key(m, i), v.type, v.raw, v.raw_len, err)) != 0)
            goto done;
    }
    for (i = 0; i < qf_qfm_tensor_count(q); i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        if (t->ggml_type < 0) {
            rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": type %s has no GGUF counterpart", in,
                            t->name, t->type_name);
            goto done;
        }
        if ((rc = qf_gguf_writer_add_tensor(w, t->name, t->ggml_type, t->n_dims, t->ne, err)) != 0)
            goto done;
    }
    if ((rc = qf_gguf_writer_begin(w, out, flags, err)) != 0)
        goto done;
    for (i = 0; i < qf_qfm_tensor_count(q); i++) {
        if ((rc = qf_qfm_stream(q, i, to_gguf, w, NULL, err)) != 0) {
            if (err && !err->code)
                qf_err_set(err, rc, "%s: write failed", out);
            goto done;
        }
        qf_qfm_release(q, i);
    }
    rc = qf_gguf_writer_finish(w, err);
done:
    qf_gguf_writer_free(w);
    qf_qfm_close(q);
    return rc;
}
