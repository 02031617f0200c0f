/*
 * tests/util_vocab_dump.c - load a folder's tokenizer with convert/vocab.h,
 * and compare tokenizer keys of GGUF files.
 *
 *   util_vocab_dump write DIR OUT.gguf [N_VOCAB]
 *       qf_vocab_load(DIR, N_VOCAB) (default: DIR/config.json vocab_size, or
 *       0 without one), qf_vocab_write_gguf into an empty writer, and save
 *       OUT.gguf (no tensors; replaced if it exists). Prints one line:
 *       "<model> <n_tokens>".
 *   util_vocab_dump compare OURS.gguf GOLDEN.gguf
 *       The tokenizer.* keys of both files, in file order, must have the same
 *       names, order, types and encoded values. Prints "same <n> keys", or one
 *       line per difference (the first differing array element is named).
 *   util_vocab_dump keys FILE.gguf
 *       One line per tokenizer.* key: "<key> <TYPE> <n> <bytes>", where n is
 *       the element count (1 for scalars) and bytes the encoded pair size
 *       (key and value) as gguf_dump.py's offsets give it.
 *   util_vocab_dump get FILE.gguf KEY [INDEX]
 *       A scalar's value, an array's "<ELEMTYPE> <n>", or element INDEX.
 *
 * Exit 0; 1 on an error or a difference (message on stderr / stdout); 2 for
 * usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/vocab.h"
#include "formats/file.h"
#include "formats/gguf.h"

static const char *prog = "util_vocab_dump";

static int fail(const qf_err *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg[0] ? err->msg : qf_err_name(err->code));
    return 1;
}

/* config.json vocab_size, or 0. */
static uint64_t config_vocab_size(const char *dir)
{
    char path[4096];
    qf_map *m = NULL;
    cJSON *root, *vs;
    uint64_t n = 0;

    snprintf(path, sizeof path, "%s/config.json", dir);
    if (qf_map_open(path, &m, NULL) != 0)
        return 0;
    root = cJSON_ParseWithLength((const char *)qf_map_data(m), (size_t)qf_map_size(m));
    vs = cJSON_GetObjectItemCaseSensitive(root, "vocab_size");
    if (cJSON_IsNumber(vs) && vs->valuedouble > 0)
        n = (uint64_t)vs->valuedouble;
    cJSON_Delete(root);
    qf_map_close(m);
    return n;
}

static int cmd_write(const char *dir, const char *out, const char *nv)
{
    qf_err err = { 0 };
    qf_vocab *v = NULL;
    qf_gguf_writer *w = NULL;
    uint64_t n_vocab = nv ? strtoull(nv, NULL, 10) : config_vocab_size(dir);
    int rc;

    if ((rc = qf_vocab_load(dir, n_vocab, &v, &err)) != 0)
        goto done;
    if ((rc = qf_gguf_writer_new(&w, &err)) != 0)
        goto done;
    if ((rc = qf_vocab_write_gguf(v, w, &err)) != 0)
        goto done;
    if ((rc = qf_gguf_writer_begin(w, out, QF_OUT_FORCE, &err)) != 0)
        goto done;
    if ((rc = qf_gguf_writer_finish(w, &err)) != 0)
        goto done;
    printf("%s %" PRIu64 "\n", qf_vocab_model(v), qf_vocab_size(v));
done:
    qf_gguf_writer_free(w);
    qf_vocab_free(v);
    return rc ? fail(&err) : 0;
}

static int is_tok_key(const char *k)
{
    return strncmp(k, "tokenizer.", 10) == 0;
}

/* Encoded size of pair i: from its key's offset to the next pair's. */
static uint64_t pair_bytes(const qf_gguf *g, int64_t i)
{
    qf_gguf_val v;

    qf_gguf_kv_value(g, i, &v);
    return 8 + strlen(qf_gguf_kv_key(g, i)) + 4 + v.raw_len;
}

/* Index of the first differing element of two arrays of the same type. */
static int64_t first_diff(const qf_gguf_val *a, const qf_gguf_val *b)
{
    qf_gguf_iter ia, ib;
    qf_gguf_val ea, eb;
    int64_t k = 0;

    qf_gguf_iter_init(&ia, a);
    qf_gguf_iter_init(&ib, b);
    for (;; k++) {
        int ra = qf_gguf_iter_next(&ia, &ea), rb = qf_gguf_iter_next(&ib, &eb);
        if (ra != 1 || rb != 1)
            return ra == rb ? -1 : k;
        if (ea.raw_len != eb.raw_len || memcmp(ea.raw, eb.raw, (size_t)ea.raw_len) != 0)
            return k;
    }
}

static void print_elem(const qf_gguf_val *e)
{
    switch (e->type) {
    case QF_GGUF_STRING:
        printf("%.*s\n", (int)e->str_len, e->str);
        break;
    case QF_GGUF_FLOAT32:
    case QF_GGUF_FLOAT64:
        printf("%.9g\n", e->f);
        break;
    case QF_GGUF_BOOL:
        printf("%s\n", e->u ? "true" : "false");
        break;
    case QF_GGUF_INT8:
    case QF_GGUF_INT16:
    case QF_GGUF_INT32:
    case QF_GGUF_INT64:
        printf("%" PRId64 "\n", e->i);
        break;
    case QF_GGUF_ARRAY:
        printf("%s %" PRIu64 "\n", qf_gguf_vtype_name(e->arr_type), e->arr_n);
        break;
    default:
        printf("%" PRIu64 "\n", e->u);
        break;
    }
}

