/*
 * tests/test_pytorch.c - zip reader, pickle reader, PyTorch checkpoints.
 *
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".":
 *   fixtures/pytorch/   files torch 1.13.1 wrote, and expected.tsv (names,
 *                       dtypes, shapes, SHA-256 of the bytes torch reports)
 *   fixtures/malicious/ hostile files and expected.tsv (reason substrings)
 * Nothing here needs ../shared. Temporary folders come from mkdtemp and are
 * removed by each test.
 */
#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/error.h"
#include "formats/hash.h"
#include "formats/pickle.h"
#include "formats/pytorch.h"
#include "formats/zip.h"

/* =====================================================================
 * Helpers
 * ===================================================================== */

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *p = tu_read_file(from, &n);
    tu_write_file(to, p, n);
    free(p);
}

static void sha_hex(const void *p, uint64_t n, char hex[QF_SHA256_HEX])
{
    uint8_t d[QF_SHA256_LEN];
    assert_int_equal(qf_sha256_buf(p, (size_t)n, d), 0);
    qf_sha256_hex(d, hex);
}

static const char *shape_str(char *buf, size_t cap, uint32_t n, const uint64_t *v)
{
    size_t used = 0;
    uint32_t i;

    used += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRIu64, i ? ", " : "", v[i]);
    snprintf(buf + used, cap - used, "]");
    return buf;
}

/* A message is one line that starts with `prefix`. */
static void assert_message(const qf_err *err, const char *prefix, const char *substring)
{
    if (strncmp(err->msg, prefix, strlen(prefix)) != 0 || strchr(err->msg, '\n') ||
        (substring && !strstr(err->msg, substring))) {
        print_error("message: %s\n  wanted prefix: %s\n  wanted: %s\n", err->msg, prefix,
                    substring ? substring : "(any)");
        fail();
    }
}

/* Split a TSV line in place; returns the field count. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    char *p = line, *nl = strchr(line, '\n');

    if (nl)
        *nl = '\0';
    while (n < max) {
        f[n++] = p;
        p = strchr(p, '\t');
        if (!p)
            break;
        *p++ = '\0';
    }
    return n;
}

/* =====================================================================
 * PyTorch fixtures against what torch reported
 * ===================================================================== */

static qf_pt *open_fixture(const char *name)
{
    char rel[512];
    qf_err err = { 0 };
    qf_pt *pt = NULL;

    snprintf(rel, sizeof rel, "fixtures/pytorch/%s", name);
    if (qf_pt_open(tu_fixture(rel), &pt, &err) != 0) {
        print_error("%s: %s\n", name, err.msg);
        fail();
    }
    return pt;
}

static void test_expected_tensors(void **state)
{
    FILE *f = fopen(tu_fixture("fixtures/pytorch/expected.tsv"), "r");
    char line[2048], cur[256] = "", *fld[8];
    qf_pt *pt = NULL;
    int64_t at = 0, checked = 0;

    (void)state;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        const qf_pt_tensor *t;
        const qf_st_tensor *st;
        char hex[QF_SHA256_HEX], shape[256];

        if (line[0] == '#')
            continue;
        assert_int_equal(split_tabs(line, fld, 8), 7);
        if (strcmp(fld[0], cur) != 0) {
            if (pt)
                assert_int_equal(qf_pt_tensor_count(pt), at); /* no extra tensors */
            qf_pt_close(pt);
            snprintf(cur, sizeof cur, "%s", fld[0]);
            pt = open_fixture(cur);
            at = 0;
        }
        t = qf_pt_tensor_at(pt, at);
        if (!t) {
            print_error("%s: tensor %" PRId64 " (%s) missing\n", cur, at, fld[1]);
            fail();
        }
        if (strcmp(t->name, fld[1]) != 0 || strcmp(qf_dtype_name(t->dtype), fld[2]) != 0 ||
            strcmp(shape_str(shape, sizeof shape, t->n_dims, t->shape), fld[3]) != 0) {
            print_error("%s: tensor %" PRId64 ": got %s %s %s, torch says %s %s %s\n", cur, at,
                        t->name, qf_dtype_name(t->dtype), shape, fld[1], fld[2], fld[3]);
            fail();
        }
        assert_int_equal(t->nbytes, t->n_elements * qf_dtype_size(t->dtype));
        sha_hex(t->data, t->nbytes, hex);
        if (strcmp(hex, fld[4]) != 0) {
            print_error("%s: tensor \"%s\": sha256 %s, torch's bytes give %s\n", cur, t->name, hex,
                        fld[4]);
            fail();
        }
        /* torch's is_contiguous <=> zero copy */
        assert_int_equal(t->materialized, strcmp(fld[5], "0") == 0);
        if (strcmp(fld[6], "-") == 0) {
            assert_int_equal(t->same_as, -1);
        } else {
            const qf_pt_tensor *o = qf_pt_tensor_at(pt, t->same_as);
            assert_non_null(o);
            assert_string_equal(o->name, fld[6]);
            assert_ptr_equal(o->data, t->data); /* tied: the very same bytes */
        }
        /* the safetensors-shaped mirror */
        st = qf_pt_tensor_st(pt, at);
        assert_non_null(st);
        assert_string_equal(st->name, t->name);
        assert_ptr_equal(st->data, t->data);
        assert_int_equal(st->nbytes, t->nbytes);
        assert_int_equal(st->offset, t->offset);
        assert_int_equal(st->file, t->file);
        assert_int_equal(qf_pt_find(pt, t->name), at);
        at++;
        checked++;
    }
    fclose(f);
    assert_non_null(pt);
    assert_int_equal(qf_pt_tensor_count(pt), at);
    qf_pt_close(pt);
    assert_true(checked > 50);
}

