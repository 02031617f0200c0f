/*
 * qforge-inspect - list what a model file holds: header, every metadata key
 * with its type and value, every tensor with its type, shape, offset and
 * size, and totals. GGUF, safetensors (a file, a sharded index, a folder).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "formats/types.h"
#include "tools/cli.h"
#include "tools/gguf_print.h"
#include "tools/model_open.h"
#include "tools/qfm_tool.h"

static int opt_full, opt_json;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-inspect [options] FILE\n"
            "List a model: header, metadata (key, type, value), tensors (name, type,\n"
            "shape, offset, bytes), totals and bits per weight.\n"
            "\n"
            "FILE is a .gguf, a .qfm, a .safetensors, a PyTorch checkpoint (.bin/.pt/.pth, read\n"
            "without running its pickle), an index.json, or a model folder.\n"
            "\n"
            "Options:\n"
            "      --full      print arrays whole (default: the first %d items)\n"
            "      --json      machine-readable output on stdout\n"
            "  -q, --quiet     errors only\n"
            "  -h, --help      this help\n"
            "      --version   print the version\n"
            "\n"
            "\n%s"
            "\nExit status: 0 listed, 1 the file is unreadable or invalid, 2 usage error.\n",
            QF_TOOL_ARRAY_PREVIEW, qf_tool_archive_help);
}

static const char *shape_str(const uint64_t *ne, uint32_t n, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t d;
    buf[0] = '\0';
    for (d = 0; d < n && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? " x %" PRIu64 : "%" PRIu64, ne[d]);
    if (n == 0)
        snprintf(buf, cap, "scalar");
    return buf;
}

/* Per-type tally for the totals line. */
typedef struct {
    char name[16];
    uint64_t count, bytes, elements;
} tally;

static void tally_add(tally *t, int *nt, const char *name, uint64_t bytes, uint64_t elems)
{
    int i;
    for (i = 0; i < *nt; i++)
        if (strcmp(t[i].name, name) == 0)
            break;
    if (i == *nt) {
        if (*nt >= 64)
            return;
        snprintf(t[i].name, sizeof t[i].name, "%s", name);
        t[i].count = t[i].bytes = t[i].elements = 0;
        (*nt)++;
    }
    t[i].count++;
    t[i].bytes += bytes;
    t[i].elements += elems;
}

static void print_totals(uint64_t n, uint64_t elems, uint64_t bytes, const tally *t, int nt)
{
    char a[32], b[32], c[32], h[32];
    int i;
    printf("\nTotal: %s tensors, %s elements, %s bytes (%s), %.2f bits per weight\n",
           qf_cli_commas(n, a, sizeof a), qf_cli_commas(elems, b, sizeof b),
           qf_cli_commas(bytes, c, sizeof c), qf_cli_human(bytes, h, sizeof h),
           elems ? (double)bytes * 8.0 / (double)elems : 0.0);
    printf("Types:");
    for (i = 0; i < nt; i++)
        printf("%s %s x%" PRIu64 " (%.2f bpw)", i ? "," : "", t[i].name, t[i].count,
               t[i].elements ? (double)t[i].bytes * 8.0 / (double)t[i].elements : 0.0);
    printf("\n");
}

static void json_totals(qf_json *j, uint64_t n, uint64_t elems, uint64_t bytes, const tally *t,
                        int nt)
{
    int i;
    qf_json_key(j, "totals");
    qf_json_obj_begin(j);
    qf_json_key(j, "tensors");
    qf_json_u64(j, n);
    qf_json_key(j, "elements");
    qf_json_u64(j, elems);
    qf_json_key(j, "bytes");
    qf_json_u64(j, bytes);
    qf_json_key(j, "bits_per_weight");
    qf_json_f64(j, elems ? (double)bytes * 8.0 / (double)elems : 0.0);
    qf_json_key(j, "types");
    qf_json_obj_begin(j);
    for (i = 0; i < nt; i++) {
        qf_json_key(j, t[i].name);
        qf_json_u64(j, t[i].count);
    }
    qf_json_obj_end(j);
    qf_json_obj_end(j);
}