static int cmd_compare(const char *ours, const char *golden)
{
    qf_err err = { 0 };
    qf_gguf *a = NULL, *b = NULL;
    int64_t ia = 0, ib = 0, same = 0, bad = 0;
    int rc;

    if ((rc = qf_gguf_open(ours, &a, &err)) != 0 || (rc = qf_gguf_open(golden, &b, &err)) != 0) {
        qf_gguf_close(a);
        return fail(&err);
    }
    for (;;) {
        qf_gguf_val va, vb;
        const char *ka, *kb;

        while (ia < qf_gguf_kv_count(a) && !is_tok_key(qf_gguf_kv_key(a, ia)))
            ia++;
        while (ib < qf_gguf_kv_count(b) && !is_tok_key(qf_gguf_kv_key(b, ib)))
            ib++;
        if (ia >= qf_gguf_kv_count(a) || ib >= qf_gguf_kv_count(b))
            break;
        ka = qf_gguf_kv_key(a, ia);
        kb = qf_gguf_kv_key(b, ib);
        qf_gguf_kv_value(a, ia, &va);
        qf_gguf_kv_value(b, ib, &vb);
        if (strcmp(ka, kb) != 0) {
            printf("key order: ours has %s where the golden file has %s\n", ka, kb);
            bad++;
            break;
        }
        if (va.type != vb.type) {
            printf("%s: type %s, golden %s\n", ka, qf_gguf_vtype_name(va.type),
                   qf_gguf_vtype_name(vb.type));
            bad++;
        } else if (va.raw_len != vb.raw_len || memcmp(va.raw, vb.raw, (size_t)va.raw_len) != 0) {
            if (va.type == QF_GGUF_ARRAY) {
                int64_t k = first_diff(&va, &vb);
                printf("%s: arrays differ (%" PRIu64 " vs %" PRIu64 " elements; first difference "
                       "at element %" PRId64 ")\n", ka, va.arr_n, vb.arr_n, k);
            } else {
                printf("%s: values differ\n", ka);
            }
            bad++;
        } else {
            same++;
        }
        ia++;
        ib++;
    }
    for (; ia < qf_gguf_kv_count(a); ia++)
        if (is_tok_key(qf_gguf_kv_key(a, ia))) {
            printf("%s: only in ours\n", qf_gguf_kv_key(a, ia));
            bad++;
        }
    for (; ib < qf_gguf_kv_count(b); ib++)
        if (is_tok_key(qf_gguf_kv_key(b, ib))) {
            printf("%s: only in the golden file\n", qf_gguf_kv_key(b, ib));
            bad++;
        }
    if (!bad)
        printf("same %" PRId64 " keys\n", same);
    qf_gguf_close(a);
    qf_gguf_close(b);
    return bad ? 1 : 0;
}

static int cmd_keys(const char *file)
{
    qf_err err = { 0 };
    qf_gguf *g = NULL;
    int64_t i;

    if (qf_gguf_open(file, &g, &err) != 0)
        return fail(&err);
    for (i = 0; i < qf_gguf_kv_count(g); i++) {
        qf_gguf_val v;
        const char *k = qf_gguf_kv_key(g, i);
        if (!is_tok_key(k))
            continue;
        qf_gguf_kv_value(g, i, &v);
        printf("%s %s %" PRIu64 " %" PRIu64 "\n", k,
               v.type == QF_GGUF_ARRAY ? qf_gguf_vtype_name(v.arr_type) : qf_gguf_vtype_name(v.type),
               v.type == QF_GGUF_ARRAY ? v.arr_n : 1, pair_bytes(g, i));
    }
    qf_gguf_close(g);
    return 0;
}

static int cmd_get(const char *file, const char *key, const char *index)
{
    qf_err err = { 0 };
    qf_gguf *g = NULL;
    qf_gguf_val v, e;
    int64_t i;
    int rc = 1;

    if (qf_gguf_open(file, &g, &err) != 0)
        return fail(&err);
    i = qf_gguf_find_key(g, key);
    if (i < 0) {
        fprintf(stderr, "%s: %s: no key %s\n", prog, file, key);
        goto done;
    }
    qf_gguf_kv_value(g, i, &v);
    if (index && v.type == QF_GGUF_ARRAY) {
        qf_gguf_iter it;
        uint64_t want = strtoull(index, NULL, 10), k;
        qf_gguf_iter_init(&it, &v);
        for (k = 0; k <= want; k++)
            if (qf_gguf_iter_next(&it, &e) != 1) {
                fprintf(stderr, "%s: %s: %s has no element %s\n", prog, file, key, index);
                goto done;
            }
        print_elem(&e);
    } else {
        print_elem(&v);
    }
    rc = 0;
done:
    qf_gguf_close(g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "write") == 0)
        return cmd_write(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (argc == 4 && strcmp(argv[1], "compare") == 0)
        return cmd_compare(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "keys") == 0)
        return cmd_keys(argv[2]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "get") == 0)
        return cmd_get(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    fprintf(stderr, "usage: %s write DIR OUT.gguf [N_VOCAB] | compare OURS GOLDEN | keys FILE | "
            "get FILE KEY [INDEX]\n", prog);
    return 2;
}