static void test_expected_files(void **state)
{
    FILE *f = fopen(tu_fixture("fixtures/pytorch/expected-files.tsv"), "r");
    char line[1024], *fld[8];
    int n = 0;

    (void)state;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        qf_pt *pt;
        uint32_t k;
        uint64_t skipped = 0;

        assert_int_equal(split_tabs(line, fld, 8), 5);
        pt = open_fixture(fld[0]);
        assert_int_equal(qf_pt_tensor_count(pt), strtoll(fld[1], NULL, 10));
        for (k = 0; k < qf_pt_file_count(pt); k++) {
            const char *dp = qf_pt_file_dict_path(pt, k);
            assert_string_equal(dp[0] ? dp : "-", fld[2]);
            assert_int_equal(qf_pt_file_protocol(pt, k), atoi(fld[4]));
            assert_true(qf_pt_file_version(pt, k) >= 1);
            assert_non_null(qf_pt_file_root(pt, k));
            skipped += qf_pt_file_skipped(pt, k);
        }
        assert_int_equal(skipped, strtoull(fld[3], NULL, 10));
        assert_int_equal(qf_pt_verify(pt, NULL), 0);
        qf_pt_close(pt);
        n++;
    }
    fclose(f);
    assert_true(n >= 15);
}

static void test_refused_fixtures(void **state)
{
    FILE *f = fopen(tu_fixture("fixtures/pytorch/refused.tsv"), "r");
    char line[1024], *fld[4], rel[512];
    int n = 0;

    (void)state;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        qf_err err = { 0 };
        qf_pt *pt = (qf_pt *)&err; /* must be reset to NULL */
        const char *path;

        assert_int_equal(split_tabs(line, fld, 4), 2);
        snprintf(rel, sizeof rel, "fixtures/pytorch/%s", fld[0]);
        path = tu_fixture(rel);
        assert_true(qf_pt_open(path, &pt, &err) < 0);
        assert_null(pt);
        assert_message(&err, path, fld[1]);
        n++;
    }
    fclose(f);
    assert_true(n >= 4);
}