static int inspect_gguf(const char *path)
{
    qf_gguf *g = NULL;
    qf_err err = { 0 };
    int64_t i, nkv, nt;
    uint64_t elems = 0, bytes = 0;
    tally types[64];
    int ntypes = 0;
    char a[32], b[32], h[32], shape[128];

    if (qf_gguf_open(path, &g, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    nkv = qf_gguf_kv_count(g);
    nt = qf_gguf_tensor_count(g);
    for (i = 0; i < nt; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        elems += t->n_elements;
        bytes += t->nbytes;
        tally_add(types, &ntypes, qf_ggml_type_name(t->type), t->nbytes, t->n_elements);
    }

    if (opt_json) {
        qf_json j;
        qf_json_init(&j, stdout, 1);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "file");
        qf_json_str(&j, path);
        qf_json_key(&j, "format");
        qf_json_str(&j, "gguf");
        qf_json_key(&j, "version");
        qf_json_u64(&j, qf_gguf_version(g));
        qf_json_key(&j, "size");
        qf_json_u64(&j, qf_gguf_file_size(g));
        qf_json_key(&j, "alignment");
        qf_json_u64(&j, qf_gguf_alignment(g));
        qf_json_key(&j, "data_offset");
        qf_json_u64(&j, qf_gguf_data_offset(g));
        qf_json_key(&j, "metadata");
        qf_json_arr_begin(&j);
        for (i = 0; i < nkv; i++) {
            qf_gguf_val v;
            qf_gguf_kv_value(g, i, &v);
            qf_json_obj_begin(&j);
            qf_json_key(&j, "key");
            qf_json_str(&j, qf_gguf_kv_key(g, i));
            qf_json_key(&j, "type");
            qf_json_str(&j, qf_gguf_vtype_name((int)v.type));
            if (v.type == QF_GGUF_ARRAY) {
                qf_json_key(&j, "array_type");
                qf_json_str(&j, qf_gguf_vtype_name((int)v.arr_type));
                qf_json_key(&j, "count");
                qf_json_u64(&j, v.arr_n);
                if (!opt_full && v.arr_n > QF_TOOL_ARRAY_PREVIEW) {
                    qf_json_key(&j, "truncated");
                    qf_json_bool(&j, 1);
                }
            }
            qf_json_key(&j, "value");
            qf_tool_gguf_json_value(&j, &v, opt_full);
            qf_json_key(&j, "offset");
            qf_json_u64(&j, qf_gguf_kv_offset(g, i));
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        qf_json_key(&j, "tensors");
        qf_json_arr_begin(&j);
        for (i = 0; i < nt; i++) {
            const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
            uint32_t d;
            qf_json_obj_begin(&j);
            qf_json_key(&j, "name");
            qf_json_str(&j, t->name);
            qf_json_key(&j, "type");
            qf_json_str(&j, qf_ggml_type_name(t->type));
            qf_json_key(&j, "shape");
            qf_json_arr_begin(&j);
            for (d = 0; d < t->n_dims; d++)
                qf_json_u64(&j, t->ne[d]);
            qf_json_arr_end(&j);
            qf_json_key(&j, "elements");
            qf_json_u64(&j, t->n_elements);
            qf_json_key(&j, "offset");
            qf_json_u64(&j, t->offset);
            qf_json_key(&j, "file_offset");
            qf_json_u64(&j, qf_gguf_data_offset(g) + t->offset);
            qf_json_key(&j, "bytes");
            qf_json_u64(&j, t->nbytes);
            qf_json_key(&j, "info_offset");
            qf_json_u64(&j, t->info_offset);
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        json_totals(&j, (uint64_t)nt, elems, bytes, types, ntypes);
        qf_json_obj_end(&j);
        qf_json_end(&j);
        qf_gguf_close(g);
        return 0;
    }

    printf("File:     %s\n", path);
    printf("Format:   GGUF v%u, little-endian, alignment %u\n", qf_gguf_version(g),
           qf_gguf_alignment(g));
    printf("Size:     %s bytes (%s), tensor data at offset %s\n",
           qf_cli_commas(qf_gguf_file_size(g), a, sizeof a),
           qf_cli_human(qf_gguf_file_size(g), h, sizeof h),
           qf_cli_commas(qf_gguf_data_offset(g), b, sizeof b));
    printf("Contents: %" PRId64 " metadata keys, %" PRId64 " tensors\n", nkv, nt);

    printf("\nMetadata\n");
    qf_tool_gguf_print_kv_heading(stdout);
    for (i = 0; i < nkv; i++) {
        qf_gguf_val v;
        qf_gguf_kv_value(g, i, &v);
        qf_tool_gguf_print_kv(stdout, i + 1, qf_gguf_kv_key(g, i), &v, opt_full);
    }

    printf("\nTensors\n");
    printf("%5s  %-40s %-7s %-22s %12s %12s\n", "#", "name", "type", "shape (ne0 x ne1 ...)",
           "offset", "bytes");
    for (i = 0; i < nt; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        printf("%5" PRId64 "  %-40s %-7s %-22s %12" PRIu64 " %12" PRIu64 "\n", i + 1, t->name,
               qf_ggml_type_name(t->type), shape_str(t->ne, t->n_dims, shape, sizeof shape),
               t->offset, t->nbytes);
    }
    print_totals((uint64_t)nt, elems, bytes, types, ntypes);
    qf_gguf_close(g);
    return 0;
}

/* =====================================================================
 * safetensors
 * ===================================================================== */

/* A path as the user knows it: "a.tar:folder/file" inside an archive. */
static const char *shown(const char *path)
{
    static char buf[4][QF_ERR_MSG_MAX];
    static int k;
    k = (k + 1) % 4;
    return qf_tool_display_path(path ? path : "", buf[k], sizeof buf[k]);
}

/* For a model read from an archive: the members used, how each is read.
 * With j, as an "archive" object; else as text. */
static void archive_listing(const char *path, qf_json *j)
{
    const qf_archive *a = qf_tool_archive_of(path);
    int64_t i, n;
    char c[32];

    if (!a)
        return;
    n = qf_archive_member_count(a);
    if (j) {
        qf_json_key(j, "archive");
        qf_json_obj_begin(j);
        qf_json_key(j, "path");
        qf_json_str(j, qf_archive_path(a));
        qf_json_key(j, "folder");
        qf_json_str(j, qf_archive_folder(a));
        qf_json_key(j, "entries");
        qf_json_u64(j, qf_archive_entries_seen(a));
        qf_json_key(j, "members");
        qf_json_arr_begin(j);
        for (i = 0; i < n; i++) {
            const qf_archive_member *m = qf_archive_member_at(a, i);
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            qf_json_str(j, m->name);
            qf_json_key(j, "bytes");
            qf_json_u64(j, m->size);
            qf_json_key(j, "in_place");
            qf_json_bool(j, m->in_place);
            if (m->in_place) {
                qf_json_key(j, "offset");
                qf_json_u64(j, m->offset);
            }
            qf_json_obj_end(j);
        }
        qf_json_arr_end(j);
        qf_json_obj_end(j);
        return;
    }
    printf("Archive:  %s (model folder %s%s%s, %" PRIu64 " entries, %" PRId64 " used)\n",
           qf_archive_path(a), qf_archive_folder(a)[0] ? "\"" : "", 
           qf_archive_folder(a)[0] ? qf_archive_folder(a) : "at the root",
           qf_archive_folder(a)[0] ? "\"" : "", qf_archive_entries_seen(a), n);
    for (i = 0; i < n; i++) {
        const qf_archive_member *m = qf_archive_member_at(a, i);
        printf("  %-40s %14s  ", m->name, qf_cli_commas(m->size, c, sizeof c));
        if (m->in_place)
            printf("in place at byte %" PRIu64 "\n", m->offset);
        else
            printf("extracted\n");
    }
}

static int inspect_st(const char *path, const qf_st *st)
{
    int64_t i, nt;
    uint32_t f, nf;
    uint64_t elems = 0, bytes = 0, size = 0;
    tally types[64];
    int ntypes = 0;
    char a[32], h[32], shape[160];

    nt = qf_st_tensor_count(st);
    nf = qf_st_file_count(st);
    for (f = 0; f < nf; f++)
        size += qf_st_file_size(st, f);
    for (i = 0; i < nt; i++) {
        const qf_st_tensor *t = qf_st_tensor_at(st, i);
        elems += t->n_elements;
        bytes += t->nbytes;
        tally_add(types, &ntypes, qf_dtype_name(t->dtype), t->nbytes, t->n_elements);
    }

    if (opt_json) {
        qf_json j;
        qf_json_init(&j, stdout, 1);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "file");
        qf_json_str(&j, shown(path));
        archive_listing(path, &j);
        qf_json_key(&j, "format");
        qf_json_str(&j, "safetensors");
        if (qf_st_index_path(st)) {
            qf_json_key(&j, "index");
            qf_json_str(&j, shown(qf_st_index_path(st)));
        }
        qf_json_key(&j, "size");
        qf_json_u64(&j, size);
        qf_json_key(&j, "files");
        qf_json_arr_begin(&j);
        for (f = 0; f < nf; f++) {
            int64_t m, nm = qf_st_meta_count(st, f);
            qf_json_obj_begin(&j);
            qf_json_key(&j, "path");
            qf_json_str(&j, shown(qf_st_file_path(st, f)));
            qf_json_key(&j, "size");
            qf_json_u64(&j, qf_st_file_size(st, f));
            qf_json_key(&j, "header_size");
            qf_json_u64(&j, qf_st_header_size(st, f));
            qf_json_key(&j, "metadata");
            qf_json_obj_begin(&j);
            for (m = 0; m < nm; m++) {
                const char *k, *v;
                qf_st_meta_at(st, f, m, &k, &v);
                qf_json_key(&j, k);
                qf_json_str(&j, v);
            }
            qf_json_obj_end(&j);
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        qf_json_key(&j, "tensors");
        qf_json_arr_begin(&j);
        for (i = 0; i < nt; i++) {
            const qf_st_tensor *t = qf_st_tensor_at(st, i);
            uint32_t d;
            qf_json_obj_begin(&j);
            qf_json_key(&j, "name");
            qf_json_str(&j, t->name);
            qf_json_key(&j, "dtype");
            qf_json_str(&j, qf_dtype_name(t->dtype));
            qf_json_key(&j, "shape");
            qf_json_arr_begin(&j);
            for (d = 0; d < t->n_dims; d++)
                qf_json_u64(&j, t->shape[d]);
            qf_json_arr_end(&j);
            qf_json_key(&j, "elements");
            qf_json_u64(&j, t->n_elements);
            qf_json_key(&j, "file");
            qf_json_u64(&j, t->file);
            qf_json_key(&j, "offset");
            qf_json_u64(&j, t->offset);
            qf_json_key(&j, "bytes");
            qf_json_u64(&j, t->nbytes);
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        json_totals(&j, (uint64_t)nt, elems, bytes, types, ntypes);
        qf_json_obj_end(&j);
        qf_json_end(&j);
        return 0;
    }

    archive_listing(path, NULL);
    printf("File:     %s\n", shown(path));
    if (qf_st_index_path(st))
        printf("Format:   safetensors, %u shards (index %s)\n", nf, shown(qf_st_index_path(st)));
    else
        printf("Format:   safetensors\n");
    printf("Size:     %s bytes (%s)\n", qf_cli_commas(size, a, sizeof a),
           qf_cli_human(size, h, sizeof h));
    printf("Contents: %" PRId64 " tensors\n", nt);
    for (f = 0; f < nf; f++) {
        int64_t m, nm = qf_st_meta_count(st, f);
        printf("\nFile %u: %s (%s bytes, header %s bytes)\n", f, shown(qf_st_file_path(st, f)),
               qf_cli_commas(qf_st_file_size(st, f), a, sizeof a),
               qf_cli_commas(qf_st_header_size(st, f), h, sizeof h));
        for (m = 0; m < nm; m++) {
            const char *k, *v;
            qf_st_meta_at(st, f, m, &k, &v);
            printf("  __metadata__ %s = ", k);
            qf_cli_print_escaped(stdout, v, strlen(v));
            putchar('\n');
        }
    }
    printf("\nTensors (shape row-major, as stored)\n");
    printf("%5s  %-48s %-7s %-18s %4s %12s %12s\n", "#", "name", "dtype", "shape", "file",
           "offset", "bytes");
    for (i = 0; i < nt; i++) {
        const qf_st_tensor *t = qf_st_tensor_at(st, i);
        printf("%5" PRId64 "  %-48s %-7s %-18s %4u %12" PRIu64 " %12" PRIu64 "\n", i + 1,
               t->name, qf_dtype_name(t->dtype), shape_str(t->shape, t->n_dims, shape, sizeof shape),
               t->file, t->offset, t->nbytes);
    }
    print_totals((uint64_t)nt, elems, bytes, types, ntypes);
    return 0;
}

/* =====================================================================
 * PyTorch checkpoints
 * ===================================================================== */

static int inspect_pt(const char *path, const qf_pt *pt)
{
    int64_t i, nt = qf_pt_tensor_count(pt), ng = qf_pt_global_count(pt);
    uint32_t f, nf = qf_pt_file_count(pt);
    uint64_t elems = 0, bytes = 0, size = 0;
    tally types[64];
    int ntypes = 0;
    char a[32], h[32], shape[160];

    for (f = 0; f < nf; f++)
        size += qf_pt_file_size(pt, f);
    for (i = 0; i < nt; i++) {
        const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);
        elems += t->n_elements;
        bytes += t->nbytes;
        tally_add(types, &ntypes, qf_dtype_name(t->dtype), t->nbytes, t->n_elements);
    }
    if (opt_json) {
        qf_json j;
        qf_json_init(&j, stdout, 1);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "file");
        qf_json_str(&j, shown(path));
        archive_listing(path, &j);
        qf_json_key(&j, "format");
        qf_json_str(&j, "pytorch");
        qf_json_key(&j, "size");
        qf_json_u64(&j, size);
        qf_json_key(&j, "files");
        qf_json_arr_begin(&j);
        for (f = 0; f < nf; f++) {
            qf_json_obj_begin(&j);
            qf_json_key(&j, "path");
            qf_json_str(&j, shown(qf_pt_file_path(pt, f)));
            qf_json_key(&j, "size");
            qf_json_u64(&j, qf_pt_file_size(pt, f));
            qf_json_key(&j, "pickle_protocol");
            qf_json_i64(&j, qf_pt_file_protocol(pt, f));
            qf_json_key(&j, "dict");
            qf_json_str(&j, qf_pt_file_dict_path(pt, f) ? qf_pt_file_dict_path(pt, f) : "");
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        qf_json_key(&j, "globals");
        qf_json_arr_begin(&j);
        for (i = 0; i < ng; i++) {
            const qf_pt_global *g = qf_pt_global_at(pt, i);
            qf_json_obj_begin(&j);
            qf_json_key(&j, "module");
            qf_json_str(&j, g->module);
            qf_json_key(&j, "name");
            qf_json_str(&j, g->name);
            qf_json_key(&j, "count");
            qf_json_u64(&j, g->count);
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        qf_json_key(&j, "tensors");
        qf_json_arr_begin(&j);
        for (i = 0; i < nt; i++) {
            const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);
            uint32_t d;
            qf_json_obj_begin(&j);
            qf_json_key(&j, "name");
            qf_json_str(&j, t->name);
            qf_json_key(&j, "dtype");
            qf_json_str(&j, qf_dtype_name(t->dtype));
            qf_json_key(&j, "shape");
            qf_json_arr_begin(&j);
            for (d = 0; d < t->n_dims; d++)
                qf_json_u64(&j, t->shape[d]);
            qf_json_arr_end(&j);
            qf_json_key(&j, "file");
            qf_json_u64(&j, t->file);
            qf_json_key(&j, "storage");
            qf_json_str(&j, t->storage);
            qf_json_key(&j, "storage_offset");
            qf_json_u64(&j, t->storage_offset);
            qf_json_key(&j, "bytes");
            qf_json_u64(&j, t->nbytes);
            qf_json_key(&j, "strided_copy");
            qf_json_bool(&j, t->materialized);
            if (t->same_as >= 0) {
                qf_json_key(&j, "same_as");
                qf_json_str(&j, qf_pt_tensor_at(pt, t->same_as)->name);
            }
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        json_totals(&j, (uint64_t)nt, elems, bytes, types, ntypes);
        qf_json_obj_end(&j);
        qf_json_end(&j);
        return 0;
    }
    archive_listing(path, NULL);
    printf("File:     %s\n", shown(path));
    printf("Format:   PyTorch checkpoint (zip + pickle, read without running it)%s%s\n",
           qf_pt_index_path(pt) ? ", index " : "", qf_pt_index_path(pt) ? shown(qf_pt_index_path(pt)) : "");
    printf("Size:     %s bytes (%s)\n", qf_cli_commas(size, a, sizeof a), qf_cli_human(size, h, sizeof h));
    printf("Contents: %" PRId64 " tensors\n", nt);
    for (f = 0; f < nf; f++) {
        const char *dp = qf_pt_file_dict_path(pt, f);
        printf("\nFile %u: %s (%s bytes, pickle protocol %d%s%s)\n", f, shown(qf_pt_file_path(pt, f)),
               qf_cli_commas(qf_pt_file_size(pt, f), a, sizeof a), qf_pt_file_protocol(pt, f),
               dp && *dp ? ", tensors under \"" : "", dp && *dp ? dp : "");
        if (dp && *dp)
            printf("  (the state dict is nested under \"%s\")\n", dp);
    }
    printf("\nGLOBALs referenced (every one is on the allow-list; nothing was executed)\n");
    for (i = 0; i < ng; i++) {
        const qf_pt_global *g = qf_pt_global_at(pt, i);
        printf("  %s.%s x%" PRIu64 "\n", g->module, g->name, g->count);
    }
    printf("\nTensors (shape row-major, state-dict order)\n");
    printf("%5s  %-48s %-7s %-18s %4s %8s %12s\n", "#", "name", "dtype", "shape", "file", "storage",
           "bytes");
    for (i = 0; i < nt; i++) {
        const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);
        printf("%5" PRId64 "  %-48s %-7s %-18s %4u %8s %12" PRIu64 "%s%s%s\n", i + 1, t->name,
               qf_dtype_name(t->dtype), shape_str(t->shape, t->n_dims, shape, sizeof shape), t->file,
               t->storage, t->nbytes, t->materialized ? "  (strided view, copied)" : "",
               t->same_as >= 0 ? "  same data as " : "",
               t->same_as >= 0 ? qf_pt_tensor_at(pt, t->same_as)->name : "");
    }
    print_totals((uint64_t)nt, elems, bytes, types, ntypes);
    return 0;
}

static int inspect_weights(const char *path)
{
    qf_weights *w = NULL;
    qf_err err = { 0 };
    int rc;

    if (qf_weights_open(path, &w, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    rc = qf_weights_st(w) ? inspect_st(path, qf_weights_st(w)) : inspect_pt(path, qf_weights_pt(w));
    qf_weights_close(w);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "full", no_argument, NULL, 'F' },   { "json", no_argument, NULL, 'J' },
        { "quiet", no_argument, NULL, 'q' },  { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
    };
    qf_err err = { 0 };
    const char *path;
    int c, kind;

    qf_cli_init(argv[0]);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'F': opt_full = 1; break;
        case 'J': opt_json = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        default:
            return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return qf_cli_usage_error("missing FILE");
    if (optind + 1 < argc)
        return qf_cli_usage_error("one FILE at a time (got '%s' too)", argv[optind + 1]);
    if (qf_tool_model_path(argv[optind], &path, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    kind = qf_tool_sniff(path, &err);
    if (kind < 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    if (kind == QF_KIND_QFM)
        return qf_tool_qfm_inspect(path, opt_json, opt_full);
    return kind == QF_KIND_GGUF ? inspect_gguf(path) : inspect_weights(path);
}
