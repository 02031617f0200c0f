/*
 * tools/qfm_tool.c - qforge-inspect and qforge-sum on QFM files.
 */
#include "tools/qfm_tool.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/qfm_io.h"
#include "formats/parallel.h"
#include "formats/qfm.h"
#include "tools/gguf_print.h"

static const char *shape_str(const qf_qfm_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t d;
    buf[0] = '\0';
    for (d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? " x %" PRIu64 : "%" PRIu64, t->ne[d]);
    return buf;
}

int qf_tool_qfm_inspect(const char *path, int json, int full)
{
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    cJSON *h = NULL;
    char root[QF_SHA256_HEX], a[32], b[32], c[32], sh[96];
    uint64_t raw = 0, stored = 0;
    int64_t i, n;
    int rc = QF_EXIT_FAIL;

    if (qf_qfm_open_model(path, &q, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    h = cJSON_ParseWithLength(qf_qfm_header(q), (size_t)qf_qfm_header_len(q));
    if (!h) {
        qf_cli_error("%s: out of memory", path);
        goto done;
    }
    qf_sha256_hex(qf_qfm_root(q), root);
    n = qf_qfm_tensor_count(q);
    for (i = 0; i < n; i++) {
        raw += qf_qfm_tensor_at(q, i)->nbytes;
        stored += qf_qfm_tensor_at(q, i)->stored_size;
    }
    if (json) {
        cJSON *ta = cJSON_GetObjectItemCaseSensitive(h, "tensors"), *e;
        char *s;
        i = 0;
        cJSON_ArrayForEach(e, ta) {
            const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i++);
            cJSON_AddNumberToObject(e, "ratio", t->stored_size ? (double)t->nbytes / (double)t->stored_size : 0);
        }
        cJSON_AddStringToObject(h, "file", path);
        cJSON_AddStringToObject(h, "format", "qfm");
        cJSON_AddNumberToObject(h, "file_size", (double)qf_qfm_file_size(q));
        cJSON_AddNumberToObject(h, "header_len", (double)qf_qfm_header_len(q));
        cJSON_AddNumberToObject(h, "data_offset", (double)qf_qfm_data_offset(q));
        cJSON_AddNumberToObject(h, "tensor_bytes", (double)raw);
        cJSON_AddNumberToObject(h, "stored_bytes", (double)stored);
        cJSON_AddStringToObject(h, "root", root);
        if (!(s = cJSON_Print(h))) {
            qf_cli_error("%s: out of memory", path);
            goto done;
        }
        printf("%s\n", s);
        free(s);
        rc = 0;
        goto done;
    }
    printf("File:     %s\n", path);
    printf("Format:   QFM %d (stands for a GGUF %" PRIu32 ", alignment %" PRIu32 ")\n", QF_QFM_VERSION,
           qf_qfm_gguf_version(q), qf_qfm_gguf_alignment(q));
    printf("Size:     %s bytes (%s); header %s bytes, data from byte %" PRIu64 "\n",
           qf_cli_commas(qf_qfm_file_size(q), a, sizeof a), qf_cli_human(qf_qfm_file_size(q), b, sizeof b),
           qf_cli_commas(qf_qfm_header_len(q), c, sizeof c), qf_qfm_data_offset(q));
    printf("Digest:   %s (header checked against it)\n", root);
    printf("Tensors:  %" PRId64 ", %s bytes, stored in %s (ratio %.3f)\n", n, qf_cli_commas(raw, a, sizeof a),
           qf_cli_commas(stored, b, sizeof b), stored ? (double)raw / (double)stored : 0.0);
    {
        const qf_gguf_writer *md = qf_qfm_metadata(q);
        int64_t nkv = qf_gguf_writer_kv_count(md);
        printf("\nMetadata (%" PRId64 " pairs)\n", nkv);
        qf_tool_gguf_print_kv_heading(stdout);
        for (i = 0; i < nkv; i++) {
            qf_gguf_val v;
            qf_gguf_writer_kv_value(md, i, &v);
            qf_tool_gguf_print_kv(stdout, i + 1, qf_gguf_writer_kv_key(md, i), &v, full);
        }
    }
    printf("\nTensors\n%5s  %-36s %-9s %-16s %-6s %7s %12s %12s %6s\n", "#", "name", "type", "shape", "codec",
           "shuffle", "bytes", "stored", "ratio");
    for (i = 0; i < n; i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        printf("%5" PRId64 "  %-36s %-9s %-16s %-6s %7d %12" PRIu64 " %12" PRIu64 " %6.3f\n", i + 1, t->name,
               t->type_name, shape_str(t, sh, sizeof sh), qf_qfm_codec_name(t->codec), t->shuffle, t->nbytes,
               t->stored_size, (double)t->nbytes / (double)t->stored_size);
    }
    {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "provenance");
        char *s = p ? cJSON_Print(p) : NULL;
        printf("\nProvenance\n%s\n", s ? s : "(none)");
        free(s);
    }
    rc = 0;
done:
    cJSON_Delete(h);
    qf_qfm_close(q);
    return rc;
}

/* ---------------------------------------------------------------------
 * Hashing
 * ------------------------------------------------------------------- */