/* The llama folder, the sharded folder and its index open the same way. */
static void test_folders_and_index(void **state)
{
    qf_err err = { 0 };
    qf_pt *a = NULL, *b = NULL;
    int64_t i;

    (void)state;
    assert_int_equal(qf_pt_open(tu_fixture("fixtures/pytorch/sharded"), &a, &err), 0);
    assert_int_equal(qf_pt_open(tu_fixture("fixtures/pytorch/sharded/pytorch_model.bin.index.json"), &b, &err), 0);
    assert_int_equal(qf_pt_file_count(a), 2);
    assert_non_null(qf_pt_index_path(a));
    assert_true(strstr(qf_pt_file_path(a, 0), "00001-of-00002") != NULL);
    assert_int_equal(qf_pt_tensor_count(a), qf_pt_tensor_count(b));
    for (i = 0; i < qf_pt_tensor_count(a); i++) {
        const qf_pt_tensor *x = qf_pt_tensor_at(a, i), *y = qf_pt_tensor_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    /* shards in name order, pickle order inside: z.first before a.second */
    assert_string_equal(qf_pt_tensor_at(a, 0)->name, "z.first");
    assert_int_equal(qf_pt_tensor_at(a, 2)->file, 1);
    qf_pt_close(a);
    qf_pt_close(b);

    assert_int_equal(qf_pt_open(tu_fixture("fixtures/pytorch/llama"), &a, &err), 0);
    assert_int_equal(qf_pt_open(tu_fixture("fixtures/pytorch/llama/pytorch_model.bin"), &b, &err), 0);
    assert_int_equal(qf_pt_tensor_count(a), 21);
    assert_string_equal(qf_pt_tensor_at(a, 0)->name, "model.embed_tokens.weight");
    assert_string_equal(qf_pt_tensor_at(a, 20)->name, "lm_head.weight");
    assert_string_equal(qf_pt_file_root(a, 0), "pytorch_model");
    for (i = 0; i < 21; i++)
        assert_memory_equal(qf_pt_tensor_at(a, i)->data, qf_pt_tensor_at(b, i)->data,
                            qf_pt_tensor_at(a, i)->nbytes);
    qf_pt_close(a);
    qf_pt_close(b);
}

/* Hostile index files and folders. */
static void test_index_errors(void **state)
{
    char *d = tu_tmpdir("pt");
    const char *n1 = "pytorch_model-00001-of-00002.bin", *n2 = "pytorch_model-00002-of-00002.bin";
    char src[512];
    qf_err err = { 0 };
    qf_pt *pt = NULL;
    const char *idx = tu_path(d, "pytorch_model.bin.index.json");

    (void)state;
    snprintf(src, sizeof src, "fixtures/pytorch/sharded/%s", n1);
    copy_file(tu_fixture(src), tu_path(d, n1));
    snprintf(src, sizeof src, "fixtures/pytorch/sharded/%s", n2);
    copy_file(tu_fixture(src), tu_path(d, n2));

    tu_write_text(idx, "{\"weight_map\": {\"z.first\": \"pytorch_model-00001-of-00002.bin\"}}");
    assert_int_equal(qf_pt_open(d, &pt, &err), QF_EFORMAT);
    assert_message(&err, idx, "tensor \"a.second\" in shard \"pytorch_model-00001-of-00002.bin\" is not listed");

    memset(&err, 0, sizeof err);
    tu_write_text(idx, "{\"weight_map\": {\"z.first\": \"../pytorch_model-00001-of-00002.bin\"}}");
    assert_int_equal(qf_pt_open(idx, &pt, &err), QF_EFORMAT);
    assert_message(&err, idx, "is not a plain file name");

    memset(&err, 0, sizeof err);
    tu_write_text(idx, "{\"weight_map\": {\"z.first\": \"missing.bin\"}}");
    assert_int_equal(qf_pt_open(idx, &pt, &err), QF_ENOTFOUND);
    assert_message(&err, idx, "shard \"missing.bin\" is missing");

    memset(&err, 0, sizeof err);
    tu_write_text(idx, "{\"weight_map\": {\"z.first\": \"pytorch_model-00002-of-00002.bin\", "
                    "\"a.second\": \"pytorch_model-00001-of-00002.bin\"}}");
    assert_int_equal(qf_pt_open(idx, &pt, &err), QF_EFORMAT);
    assert_message(&err, idx, "is in shard \"pytorch_model-00001-of-00002.bin\" but weight_map says");

    memset(&err, 0, sizeof err);
    tu_write_text(idx, "[1, 2]");
    assert_int_equal(qf_pt_open(idx, &pt, &err), QF_EFORMAT);
    assert_message(&err, idx, "not a JSON object");

    /* Without the index: two checkpoints and no rule to pick one. */
    unlink(idx);
    memset(&err, 0, sizeof err);
    assert_int_equal(qf_pt_open(d, &pt, &err), QF_EFORMAT);
    assert_message(&err, d, "2 checkpoint files and no pytorch_model.bin.index.json");
    assert_null(pt);

    /* A trainer's side files are never taken for the model. */
    unlink(tu_path(d, n2));
    copy_file(tu_fixture("fixtures/pytorch/tied.pt"), tu_path(d, "optimizer.pt"));
    copy_file(tu_fixture("fixtures/pytorch/tied.pt"), tu_path(d, "training_args.bin"));
    assert_int_equal(qf_pt_open(d, &pt, &err), 0);
    assert_true(strstr(qf_pt_file_path(pt, 0), n1) != NULL);
    qf_pt_close(pt);
    unlink(tu_path(d, n1));
    memset(&err, 0, sizeof err);
    assert_int_equal(qf_pt_open(d, &pt, &err), QF_ENOTFOUND);
    assert_message(&err, d, "no PyTorch checkpoint");
    tu_rm_tree(d);
    free(d);
}

/* Over a buffer: the same tensors; contiguous ones point into the buffer. */
static void test_buffer_zero_copy(void **state)
{
    size_t n;
    uint8_t *buf = tu_read_file(tu_fixture("fixtures/pytorch/views.pt"), &n);
    qf_err err = { 0 };
    qf_pt *pt = NULL, *ref = open_fixture("views.pt");
    int64_t i, copies = 0;

    (void)state;
    assert_int_equal(qf_pt_open_buffer(buf, n, "views.pt", &pt, &err), 0);
    assert_int_equal(qf_pt_tensor_count(pt), qf_pt_tensor_count(ref));
    for (i = 0; i < qf_pt_tensor_count(pt); i++) {
        const qf_pt_tensor *t = qf_pt_tensor_at(pt, i), *r = qf_pt_tensor_at(ref, i);
        assert_string_equal(t->name, r->name);
        assert_memory_equal(t->data, r->data, t->nbytes);
        if (t->materialized) {
            assert_true(t->data < buf || t->data >= buf + n);
            copies++;
        } else {
            assert_ptr_equal(t->data, buf + t->offset);
        }
        assert_true(t->offset <= n);
        qf_pt_release_tensor(pt, i); /* a no-op over a buffer */
    }
    assert_true(copies >= 5);
    /* "again_t" is the same view as "transposed": one copy, shared */
    i = qf_pt_find(pt, "again_t");
    assert_true(i >= 0);
    assert_int_equal(qf_pt_tensor_at(pt, i)->same_as, qf_pt_find(pt, "transposed"));
    assert_ptr_equal(qf_pt_tensor_at(pt, i)->data, qf_pt_tensor_at(pt, qf_pt_find(pt, "transposed"))->data);
    assert_int_equal(qf_pt_find(pt, "nope"), -1);
    assert_null(qf_pt_tensor_at(pt, -1));
    assert_null(qf_pt_tensor_at(pt, qf_pt_tensor_count(pt)));
    qf_pt_close(pt);
    qf_pt_close(ref);
    free(buf);
}

/* The GLOBALs list names what data.pkl references. */
static void test_globals(void **state)
{
    qf_pt *pt = open_fixture("hand2x-v3.pt");
    int64_t i;
    int seen_v3 = 0, seen_untyped = 0, seen_od = 0;

    (void)state;
    for (i = 0; i < qf_pt_global_count(pt); i++) {
        const qf_pt_global *g = qf_pt_global_at(pt, i);
        assert_true(g->count >= 1);
        seen_v3 |= strcmp(g->name, "_rebuild_tensor_v3") == 0 && g->count == 2;
        seen_untyped |= strcmp(g->name, "UntypedStorage") == 0;
        seen_od |= strcmp(g->module, "collections") == 0 && strcmp(g->name, "OrderedDict") == 0;
    }
    assert_true(seen_v3 && seen_untyped && seen_od);
    assert_null(qf_pt_global_at(pt, -1));
    qf_pt_close(pt);
    qf_pt_close(NULL);
}

/* A flipped byte in a storage is found by qf_pt_verify (CRC-32). */
static void test_verify(void **state)
{
    size_t n;
    uint8_t *buf = tu_read_file(tu_fixture("fixtures/pytorch/dtypes.pt"), &n);
    qf_err err = { 0 };
    qf_pt *pt = NULL;
    const qf_pt_tensor *t;

    (void)state;
    assert_int_equal(qf_pt_open_buffer(buf, n, "dtypes.pt", &pt, &err), 0);
    assert_int_equal(qf_pt_verify(pt, &err), 0);
    t = qf_pt_tensor_at(pt, qf_pt_find(pt, "i64"));
    buf[t->offset + 3] ^= 0x40;
    assert_int_equal(qf_pt_verify(pt, &err), QF_EMISMATCH);
    assert_message(&err, "dtypes.pt: zip: entry \"dtypes/data/", "CRC-32 is");
    qf_pt_close(pt);
    free(buf);
}

/* Recompute every stored member's CRC-32 (central, and local unless a data
 * descriptor holds it), so that a changed byte reaches the parsers behind
 * the CRC check. Does nothing to a buffer that is not a readable zip. */
static void fix_crcs(uint8_t *buf, size_t n)
{
    qf_zip *z = NULL;
    int64_t i;

    if (qf_zip_open_buffer(buf, n, "fix", &z, NULL) != 0)
        return;
    for (i = 0; i < qf_zip_count(z); i++) {
        const qf_zip_entry *e = qf_zip_entry_at(z, i);
        const uint8_t *p;
        uint64_t len;
        uint32_t crc;
        if (qf_zip_stored_data(z, i, &p, &len, NULL) != 0)
            continue;
        crc = qf_zip_crc32(0, p, (size_t)len);
        qf_put32(buf + e->central_offset + 16, crc);
        if (!(e->flags & 8))
            qf_put32(buf + e->header_offset + 14, crc);
    }
    qf_zip_close(z);
}

/* Every prefix and every single-byte change of a real checkpoint either opens
 * or fails with one clean line; never a crash (ASan watches the reads). */
static void test_prefixes_and_flips(void **state)
{
    size_t n, k;
    uint8_t *buf = tu_read_file(tu_fixture("fixtures/pytorch/tied.pt"), &n), *cp;
    int opened = 0;

    (void)state;
    for (k = 0; k < n; k++) {
        qf_err err = { 0 };
        qf_pt *pt = NULL;
        cp = malloc(k ? k : 1);
        assert_non_null(cp);
        memcpy(cp, buf, k);
        assert_true(qf_pt_open_buffer(cp, k, "tied.pt", &pt, &err) < 0);
        assert_null(pt);
        assert_message(&err, "tied.pt: ", NULL);
        free(cp);
    }
    for (k = 0; k < n; k++) {
        static const uint8_t flips[] = { 0x01, 0x80, 0xff };
        size_t j;
        for (j = 0; j < sizeof flips; j++) {
            qf_err err = { 0 };
            qf_pt *pt = NULL;
            cp = malloc(n);
            assert_non_null(cp);
            memcpy(cp, buf, n);
            cp[k] ^= flips[j];
            fix_crcs(cp, n);
            if (qf_pt_open_buffer(cp, n, "tied.pt", &pt, &err) == 0) {
                int64_t i;
                opened++;
                for (i = 0; i < qf_pt_tensor_count(pt); i++) {
                    const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);
                    char hex[QF_SHA256_HEX];
                    sha_hex(t->data, t->nbytes, hex); /* reads every byte */
                }
                qf_pt_close(pt);
            } else {
                assert_null(pt);
                assert_message(&err, "tied.pt: ", NULL);
            }
            free(cp);
        }
    }
    assert_true(opened > 0); /* flips inside tensor data still open */
    free(buf);
}

/* =====================================================================
 * Hostile files
 * ===================================================================== */

typedef struct snap {
    char name[256];
    long long size, mtime;
} snap;

/* Names, sizes and mtimes of a folder's entries, sorted by name. */
static int take_snapshot(const char *dir, snap *out, int max)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0, i, j;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL && n < max) {
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        assert_int_equal(lstat(tu_path(dir, de->d_name), &sb), 0);
        snprintf(out[n].name, sizeof out[n].name, "%s", de->d_name);
        out[n].size = (long long)sb.st_size;
        out[n].mtime = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
        n++;
    }
    closedir(d);
    for (i = 1; i < n; i++)
        for (j = i; j > 0 && strcmp(out[j - 1].name, out[j].name) > 0; j--) {
            snap t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static int count_pwned(void)
{
    glob_t g;
    int n;

    if (glob("/tmp/qforge-pwned*", 0, NULL, &g) != 0)
        return 0;
    n = (int)g.gl_pathc;
    globfree(&g);
    return n;
}

static void test_malicious(void **state)
{
    FILE *f = fopen(tu_fixture("fixtures/malicious/expected.tsv"), "r");
    char line[2048], *fld[4], rel[512], *d = tu_tmpdir("pt");
    static snap before[512], after[512], fx_before[512], fx_after[512];
    int n = 0, nb, na, fb, fa, i, listed_files = 0;
    DIR *dd;
    struct dirent *de;

    (void)state;
    assert_non_null(f);
    assert_int_equal(count_pwned(), 0);
    fb = take_snapshot(tu_fixture("fixtures/malicious"), fx_before, 512);
    /* Copy every hostile file into the temp folder, then open them there. */
    while (fgets(line, sizeof line, f)) {
        assert_int_equal(split_tabs(line, fld, 4), 2);
        snprintf(rel, sizeof rel, "fixtures/malicious/%s", fld[0]);
        copy_file(tu_fixture(rel), tu_path(d, fld[0]));
    }
    nb = take_snapshot(d, before, 512);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        qf_err err = { 0 }, err2 = { 0 };
        qf_pt *pt = (qf_pt *)&err;
        const char *path;
        uint8_t *buf;
        size_t len;
        int rc;

        assert_int_equal(split_tabs(line, fld, 4), 2);
        path = tu_path(d, fld[0]);
        rc = qf_pt_open(path, &pt, &err);
        if (rc >= 0) {
            print_error("%s was accepted\n", fld[0]);
            fail();
        }
        assert_null(pt);
        assert_int_equal(err.code, rc);
        assert_message(&err, path, fld[1]);
        /* the buffer entry point refuses it the same way */
        buf = tu_read_file(path, &len);
        assert_int_equal(qf_pt_open_buffer(buf, len, fld[0], &pt, &err2), rc);
        assert_message(&err2, fld[0], fld[1]);
        free(buf);
        n++;
    }
    fclose(f);
    assert_true(n >= 15);

    /* Nothing ran: no payload file, the temp folder and the fixtures as they were. */
    assert_int_equal(count_pwned(), 0);
    na = take_snapshot(d, after, 512);
    assert_int_equal(na, nb);
    for (i = 0; i < na; i++) {
        assert_string_equal(after[i].name, before[i].name);
        assert_int_equal(after[i].size, before[i].size);
        assert_int_equal(after[i].mtime, before[i].mtime);
    }
    fa = take_snapshot(tu_fixture("fixtures/malicious"), fx_after, 512);
    assert_int_equal(fa, fb);
    for (i = 0; i < fa; i++) {
        assert_string_equal(fx_after[i].name, fx_before[i].name);
        assert_int_equal(fx_after[i].mtime, fx_before[i].mtime);
    }
    /* Every hostile file is in expected.tsv. */
    dd = opendir(tu_fixture("fixtures/malicious"));
    assert_non_null(dd);
    while ((de = readdir(dd)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 3 && strcmp(de->d_name + l - 3, ".pt") == 0) {
            struct stat sb;
            listed_files++;
            if (stat(tu_path(d, de->d_name), &sb) != 0) {
                print_error("%s is not in fixtures/malicious/expected.tsv\n", de->d_name);
                fail();
            }
        }
    }
    closedir(dd);
    assert_int_equal(listed_files, n);
    tu_rm_tree(d);
    free(d);
}