static int hash_all(void *ctx, const void *data, size_t n)
{
    qf_sha256_update(ctx, data, n);
    return 0;
}

int qf_tool_qfm_manifest(const char *path, int threads, qf_json *j)
{
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    qf_sha256 *all = qf_sha256_new();
    uint8_t d[QF_SHA256_LEN];
    char hex[QF_SHA256_HEX];
    const char *label = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int64_t i;
    int rc = QF_EXIT_FAIL;

    (void)threads; /* the all-data digest needs the bytes in order */
    if (!all) {
        qf_cli_error("out of memory");
        return QF_EXIT_FAIL;
    }
    if (qf_qfm_open_model(path, &q, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    if (j) {
        qf_json_obj_begin(j);
        qf_json_key(j, "file");
        qf_json_str(j, path);
        qf_json_key(j, "tensors");
        qf_json_arr_begin(j);
    }
    for (i = 0; i < qf_qfm_tensor_count(q); i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        if (qf_qfm_stream(q, i, hash_all, all, d, &err) != 0) {
            qf_cli_report(&err);
            goto done;
        }
        qf_qfm_release(q, i);
        qf_sha256_hex(d, hex);
        if (j) {
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            qf_json_str(j, t->name);
            qf_json_key(j, "sha256");
            qf_json_str(j, hex);
            qf_json_obj_end(j);
        } else {
            printf("%-10s%s  %s:%s\n", "sha256", hex, label, t->name);
        }
    }
    qf_sha256_final(all, d);
    qf_sha256_hex(d, hex);
    if (j) {
        qf_json_arr_end(j);
        qf_json_key(j, "all");
        qf_json_str(j, hex);
        qf_json_obj_end(j);
    } else {
        printf("%-10s%s  %s\n", "sha256", hex, label);
    }
    rc = 0;
done:
    if (rc && j) {
        /* keep the JSON well formed on failure: close what was opened */
    }
    qf_sha256_free(all);
    qf_qfm_close(q);
    return rc;
}

typedef struct checker {
    const qf_qfm *q;
    uint8_t (*digests)[QF_SHA256_LEN];
    qf_err *errs;
    int *bad;
} checker;

static int check_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    checker *c = ctx;
    int64_t i;
    (void)worker;
    for (i = begin; i < end; i++) {
        c->bad[i] = qf_qfm_stream(c->q, i, NULL, NULL, c->digests[i], &c->errs[i]) != 0;
        qf_qfm_release(c->q, i);
    }
    return 0;
}

int qf_tool_qfm_check(const char *path, int threads, qf_json *j)
{
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    checker c = { 0 };
    uint8_t root[QF_SHA256_LEN];
    int64_t i, n, nbad = 0;
    int rc = QF_EXIT_FAIL, root_ok;

    if (qf_qfm_open_model(path, &q, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    n = qf_qfm_tensor_count(q);
    c.q = q;
    c.digests = calloc((size_t)n + 1, sizeof *c.digests);
    c.errs = calloc((size_t)n + 1, sizeof *c.errs);
    c.bad = calloc((size_t)n + 1, sizeof *c.bad);
    if (!c.digests || !c.errs || !c.bad) {
        qf_cli_error("out of memory");
        goto done;
    }
    qf_parallel_for(threads, n, 1, check_range, &c);
    if (qf_qfm_compute_root(q, (const uint8_t(*)[QF_SHA256_LEN])c.digests, root) != 0) {
        qf_cli_error("out of memory");
        goto done;
    }
    root_ok = memcmp(root, qf_qfm_root(q), QF_SHA256_LEN) == 0;
    if (j) {
        qf_json_obj_begin(j);
        qf_json_key(j, "file");
        qf_json_str(j, path);
        qf_json_key(j, "results");
        qf_json_arr_begin(j);
    }
    for (i = 0; i < n; i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        const char *status = c.bad[i] ? "MISMATCH" : "OK";
        nbad += c.bad[i];
        if (j) {
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            qf_json_str(j, t->name);
            qf_json_key(j, "status");
            qf_json_str(j, status);
            if (c.bad[i]) {
                qf_json_key(j, "error");
                qf_json_str(j, c.errs[i].msg);
            }
            qf_json_obj_end(j);
        } else if (qf_cli_verbosity >= 1 || c.bad[i]) {
            printf("%s:%s: %s\n", path, t->name, status);
        }
    }
    if (j) {
        qf_json_arr_end(j);
        qf_json_key(j, "digest");
        qf_json_str(j, root_ok ? "OK" : "MISMATCH");
        qf_json_obj_end(j);
    } else if (qf_cli_verbosity >= 1 || !root_ok) {
        printf("%s: %s (file digest)\n", path, root_ok ? "OK" : "MISMATCH");
    }
    if (nbad) {
        for (i = 0; i < n && !c.bad[i]; i++)
            ;
        if (nbad == 1)
            qf_cli_error("%s", c.errs[i].msg);
        else
            qf_cli_error("%s (and %" PRId64 " more damaged tensors)", c.errs[i].msg, nbad - 1);
    }
    rc = (nbad || !root_ok) ? QF_EXIT_FAIL : 0;
done:
    free(c.digests);
    free(c.errs);
    free(c.bad);
    qf_qfm_close(q);
    return rc;
}