/* =====================================================================
 * The pickle reader on its own
 * ===================================================================== */

static const qf_pkl_allow ALLOW[] = {
    { "collections", "OrderedDict", QF_PKL_DICT_TYPE, 1 },
    { "m", "f", QF_PKL_CALLABLE, 2 },
    { "m", "V", QF_PKL_VALUE, 3 },
};

static int pkl(const void *p, size_t n, qf_pkl **out, qf_err *err)
{
    memset(err, 0, sizeof *err);
    return qf_pkl_read(p, n, "t.pkl", ALLOW, 3, NULL, out, err);
}

static void test_pickle_values(void **state)
{
    /* protocol 4: FRAME, MEMOIZE, STACK_GLOBAL, BINGET, a list holding itself,
     * LONG1 -2, BINFLOAT 1.5, INT 01, SHORT_BINBYTES, a CALL of m.f, a set */
    static const uint8_t p[] = {
        0x80, 0x04, 0x95, 0x40, 0, 0, 0, 0, 0, 0, 0,
        '}', 0x94,                                   /* dict, memo 0 */
        '(',
        0x8c, 1, 'a', ']', 0x94, 'h', 1, 'a',         /* "a": [self]  (memo 1) */
        0x8c, 1, 'b', 0x8a, 1, 0xfe,                  /* "b": -2 */
        0x8c, 1, 'c', 'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, /* "c": 1.5 */
        0x8c, 1, 'd', 'I', '0', '1', '\n',            /* "d": True */
        0x8c, 1, 'e', 'C', 2, 0, 1,                   /* "e": b"\0\1" */
        0x8c, 1, 'f', 0x8c, 1, 'm', 0x8c, 1, 'f', 0x93, 'K', 7, 0x85, 'R', /* "f": m.f(7) */
        0x8c, 1, 'g', 0x8f, '(', 'K', 1, 'K', 2, 0x90, /* "g": {1, 2} */
        'u', '.'
    };
    qf_pkl *k = NULL;
    qf_err err;
    const qf_pkl_obj *root, *o;
    uint32_t i;

    (void)state;
    if (pkl(p, sizeof p, &k, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(qf_pkl_protocol(k), 4);
    root = qf_pkl_get(k, qf_pkl_root(k));
    assert_int_equal(root->kind, QF_PKL_DICT);
    assert_int_equal(root->n, 7);
    o = qf_pkl_get(k, root->items[1]);
    assert_int_equal(o->kind, QF_PKL_LIST);
    assert_int_equal(o->items[0], root->items[1]); /* itself */
    assert_int_equal(qf_pkl_get(k, root->items[3])->i, -2);
    assert_true(qf_pkl_get(k, root->items[5])->f == 1.5);
    assert_int_equal(qf_pkl_get(k, root->items[7])->kind, QF_PKL_BOOL);
    assert_int_equal(qf_pkl_get(k, root->items[7])->i, 1);
    o = qf_pkl_get(k, root->items[9]);
    assert_int_equal(o->kind, QF_PKL_BYTES);
    assert_int_equal(o->len, 2);
    o = qf_pkl_get(k, root->items[11]);
    assert_int_equal(o->kind, QF_PKL_CALL);
    assert_string_equal(qf_pkl_global_at(k, o->global)->name, "f");
    assert_int_equal(qf_pkl_global_at(k, o->global)->tag, 2);
    assert_int_equal(qf_pkl_get(k, qf_pkl_get(k, o->arg)->items[0])->i, 7);
    o = qf_pkl_get(k, root->items[13]);
    assert_int_equal(o->kind, QF_PKL_SET);
    assert_int_equal(o->n, 2);
    assert_int_equal(qf_pkl_global_count(k), 1);
    for (i = 1; i <= qf_pkl_count(k); i++)
        assert_non_null(qf_pkl_kind_name(qf_pkl_get(k, i)->kind));
    assert_null(qf_pkl_get(k, 0));
    assert_null(qf_pkl_get(k, qf_pkl_count(k) + 1));
    qf_pkl_free(k);

    /* every proper prefix fails cleanly */
    for (i = 0; i < sizeof p; i++) {
        uint8_t *cp = malloc(i ? i : 1);
        assert_non_null(cp);
        memcpy(cp, p, i);
        k = (qf_pkl *)&err;
        assert_true(pkl(cp, i, &k, &err) < 0);
        assert_null(k);
        assert_message(&err, "t.pkl: byte ", NULL);
        free(cp);
    }
}

#define C(s, code, msg) { s, sizeof(s) - 1, code, msg }

static void test_pickle_refusals(void **state)
{
    static const struct {
        const char *p;
        size_t n;
        int code;
        const char *msg;
    } cases[] = {
        C("\x80\x02" "cos\nsystem\n" ")R.", QF_EFORMAT, "byte 2: GLOBAL os.system is not allowed"),
        C("\x80\x02" "cm\nV\n" ")R.", QF_EFORMAT, "REDUCE calls m.V, which is allowed as a value"),
        C("\x80\x02" "X\x01\x00\x00\x00" "aX\x01\x00\x00\x00" "b\x93.", QF_EFORMAT, "STACK_GLOBAL a.b is not allowed"),
        C("\x80\x02" "N" "N.", QF_EFORMAT, "STOP with 2 objects on the stack"),
        C("\x80\x02" "(N.", QF_EFORMAT, "STOP with 1 MARK still open"),
        C("\x80\x02" "N" "R.", QF_EFORMAT, "REDUCE needs 2 objects on the stack, 1 there"),
        C("\x80\x02" "(" "u.", QF_EFORMAT, "SETITEMS with no dict below the MARK"),
        C("\x80\x02" "]N" "s.", QF_EFORMAT, "SETITEM needs 3 objects"),
        C("\x80\x02" "]N" "b.", QF_EFORMAT, "BUILD sets the state of a list"),
        C("\x80\x02" "X\x02\x00\x00\x00\xc3\x28.", QF_EFORMAT, "BINUNICODE is not valid UTF-8"),
        C("\x80\x02" "S'x'\n.", QF_EUNSUPPORTED, "protocol-0 text opcode 'S'"),
        C("\x80\x05" "\x97.", QF_EUNSUPPORTED, "out-of-band buffer opcode 0x97"),
        C("\x80\x02" "I12x\n.", QF_EFORMAT, "INT holds a non-digit"),
        C("\x80\x02" "I99999999999999999999\n.", QF_ELIMIT, "INT beyond 64 bits"),
        C("\x80\x02" "N", QF_ETRUNC, "the pickle ends without STOP"),
        C("\x80\x04" "\x95\xff\x00\x00\x00\x00\x00\x00\x00" "N.", QF_ETRUNC, "FRAME of 255 bytes"),
        C("\x80\x02" "N0" "0.", QF_EFORMAT, "POP without a MARK"),
        C("\x80\x02" "}]" "(N" "u.", QF_EFORMAT, "SETITEMS on a list"),
        C("\x80\x02" "(" "K\x01" "d.", QF_EFORMAT, "DICT with an odd number (1) of items"),
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qf_pkl *k = NULL;
        qf_err err;
        int rc = pkl(cases[i].p, cases[i].n, &k, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].msg)) {
            print_error("case %zu: rc %d, %s\n  wanted %d, %s\n", i, rc, err.msg, cases[i].code,
                        cases[i].msg);
            fail();
        }
        assert_null(k);
        assert_message(&err, "t.pkl: byte ", NULL);
    }
    /* limits are the caller's to lower */
    {
        static const uint8_t deep[] = { 0x80, 2, ']', ']', ']', 'a', 'a', '.' };
        qf_pkl_limits lim = { 0, 0, 1 };
        qf_pkl *k = NULL;
        qf_err err = { 0 };
        assert_int_equal(qf_pkl_read(deep, sizeof deep, "t.pkl", ALLOW, 3, &lim, &k, &err), QF_ELIMIT);
        assert_message(&err, "t.pkl: byte 6: ", "objects nested deeper than 1");
        lim.max_depth = 2;
        memset(&err, 0, sizeof err);
        assert_int_equal(qf_pkl_read(deep, sizeof deep, "t.pkl", ALLOW, 3, &lim, &k, &err), 0);
        qf_pkl_free(k);
        lim.max_objects = 2;
        memset(&err, 0, sizeof err);
        assert_int_equal(qf_pkl_read(deep, sizeof deep, "t.pkl", ALLOW, 3, &lim, &k, &err), QF_ELIMIT);
        assert_message(&err, "t.pkl: byte 4: ", "more than 2 objects");
    }
    qf_pkl_free(NULL);
}

/* =====================================================================
 * The zip reader on its own
 * ===================================================================== */

static size_t put_local(uint8_t *p, const char *name, const void *data, uint32_t n, uint32_t crc,
                        int zip64)
{
    size_t k = strlen(name), at = 0;

    qf_put32(p, 0x04034b50);
    qf_put16(p + 4, 45);
    qf_put16(p + 6, 0);
    qf_put16(p + 8, 0);
    qf_put32(p + 10, 0);
    qf_put32(p + 14, crc);
    qf_put32(p + 18, zip64 ? 0xFFFFFFFFu : n);
    qf_put32(p + 22, zip64 ? 0xFFFFFFFFu : n);
    qf_put16(p + 26, (uint16_t)k);
    qf_put16(p + 28, zip64 ? 20 : 0);
    at = 30;
    memcpy(p + at, name, k);
    at += k;
    if (zip64) {
        qf_put16(p + at, 1);
        qf_put16(p + at + 2, 16);
        qf_put64(p + at + 4, n);
        qf_put64(p + at + 12, n);
        at += 20;
    }
    memcpy(p + at, data, n);
    return at + n;
}

/* A zip64 archive by hand: every 32-bit size and offset saturated. */
static void test_zip64(void **state)
{
    static uint8_t z[1024];
    const char *name = "r/data/0", *data = "0123456789abcdef";
    uint32_t crc = qf_zip_crc32(0, data, 16);
    size_t at = put_local(z, name, data, 16, crc, 1), cd = at, k = strlen(name), z64;
    qf_zip *zip = NULL;
    qf_err err = { 0 };
    const qf_zip_entry *e;
    const uint8_t *p;
    uint64_t n;

    (void)state;
    qf_put32(z + at, 0x02014b50);
    qf_put16(z + at + 4, 45);
    qf_put16(z + at + 6, 45);
    qf_put16(z + at + 8, 0);
    qf_put16(z + at + 10, 0);
    qf_put32(z + at + 12, 0);
    qf_put32(z + at + 16, crc);
    qf_put32(z + at + 20, 0xFFFFFFFFu);
    qf_put32(z + at + 24, 0xFFFFFFFFu);
    qf_put16(z + at + 28, (uint16_t)k);
    qf_put16(z + at + 30, 28);
    qf_put16(z + at + 32, 0);
    qf_put16(z + at + 34, 0);
    qf_put16(z + at + 36, 0);
    qf_put32(z + at + 38, 0);
    qf_put32(z + at + 42, 0xFFFFFFFFu);
    memcpy(z + at + 46, name, k);
    at += 46 + k;
    qf_put16(z + at, 1);
    qf_put16(z + at + 2, 24);
    qf_put64(z + at + 4, 16);
    qf_put64(z + at + 12, 16);
    qf_put64(z + at + 20, 0);
    at += 28;
    z64 = at;
    qf_put32(z + at, 0x06064b50);
    qf_put64(z + at + 4, 44);
    qf_put16(z + at + 12, 45);
    qf_put16(z + at + 14, 45);
    qf_put32(z + at + 16, 0);
    qf_put32(z + at + 20, 0);
    qf_put64(z + at + 24, 1);
    qf_put64(z + at + 32, 1);
    qf_put64(z + at + 40, z64 - cd);
    qf_put64(z + at + 48, cd);
    at += 56;
    qf_put32(z + at, 0x07064b50);
    qf_put32(z + at + 4, 0);
    qf_put64(z + at + 8, z64);
    qf_put32(z + at + 16, 1);
    at += 20;
    qf_put32(z + at, 0x06054b50);
    qf_put16(z + at + 4, 0);
    qf_put16(z + at + 6, 0);
    qf_put16(z + at + 8, 0xFFFF);
    qf_put16(z + at + 10, 0xFFFF);
    qf_put32(z + at + 12, 0xFFFFFFFFu);
    qf_put32(z + at + 16, 0xFFFFFFFFu);
    qf_put16(z + at + 20, 0);
    at += 22;

    if (qf_zip_open_buffer(z, at, "z64.zip", &zip, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(qf_zip_count(zip), 1);
    e = qf_zip_entry_at(zip, 0);
    assert_string_equal(e->name, name);
    assert_int_equal(e->size, 16);
    assert_int_equal(e->comp_size, 16);
    assert_int_equal(e->header_offset, 0);
    assert_int_equal(qf_zip_find(zip, name), 0);
    assert_int_equal(qf_zip_find(zip, "r/data/1"), -1);
    assert_int_equal(qf_zip_stored_data(zip, 0, &p, &n, &err), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(p, data, 16);
    assert_int_equal(qf_zip_check_crc(zip, 0, &err), 0);
    assert_null(qf_zip_entry_at(zip, 1));
    qf_zip_close(zip);

    /* a zip64 end record that disagrees with the plain one */
    qf_put16(z + at - 22 + 10, 2);
    qf_put16(z + at - 22 + 8, 2);
    memset(&err, 0, sizeof err);
    assert_int_equal(qf_zip_open_buffer(z, at, "z64.zip", &zip, &err), QF_EFORMAT);
    assert_message(&err, "z64.zip: zip: ", "disagree");
    assert_null(zip);
    /* every prefix fails cleanly */
    for (k = 0; k < at; k++) {
        memset(&err, 0, sizeof err);
        assert_true(qf_zip_open_buffer(z, k, "z64.zip", &zip, &err) < 0);
        assert_message(&err, "z64.zip: ", NULL);
    }
    qf_zip_close(NULL);
    /* the CRC of "123456789", the standard check value */
    assert_int_equal(qf_zip_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(qf_zip_crc32(qf_zip_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_tensors),
        cmocka_unit_test(test_expected_files),
        cmocka_unit_test(test_refused_fixtures),
        cmocka_unit_test(test_folders_and_index),
        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_buffer_zero_copy),
        cmocka_unit_test(test_globals),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_prefixes_and_flips),
        cmocka_unit_test(test_malicious),
        cmocka_unit_test(test_pickle_values),
        cmocka_unit_test(test_pickle_refusals),
        cmocka_unit_test(test_zip64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
