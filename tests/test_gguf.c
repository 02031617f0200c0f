/*
 * tests/test_gguf.c - GGUF reader and writer.
 *
 * Reader: the stories260K Q4_K_M fixture is checked key by key and tensor by
 * tensor against gguf-py's dump of it (fixtures/gguf/<file>.dump.txt, made by
 * llama.cpp's gguf_dump.py). Writer: every value type is written and read
 * back; the fixtures are rewritten byte for byte. Every corrupt fixture in
 * fixtures/corrupt/gguf.tsv must fail with its code and message.
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".".
 */
#include "tests/testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/types.h"

static char dir[256];
static char root[1024];

#define Q4KM "fixtures/gguf/stories260K-Q4_K_M.gguf"

static void fixture(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return tu_mkdtemp(dir, sizeof dir, "gguf");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

/* Remove every file in the temp dir (tests share it). */
static void clean_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static qf_gguf *open_ok(const char *path)
{
    qf_gguf *g = NULL;
    qf_err e = { 0 };
    int rc = qf_gguf_open(path, &g, &e);
    if (rc != 0)
        fail_msg("%s: rc %d: %s", path, rc, e.msg);
    return g;
}

/* =====================================================================
 * Reader against the dump
 * ===================================================================== */

static const char *dump_type_name(const qf_gguf *g, int64_t i, char *buf, size_t cap)
{
    qf_gguf_val v;
    assert_int_equal(qf_gguf_kv_value(g, i, &v), 0);
    if (v.type == QF_GGUF_ARRAY)
        snprintf(buf, cap, "[%s]", qf_gguf_vtype_name((int)v.arr_type));
    else
        snprintf(buf, cap, "%s", qf_gguf_vtype_name((int)v.type));
    return buf;
}

static void test_fixture_matches_dump(void **state)
{
    char path[1200], dump[1200], line[1024];
    qf_gguf *g;
    FILE *f;
    int section = 0;
    int64_t n_kv_seen = 0, n_t_seen = 0;
    (void)state;

    fixture(path, sizeof path, Q4KM);
    fixture(dump, sizeof dump, Q4KM ".dump.txt");
    g = open_ok(path);
    assert_int_equal(qf_gguf_version(g), 3);
    assert_int_equal(qf_gguf_alignment(g), 32);
    assert_int_equal(qf_gguf_kv_count(g), 25);
    assert_int_equal(qf_gguf_tensor_count(g), 47);
    assert_int_equal(qf_gguf_file_size(g), 281664);
    assert_int_equal(qf_gguf_data_offset(g), 14336);
    /* the last tensor is padded too: the data section runs to the end */
    assert_int_equal(qf_gguf_data_offset(g) + qf_gguf_data_size(g), qf_gguf_file_size(g));
    assert_non_null(qf_gguf_file_data(g));
    assert_string_equal(qf_gguf_path(g), path);

    f = fopen(dump, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        int idx;
        char type[64], name[512], tbuf[64];
        unsigned long long n, ne[4];
        if (strstr(line, "* Dumping") && strstr(line, "key/value")) {
            section = 1;
            continue;
        }
        if (strstr(line, "* Dumping") && strstr(line, "tensor")) {
            section = 2;
            continue;
        }
        if (section == 1 && sscanf(line, " %d: %63s | %llu | %511s", &idx, type, &n, name) == 4) {
            int64_t k;
            if (strncmp(name, "GGUF.", 5) == 0) /* gguf_dump's pseudo-keys */
                continue;
            k = qf_gguf_find_key(g, name);
            if (k != n_kv_seen)
                fail_msg("key %s: index %" PRId64 ", expected %" PRId64, name, k, n_kv_seen);
            assert_string_equal(qf_gguf_kv_key(g, k), name);
            assert_string_equal(dump_type_name(g, k, tbuf, sizeof tbuf), type);
            if (type[0] == '[') {
                qf_gguf_val v;
                assert_int_equal(qf_gguf_kv_value(g, k, &v), 0);
                assert_int_equal(v.arr_n, n);
            }
            n_kv_seen++;
        } else if (section == 2 &&
                   sscanf(line, " %d: %llu | %llu, %llu, %llu, %llu | %63s | %511s", &idx, &n,
                          &ne[0], &ne[1], &ne[2], &ne[3], type, name) == 8) {
            int64_t t = qf_gguf_find_tensor(g, name);
            const qf_gguf_tensor *ti = qf_gguf_tensor_at(g, t);
            int d;
            if (t != n_t_seen)
                fail_msg("tensor %s: index %" PRId64 ", expected %" PRId64, name, t, n_t_seen);
            assert_non_null(ti);
            assert_string_equal(ti->name, name);
            assert_string_equal(qf_ggml_type_name(ti->type), type);
            for (d = 0; d < 4; d++)
                assert_int_equal(ti->ne[d], ne[d]);
            assert_int_equal(ti->n_elements, n);
            assert_true(ti->n_dims >= 1 && ti->n_dims <= 4);
            assert_true(ti->offset % 32 == 0);
            assert_ptr_equal(ti->data, qf_gguf_file_data(g) + qf_gguf_data_offset(g) + ti->offset);
            n_t_seen++;
        }
    }
    fclose(f);
    assert_int_equal(n_kv_seen, 25);
    assert_int_equal(n_t_seen, 47);

    /* shapes in ggml order: ffn_down is 172 wide, 64 rows, F16 */
    {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, qf_gguf_find_tensor(g, "blk.0.ffn_down.weight"));
        assert_non_null(t);
        assert_int_equal(t->type, QF_GGML_F16);
        assert_int_equal(t->n_dims, 2);
        assert_int_equal(t->ne[0], 172);
        assert_int_equal(t->ne[1], 64);
        assert_int_equal(t->nbytes, 172 * 64 * 2);
        t = qf_gguf_tensor_at(g, 1);
        assert_string_equal(t->name, "token_embd.weight");
        assert_int_equal(t->type, QF_GGML_Q8_0);
        assert_int_equal(t->nbytes, 512 * 2 * 34);
        t = qf_gguf_tensor_at(g, 0);
        assert_int_equal(t->n_dims, 1);
        assert_int_equal(t->offset, 0);
    }
    qf_gguf_close(g);
}

static void test_offsets_consistent(void **state)
{
    char path[1200];
    qf_gguf *g;
    int64_t i;
    uint64_t pos = 24;
    (void)state;

    fixture(path, sizeof path, Q4KM);
    g = open_ok(path);
    for (i = 0; i < qf_gguf_kv_count(g); i++) {
        qf_gguf_val v;
        assert_int_equal(qf_gguf_kv_offset(g, i), pos);
        assert_int_equal(qf_gguf_kv_value(g, i, &v), 0);
        assert_ptr_equal(v.raw, qf_gguf_file_data(g) + pos + 8 + strlen(qf_gguf_kv_key(g, i)) + 4);
        pos += 8 + strlen(qf_gguf_kv_key(g, i)) + 4 + v.raw_len;
    }
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        assert_int_equal(t->info_offset, pos);
        pos += 8 + strlen(t->name) + 4 + 8 * t->n_dims + 4 + 8;
    }
    assert_int_equal(pos, 14313);
    qf_gguf_close(g);
}

static void test_values(void **state)
{
    char path[1200];
    qf_gguf *g;
    qf_gguf_val v;
    const char *s;
    uint64_t len, u;
    int64_t i;
    double f;
    int b;
    qf_err e = { 0 };
    (void)state;

    fixture(path, sizeof path, Q4KM);
    g = open_ok(path);
    assert_int_equal(qf_gguf_get_str(g, "general.architecture", &s, &len, &e), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    assert_int_equal(qf_gguf_get_str(g, "general.name", &s, NULL, &e), 0);
    assert_memory_equal(s, "stories260K", 11);
    assert_int_equal(qf_gguf_get_uint(g, "llama.block_count", &u, &e), 0);
    assert_int_equal(u, 5);
    assert_int_equal(qf_gguf_get_uint(g, "llama.feed_forward_length", &u, &e), 0);
    assert_int_equal(u, 172);
    assert_int_equal(qf_gguf_get_int(g, "general.file_type", &i, &e), 0);
    assert_int_equal(i, 15);
    assert_int_equal(qf_gguf_get_float(g, "llama.rope.freq_base", &f, &e), 0);
    assert_true(f == 10000.0);
    assert_int_equal(qf_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f, &e), 0);
    assert_true(f == (double)1e-5f);
    assert_int_equal(qf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &e), 0);
    assert_int_equal(b, 1);
    assert_int_equal(qf_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, &e), 0);
    assert_int_equal(b, 0);
    assert_int_equal(e.code, 0);

    i = qf_gguf_find_key(g, "llama.vocab_size");
    assert_true(i >= 0);
    assert_int_equal(qf_gguf_kv_type(g, i), QF_GGUF_UINT32);
    assert_int_equal(qf_gguf_kv_value(g, i, &v), 0);
    assert_int_equal(v.u, 512);
    assert_int_equal(v.i, 512);
    assert_int_equal(v.raw_len, 4);

    /* bad indexes and names */
    assert_int_equal(qf_gguf_kv_value(g, -1, &v), QF_EINVAL);
    assert_int_equal(qf_gguf_kv_value(g, 25, &v), QF_EINVAL);
    assert_null(qf_gguf_kv_key(g, 25));
    assert_int_equal(qf_gguf_kv_type(g, -1), QF_GGUF_VTYPE_COUNT);
    assert_int_equal(qf_gguf_find_key(g, "no.such.key"), -1);
    assert_int_equal(qf_gguf_find_key(g, "general.nam"), -1);
    assert_int_equal(qf_gguf_find_key(g, NULL), -1);
    assert_null(qf_gguf_tensor_at(g, 47));
    assert_null(qf_gguf_tensor_at(g, -1));
    assert_int_equal(qf_gguf_find_tensor(g, "output.weight"), -1); /* tied: not in the file */
    qf_gguf_close(g);
}

static void test_getter_errors(void **state)
{
    char path[1200];
    qf_gguf *g;
    const char *s;
    uint64_t u;
    int64_t i;
    double f;
    int b;
    qf_err e = { 0 };
    (void)state;

    fixture(path, sizeof path, Q4KM);
    g = open_ok(path);
    /* absent keys: QF_ENOTFOUND and the record stays clean */
    assert_int_equal(qf_gguf_get_uint(g, "nope", &u, &e), QF_ENOTFOUND);
    assert_int_equal(qf_gguf_get_str(g, "nope", &s, NULL, &e), QF_ENOTFOUND);
    assert_int_equal(e.code, 0);

    assert_int_equal(qf_gguf_get_uint(g, "general.name", &u, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "\"general.name\""));
    assert_non_null(strstr(e.msg, "STRING"));
    assert_non_null(strstr(e.msg, "unsigned integer"));
    assert_int_equal(strncmp(e.msg, path, strlen(path)), 0);
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_get_str(g, "llama.block_count", &s, NULL, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "UINT32"));
    assert_non_null(strstr(e.msg, "expected STRING"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_get_bool(g, "llama.block_count", &b, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "expected BOOL"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_get_float(g, "tokenizer.ggml.add_bos_token", &f, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "BOOL"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_get_int(g, "tokenizer.ggml.tokens", &i, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "ARRAY"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_get_uint(g, "llama.rope.freq_base", &u, NULL), QF_EFORMAT);
    qf_gguf_close(g);
}

static void test_iterate_tokens(void **state)
{
    char path[1200];
    qf_gguf *g;
    qf_gguf_val v, el;
    qf_gguf_iter it;
    uint64_t n = 0, bytes = 0;
    int rc;
    (void)state;

    fixture(path, sizeof path, Q4KM);
    g = open_ok(path);
    assert_int_equal(qf_gguf_kv_value(g, qf_gguf_find_key(g, "tokenizer.ggml.tokens"), &v), 0);
    assert_int_equal(v.type, QF_GGUF_ARRAY);
    assert_int_equal(v.arr_type, QF_GGUF_STRING);
    assert_int_equal(v.arr_n, 512);
    qf_gguf_iter_init(&it, &v);
    while ((rc = qf_gguf_iter_next(&it, &el)) == 1) {
        assert_int_equal(el.type, QF_GGUF_STRING);
        if (n == 0) {
            assert_int_equal(el.str_len, 5);
            assert_memory_equal(el.str, "<unk>", 5);
        } else if (n == 1) {
            assert_memory_equal(el.str, "<s>", 3);
        } else if (n == 2) {
            assert_memory_equal(el.str, "</s>", 4);
        } else if (n == 3) {
            assert_memory_equal(el.str, "<0x00>", 6);
        } else if (n == 511) {
            assert_int_equal(el.str_len, 3);
            assert_memory_equal(el.str, "\xe2\x80\x8a", 3); /* U+200A HAIR SPACE */
        }
        assert_int_equal(el.raw_len, 8 + el.str_len);
        bytes += el.str_len;
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 512);
    assert_int_equal(bytes, 2305);
    assert_ptr_equal(it.p, v.raw + v.raw_len);
    assert_int_equal(qf_gguf_iter_next(&it, &el), 0); /* stays at the end */

    /* token types: INT32 2, 3, 3, 6, 6 ... */
    assert_int_equal(qf_gguf_kv_value(g, qf_gguf_find_key(g, "tokenizer.ggml.token_type"), &v), 0);
    assert_int_equal(v.arr_type, QF_GGUF_INT32);
    qf_gguf_iter_init(&it, &v);
    {
        const int64_t want[5] = { 2, 3, 3, 6, 6 };
        int k;
        for (k = 0; k < 5; k++) {
            assert_int_equal(qf_gguf_iter_next(&it, &el), 1);
            assert_int_equal(el.type, QF_GGUF_INT32);
            assert_int_equal(el.i, want[k]);
        }
    }
    n = 5;
    while (qf_gguf_iter_next(&it, &el) == 1)
        n++;
    assert_int_equal(n, 512);

    /* scores: FLOAT32 */
    assert_int_equal(qf_gguf_kv_value(g, qf_gguf_find_key(g, "tokenizer.ggml.scores"), &v), 0);
    assert_int_equal(v.arr_type, QF_GGUF_FLOAT32);
    assert_int_equal(v.raw_len, 12 + 512 * 4);

    /* iterating a non-array yields nothing */
    assert_int_equal(qf_gguf_kv_value(g, 0, &v), 0);
    qf_gguf_iter_init(&it, &v);
    assert_int_equal(qf_gguf_iter_next(&it, &el), 0);
    qf_gguf_close(g);
}

static void test_iter_malformed(void **state)
{
    /* an ARRAY of 3 STRINGs whose second string claims 100 bytes */
    uint8_t b[12 + 9 + 8 + 2];
    qf_gguf_val v, el;
    qf_gguf_iter it;
    (void)state;

    memset(b, 0, sizeof b);
    qf_put32(b, QF_GGUF_STRING);
    qf_put64(b + 4, 3);
    qf_put64(b + 12, 1);
    b[20] = 'x';
    qf_put64(b + 21, 100);
    memset(&v, 0, sizeof v);
    v.type = QF_GGUF_ARRAY;
    v.arr_type = QF_GGUF_STRING;
    v.arr_n = 3;
    v.raw = b;
    v.raw_len = sizeof b;
    qf_gguf_iter_init(&it, &v);
    assert_int_equal(qf_gguf_iter_next(&it, &el), 1);
    assert_int_equal(el.str_len, 1);
    assert_int_equal(qf_gguf_iter_next(&it, &el), QF_EFORMAT);
    assert_int_equal(qf_gguf_iter_next(&it, &el), 0);
}

static void test_vtype_names(void **state)
{
    (void)state;
    assert_string_equal(qf_gguf_vtype_name(QF_GGUF_UINT32), "UINT32");
    assert_string_equal(qf_gguf_vtype_name(QF_GGUF_ARRAY), "ARRAY");
    assert_string_equal(qf_gguf_vtype_name(QF_GGUF_FLOAT64), "FLOAT64");
    assert_string_equal(qf_gguf_vtype_name(13), "?");
    assert_string_equal(qf_gguf_vtype_name(-1), "?");
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_BOOL), 1);
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_INT16), 2);
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_FLOAT32), 4);
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_UINT64), 8);
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_STRING), 0);
    assert_int_equal(qf_gguf_vtype_size(QF_GGUF_ARRAY), 0);
    assert_int_equal(qf_gguf_vtype_size(99), 0);
}

/* Every prefix of the header is refused as truncated; release keeps data readable. */
static void test_truncated_prefixes(void **state)
{
    char path[1200];
    uint8_t *b;
    size_t size;
    uint64_t n;
    qf_gguf *g = NULL;
    (void)state;

    fixture(path, sizeof path, Q4KM);
    b = tu_read_file(path, &size);
    for (n = 0; n < 14336 + 64; n++) {
        qf_err e = { 0 };
        int rc = qf_gguf_open_buffer(b, n, "cut.gguf", &g, &e);
        if (rc != QF_ETRUNC)
            fail_msg("prefix %" PRIu64 ": rc %d (%s)", n, rc, e.msg);
        assert_null(g);
        assert_int_equal(strncmp(e.msg, "cut.gguf: ", 10), 0);
    }
    /* the data of the last tensor ends 16 bytes before its padding: a file
     * cut inside that padding is still usable, one byte less is not */
    assert_int_equal(qf_gguf_open_buffer(b, size - 16, "cut.gguf", &g, NULL), 0);
    qf_gguf_close(g);
    assert_int_equal(qf_gguf_open_buffer(b, size - 17, "cut.gguf", &g, NULL), QF_ETRUNC);
    assert_int_equal(qf_gguf_open_buffer(b, size, NULL, &g, NULL), 0);
    assert_string_equal(qf_gguf_path(g), "<buffer>");
    qf_gguf_release_tensor(g, 0); /* no-op for buffers */
    qf_gguf_close(g);
    assert_int_equal(qf_gguf_open_buffer(NULL, 10, "x", &g, NULL), QF_EINVAL);
    free(b);

    /* release on a mapping: the bytes read back the same */
    g = open_ok(path);
    {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, 1);
        uint8_t *copy = malloc(t->nbytes);
        int64_t i;
        assert_non_null(copy);
        memcpy(copy, t->data, t->nbytes);
        for (i = -1; i <= qf_gguf_tensor_count(g); i++) {
            qf_gguf_release_range(g, i, 100, 5000);
            qf_gguf_release_range(g, i, UINT64_MAX, UINT64_MAX);
            qf_gguf_release_tensor(g, i);
        }
        assert_memory_equal(copy, t->data, t->nbytes);
        free(copy);
    }
    qf_gguf_close(g);
    qf_gguf_close(NULL);
}

/* =====================================================================
 * Writer
 * ===================================================================== */

typedef struct bb {
    uint8_t b[512];
    size_t n;
} bb;

static void bb_u32(bb *x, uint32_t v) { qf_put32(x->b + x->n, v); x->n += 4; }
static void bb_u64(bb *x, uint64_t v) { qf_put64(x->b + x->n, v); x->n += 8; }
static void bb_str(bb *x, const char *s)
{
    bb_u64(x, strlen(s));
    memcpy(x->b + x->n, s, strlen(s));
    x->n += strlen(s);
}

/* ARRAY of 2 ARRAYs: [INT32 1, -2, 3], [STRING "x", "yz"] */
static void nested_value(bb *x)
{
    x->n = 0;
    bb_u32(x, QF_GGUF_ARRAY);
    bb_u64(x, 2);
    bb_u32(x, QF_GGUF_INT32);
    bb_u64(x, 3);
    bb_u32(x, 1);
    bb_u32(x, (uint32_t)-2);
    bb_u32(x, 3);
    bb_u32(x, QF_GGUF_STRING);
    bb_u64(x, 2);
    bb_str(x, "x");
    bb_str(x, "yz");
}

static const uint8_t tdata[24 + 36 + 10] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
};

static void write_all_types(const char *path)
{
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    bb x;
    const uint8_t a_u8[3] = { 1, 2, 255 };
    const int8_t a_i8[3] = { -1, 127, -128 };
    const uint16_t a_u16[2] = { 65535, 1 };
    const int16_t a_i16[1] = { -32768 };
    const uint32_t a_u32[1] = { 0xDEADBEEFu };
    const int32_t a_i32[2] = { -7, 7 };
    const uint64_t a_u64[1] = { UINT64_MAX };
    const int64_t a_i64[1] = { INT64_MIN };
    const float a_f32[2] = { 0.5f, -1.0f };
    const double a_f64[1] = { 3.0 };
    const uint8_t a_bool[3] = { 1, 0, 1 };
    const char *strs[3] = { "alpha", "", "\xc3\xa9t\xc3\xa9" };
    const char *strs2[2] = { "ab\0c", "zz" };
    const uint64_t lens2[2] = { 4, 1 };
    const uint64_t ne_f32[2] = { 3, 2 }, ne_q4[1] = { 64 }, ne_f16[3] = { 5, 1, 1 };
    uint64_t i;

    assert_int_equal(qf_gguf_writer_new(&w, &e), 0);
#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, e.msg); } while (0)
    OK(qf_gguf_writer_set_u8(w, "v.u8", 200, &e));
    OK(qf_gguf_writer_set_i8(w, "v.i8", -5, &e));
    OK(qf_gguf_writer_set_u16(w, "v.u16", 60000, &e));
    OK(qf_gguf_writer_set_i16(w, "v.i16", -30000, &e));
    OK(qf_gguf_writer_set_u32(w, "v.u32", 4000000000u, &e));
    OK(qf_gguf_writer_set_i32(w, "v.i32", -2000000000, &e));
    OK(qf_gguf_writer_set_u64(w, "v.u64", UINT64_MAX - 1, &e));
    OK(qf_gguf_writer_set_i64(w, "v.i64", INT64_MIN + 1, &e));
    OK(qf_gguf_writer_set_f32(w, "v.f32", 1.5f, &e));
    OK(qf_gguf_writer_set_f64(w, "v.f64", 2.25e300, &e));
    OK(qf_gguf_writer_set_bool(w, "v.bool", 7, &e));
    OK(qf_gguf_writer_set_bool(w, "v.false", 0, &e));
    OK(qf_gguf_writer_set_str(w, "v.str", "h\xc3\xa9llo", &e));
    OK(qf_gguf_writer_set_strn(w, "v.strn", "a\0b", 3, &e));
    OK(qf_gguf_writer_set_str(w, "v.empty", "", &e));
    OK(qf_gguf_writer_set_arr(w, "a.u8", QF_GGUF_UINT8, a_u8, 3, &e));
    OK(qf_gguf_writer_set_arr(w, "a.i8", QF_GGUF_INT8, a_i8, 3, &e));
    OK(qf_gguf_writer_set_arr(w, "a.u16", QF_GGUF_UINT16, a_u16, 2, &e));
    OK(qf_gguf_writer_set_arr(w, "a.i16", QF_GGUF_INT16, a_i16, 1, &e));
    OK(qf_gguf_writer_set_arr(w, "a.u32", QF_GGUF_UINT32, a_u32, 1, &e));
    OK(qf_gguf_writer_set_arr(w, "a.i32", QF_GGUF_INT32, a_i32, 2, &e));
    OK(qf_gguf_writer_set_arr(w, "a.u64", QF_GGUF_UINT64, a_u64, 1, &e));
    OK(qf_gguf_writer_set_arr(w, "a.i64", QF_GGUF_INT64, a_i64, 1, &e));
    OK(qf_gguf_writer_set_arr(w, "a.f32", QF_GGUF_FLOAT32, a_f32, 2, &e));
    OK(qf_gguf_writer_set_arr(w, "a.f64", QF_GGUF_FLOAT64, a_f64, 1, &e));
    OK(qf_gguf_writer_set_arr(w, "a.bool", QF_GGUF_BOOL, a_bool, 3, &e));
    OK(qf_gguf_writer_set_arr(w, "a.none", QF_GGUF_UINT32, NULL, 0, &e));
    OK(qf_gguf_writer_set_arr_str(w, "a.str", strs, NULL, 3, &e));
    OK(qf_gguf_writer_set_arr_str(w, "a.strn", strs2, lens2, 2, &e));
    OK(qf_gguf_writer_set_arr_str(w, "a.nostr", NULL, NULL, 0, &e));
    nested_value(&x);
    OK(qf_gguf_writer_set_raw(w, "a.nested", QF_GGUF_ARRAY, x.b, x.n, &e));
    /* 8 levels deep, the most the reader accepts */
    x.n = 0;
    for (i = 0; i < 7; i++) {
        bb_u32(&x, QF_GGUF_ARRAY);
        bb_u64(&x, 1);
    }
    bb_u32(&x, QF_GGUF_UINT8);
    bb_u64(&x, 1);
    x.b[x.n++] = 42;
    OK(qf_gguf_writer_set_raw(w, "a.deep", QF_GGUF_ARRAY, x.b, x.n, &e));
    OK(qf_gguf_writer_add_tensor(w, "t.f32", QF_GGML_F32, 2, ne_f32, &e));
    OK(qf_gguf_writer_add_tensor(w, "t.q4", QF_GGML_Q4_0, 1, ne_q4, &e));
    OK(qf_gguf_writer_add_tensor(w, "t.f16", QF_GGML_F16, 3, ne_f16, &e));
    OK(qf_gguf_writer_begin(w, path, 0, &e));
    for (i = 0; i < sizeof tdata; i += 7) /* chunks that straddle tensors */
        OK(qf_gguf_writer_write(w, tdata + i, sizeof tdata - i < 7 ? sizeof tdata - i : 7, &e));
    OK(qf_gguf_writer_finish(w, &e));
#undef OK
    qf_gguf_writer_free(w);
}

static qf_gguf_val getv(const qf_gguf *g, const char *key, qf_gguf_vtype type)
{
    qf_gguf_val v;
    int64_t i = qf_gguf_find_key(g, key);
    if (i < 0)
        fail_msg("key %s missing", key);
    assert_int_equal(qf_gguf_kv_value(g, i, &v), 0);
    if (v.type != type)
        fail_msg("key %s: type %d, expected %d", key, (int)v.type, (int)type);
    return v;
}

/* Iterate array `key` of element type `et` and return element k. */
static qf_gguf_val elem(const qf_gguf *g, const char *key, qf_gguf_vtype et, uint64_t n,
                        uint64_t k)
{
    qf_gguf_val v = getv(g, key, QF_GGUF_ARRAY), el, want;
    qf_gguf_iter it;
    uint64_t i = 0;
    assert_int_equal(v.arr_type, et);
    assert_int_equal(v.arr_n, n);
    memset(&want, 0, sizeof want);
    qf_gguf_iter_init(&it, &v);
    while (qf_gguf_iter_next(&it, &el) == 1) {
        assert_int_equal(el.type, et);
        if (i == k)
            want = el;
        i++;
    }
    assert_int_equal(i, n);
    return want;
}

static void test_writer_all_types(void **state)
{
    char path[600];
    qf_gguf *g;
    qf_gguf_val v, a, b;
    qf_gguf_iter it, it2;
    uint64_t u, fsize;
    int64_t i;
    double f;
    (void)state;

    clean_dir();
    tmp_path(path, sizeof path, "all.gguf");
    write_all_types(path);
    assert_int_equal(tu_count_entries(dir), 1); /* no temp file left */
    g = open_ok(path);
    assert_int_equal(qf_gguf_version(g), 3);
    assert_int_equal(qf_gguf_kv_count(g), 32);
    assert_string_equal(qf_gguf_kv_key(g, 0), "v.u8");
    assert_string_equal(qf_gguf_kv_key(g, 31), "a.deep");

    assert_int_equal(getv(g, "v.u8", QF_GGUF_UINT8).u, 200);
    v = getv(g, "v.i8", QF_GGUF_INT8);
    assert_int_equal(v.i, -5);
    assert_int_equal(v.u, (uint64_t)-5);
    assert_int_equal(getv(g, "v.u16", QF_GGUF_UINT16).u, 60000);
    assert_int_equal(getv(g, "v.i16", QF_GGUF_INT16).i, -30000);
    assert_int_equal(getv(g, "v.u32", QF_GGUF_UINT32).u, 4000000000u);
    assert_int_equal(getv(g, "v.i32", QF_GGUF_INT32).i, -2000000000);
    assert_true(getv(g, "v.u64", QF_GGUF_UINT64).u == UINT64_MAX - 1);
    assert_true(getv(g, "v.i64", QF_GGUF_INT64).i == INT64_MIN + 1);
    assert_true(getv(g, "v.f32", QF_GGUF_FLOAT32).f == 1.5);
    assert_true(getv(g, "v.f64", QF_GGUF_FLOAT64).f == 2.25e300);
    assert_int_equal(getv(g, "v.bool", QF_GGUF_BOOL).u, 1);
    assert_int_equal(getv(g, "v.false", QF_GGUF_BOOL).u, 0);
    v = getv(g, "v.str", QF_GGUF_STRING);
    assert_int_equal(v.str_len, 6);
    assert_memory_equal(v.str, "h\xc3\xa9llo", 6);
    v = getv(g, "v.strn", QF_GGUF_STRING);
    assert_int_equal(v.str_len, 3);
    assert_memory_equal(v.str, "a\0b", 3);
    assert_int_equal(getv(g, "v.empty", QF_GGUF_STRING).str_len, 0);

    /* typed getters across types */
    assert_int_equal(qf_gguf_get_int(g, "v.i8", &i, NULL), 0);
    assert_int_equal(i, -5);
    assert_int_equal(qf_gguf_get_uint(g, "v.i8", &u, NULL), QF_EFORMAT); /* negative */
    assert_int_equal(qf_gguf_get_uint(g, "v.i16", &u, NULL), QF_EFORMAT);
    assert_int_equal(qf_gguf_get_int(g, "v.u64", &i, NULL), QF_EFORMAT); /* > INT64_MAX */
    assert_int_equal(qf_gguf_get_uint(g, "v.u64", &u, NULL), 0);
    assert_true(u == UINT64_MAX - 1);
    assert_int_equal(qf_gguf_get_int(g, "v.u32", &i, NULL), 0);
    assert_int_equal(i, 4000000000);
    assert_int_equal(qf_gguf_get_float(g, "v.f32", &f, NULL), 0);
    assert_true(f == 1.5);
    assert_int_equal(qf_gguf_get_float(g, "v.u8", &f, NULL), QF_EFORMAT);
    assert_int_equal(qf_gguf_get_uint(g, "v.bool", &u, NULL), QF_EFORMAT);

    assert_int_equal(elem(g, "a.u8", QF_GGUF_UINT8, 3, 2).u, 255);
    assert_int_equal(elem(g, "a.i8", QF_GGUF_INT8, 3, 2).i, -128);
    assert_int_equal(elem(g, "a.i8", QF_GGUF_INT8, 3, 1).i, 127);
    assert_int_equal(elem(g, "a.u16", QF_GGUF_UINT16, 2, 0).u, 65535);
    assert_int_equal(elem(g, "a.i16", QF_GGUF_INT16, 1, 0).i, -32768);
    assert_int_equal(elem(g, "a.u32", QF_GGUF_UINT32, 1, 0).u, 0xDEADBEEFu);
    assert_int_equal(elem(g, "a.i32", QF_GGUF_INT32, 2, 0).i, -7);
    assert_true(elem(g, "a.u64", QF_GGUF_UINT64, 1, 0).u == UINT64_MAX);
    assert_true(elem(g, "a.i64", QF_GGUF_INT64, 1, 0).i == INT64_MIN);
    assert_true(elem(g, "a.f32", QF_GGUF_FLOAT32, 2, 1).f == -1.0);
    assert_true(elem(g, "a.f64", QF_GGUF_FLOAT64, 1, 0).f == 3.0);
    assert_int_equal(elem(g, "a.bool", QF_GGUF_BOOL, 3, 1).u, 0);
    assert_int_equal(elem(g, "a.bool", QF_GGUF_BOOL, 3, 2).u, 1);
    (void)elem(g, "a.none", QF_GGUF_UINT32, 0, 0);
    (void)elem(g, "a.nostr", QF_GGUF_STRING, 0, 0);
    v = elem(g, "a.str", QF_GGUF_STRING, 3, 2);
    assert_int_equal(v.str_len, 5);
    assert_memory_equal(v.str, "\xc3\xa9t\xc3\xa9", 5);
    assert_int_equal(elem(g, "a.str", QF_GGUF_STRING, 3, 1).str_len, 0);
    v = elem(g, "a.strn", QF_GGUF_STRING, 2, 0);
    assert_int_equal(v.str_len, 4);
    assert_memory_equal(v.str, "ab\0c", 4);
    assert_int_equal(elem(g, "a.strn", QF_GGUF_STRING, 2, 1).str_len, 1);

    /* nested: [[1, -2, 3], ["x", "yz"]] */
    v = getv(g, "a.nested", QF_GGUF_ARRAY);
    assert_int_equal(v.arr_type, QF_GGUF_ARRAY);
    assert_int_equal(v.arr_n, 2);
    qf_gguf_iter_init(&it, &v);
    assert_int_equal(qf_gguf_iter_next(&it, &a), 1);
    assert_int_equal(a.type, QF_GGUF_ARRAY);
    assert_int_equal(a.arr_type, QF_GGUF_INT32);
    assert_int_equal(a.arr_n, 3);
    qf_gguf_iter_init(&it2, &a);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 1);
    assert_int_equal(b.i, 1);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 1);
    assert_int_equal(b.i, -2);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 1);
    assert_int_equal(b.i, 3);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 0);
    assert_int_equal(qf_gguf_iter_next(&it, &a), 1);
    assert_int_equal(a.arr_type, QF_GGUF_STRING);
    qf_gguf_iter_init(&it2, &a);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 1);
    assert_memory_equal(b.str, "x", 1);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 1);
    assert_int_equal(b.str_len, 2);
    assert_memory_equal(b.str, "yz", 2);
    assert_int_equal(qf_gguf_iter_next(&it2, &b), 0);
    assert_int_equal(qf_gguf_iter_next(&it, &a), 0);

    /* 8 levels down to the UINT8 42 */
    v = getv(g, "a.deep", QF_GGUF_ARRAY);
    for (i = 0; i < 7; i++) {
        assert_int_equal(v.arr_type, QF_GGUF_ARRAY);
        qf_gguf_iter_init(&it, &v);
        assert_int_equal(qf_gguf_iter_next(&it, &v), 1);
    }
    assert_int_equal(v.arr_type, QF_GGUF_UINT8);
    qf_gguf_iter_init(&it, &v);
    assert_int_equal(qf_gguf_iter_next(&it, &a), 1);
    assert_int_equal(a.u, 42);

    /* tensors, offsets, data and padding */
    assert_int_equal(qf_gguf_tensor_count(g), 3);
    {
        const qf_gguf_tensor *t0 = qf_gguf_tensor_at(g, 0), *t1 = qf_gguf_tensor_at(g, 1),
                             *t2 = qf_gguf_tensor_at(g, 2);
        const uint8_t *base = qf_gguf_file_data(g) + qf_gguf_data_offset(g);
        assert_string_equal(t0->name, "t.f32");
        assert_int_equal(t0->n_dims, 2);
        assert_int_equal(t0->ne[1], 2);
        assert_int_equal(t0->nbytes, 24);
        assert_int_equal(t1->type, QF_GGML_Q4_0);
        assert_int_equal(t1->offset, 32);
        assert_int_equal(t1->nbytes, 36);
        assert_int_equal(t2->offset, 96);
        assert_int_equal(t2->n_dims, 3);
        assert_int_equal(t2->nbytes, 10);
        assert_memory_equal(t0->data, tdata, 24);
        assert_memory_equal(t1->data, tdata + 24, 36);
        assert_memory_equal(t2->data, tdata + 60, 10);
        for (i = 24; i < 32; i++)
            assert_int_equal(base[i], 0);
        for (i = 68; i < 96; i++)
            assert_int_equal(base[i], 0);
        assert_int_equal(qf_gguf_data_size(g), 128);
        fsize = qf_gguf_file_size(g);
        assert_int_equal(fsize, qf_gguf_data_offset(g) + 128); /* last tensor padded */
        for (i = 106; i < 128; i++)
            assert_int_equal(base[i], 0);
        assert_int_equal(qf_gguf_data_offset(g) % 32, 0);
    }
    qf_gguf_close(g);
}

/* A GGUF v2 file has the same layout: accepted, version reported. */
static void test_version2(void **state)
{
    char path[600];
    uint8_t *b;
    size_t size;
    qf_gguf *g = NULL;
    (void)state;

    clean_dir();
    tmp_path(path, sizeof path, "v2.gguf");
    write_all_types(path);
    b = tu_read_file(path, &size);
    qf_put32(b + 4, 2);
    assert_int_equal(qf_gguf_open_buffer(b, size, "v2.gguf", &g, NULL), 0);
    assert_int_equal(qf_gguf_version(g), 2);
    qf_gguf_close(g);
    free(b);
}

static void test_writer_set_moves_key(void **state)
{
    char path[600];
    qf_gguf_writer *w = NULL;
    qf_gguf *g;
    qf_err e = { 0 };
    (void)state;

    clean_dir();
    tmp_path(path, sizeof path, "order.gguf");
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "a", "first", &e), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "b", 2, &e), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "c", 3, &e), 0);
    assert_int_equal(qf_gguf_writer_set_u8(w, "a", 9, &e), 0); /* moves to the end, new type */
    assert_int_equal(qf_gguf_writer_set_u32(w, "d", 4, &e), 0);
    assert_int_equal(qf_gguf_writer_remove(w, "d"), 0);
    assert_int_equal(qf_gguf_writer_remove(w, "d"), QF_ENOTFOUND);
    /* an empty file: header padded to the alignment, no tensors */
    assert_int_equal(qf_gguf_writer_file_size(w), 96);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &e), 0);
    qf_gguf_writer_free(w);
    g = open_ok(path);
    assert_int_equal(qf_gguf_kv_count(g), 3);
    assert_string_equal(qf_gguf_kv_key(g, 0), "b");
    assert_string_equal(qf_gguf_kv_key(g, 1), "c");
    assert_string_equal(qf_gguf_kv_key(g, 2), "a");
    assert_int_equal(qf_gguf_kv_type(g, 2), QF_GGUF_UINT8);
    assert_int_equal(qf_gguf_file_size(g), 96);
    assert_int_equal(qf_gguf_tensor_count(g), 0);
    qf_gguf_close(g);
}

static void test_writer_alignment(void **state)
{
    char path[600];
    qf_gguf_writer *w = NULL;
    qf_gguf *g;
    qf_err e = { 0 };
    const uint64_t ne1[1] = { 3 }, ne2[1] = { 100 };
    uint8_t data[12 + 400];
    (void)state;

    clean_dir();
    memset(data, 0xAB, sizeof data);
    tmp_path(path, sizeof path, "align.gguf");
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "x", QF_GGML_F32, 1, ne1, &e), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "y", QF_GGML_F32, 1, ne2, &e), 0);
    /* alignment may be set after the tensors: offsets are laid out at begin */
    assert_int_equal(qf_gguf_writer_set_u32(w, "general.alignment", 48, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "power of two"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_writer_set_u32(w, "general.alignment", 0, &e), QF_EINVAL);
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_writer_set_u64(w, "general.alignment", 64, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "UINT32"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_writer_set_u32(w, "general.alignment", 256, &e), 0);
    assert_int_equal(qf_gguf_writer_file_size(w) % 256, 0);
    assert_int_equal(qf_gguf_writer_remove(w, "general.alignment"), 0); /* back to 32 */
    assert_int_equal(qf_gguf_writer_file_size(w) % 32, 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "general.alignment", 64, &e), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), 0);
    assert_int_equal(qf_gguf_writer_write(w, data, sizeof data, &e), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &e), 0);
    qf_gguf_writer_free(w);
    g = open_ok(path);
    assert_int_equal(qf_gguf_alignment(g), 64);
    assert_int_equal(qf_gguf_data_offset(g) % 64, 0);
    assert_int_equal(qf_gguf_tensor_at(g, 0)->offset, 0);
    assert_int_equal(qf_gguf_tensor_at(g, 1)->offset, 64);
    assert_int_equal(qf_gguf_data_size(g), 64 + 448);
    assert_int_equal(qf_gguf_file_size(g) % 64, 0);
    assert_int_equal(qf_gguf_file_size(g), qf_gguf_data_offset(g) + 512);
    qf_gguf_close(g);
}

static void test_writer_rejects(void **state)
{
    char path[600], name[80];
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    const uint64_t ne[2] = { 32, 2 }, ne33[2] = { 33, 2 }, ne0[2] = { 32, 0 };
    const uint64_t big[2] = { (uint64_t)1 << 32, (uint64_t)1 << 32 };
    const uint8_t bad_bool[2] = { 1, 2 };
    const char *bad_strs[2] = { "ok", "\xff" };
    uint8_t raw[16];
    (void)state;

    clean_dir();
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "t", QF_GGML_Q4_0, 2, ne, &e), 0);

    assert_int_equal(qf_gguf_writer_add_tensor(w, "t", QF_GGML_F32, 2, ne, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "duplicate tensor name \"t\""));
    qf_err_clear(&e);
    memset(name, 'n', 64);
    name[64] = '\0';
    assert_int_equal(qf_gguf_writer_add_tensor(w, name, QF_GGML_F32, 2, ne, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "too long"));
    qf_err_clear(&e);
    name[63] = '\0'; /* 63 bytes is fine */
    assert_int_equal(qf_gguf_writer_add_tensor(w, name, QF_GGML_F32, 2, ne, &e), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "q", QF_GGML_Q4_0, 2, ne33, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "row length 33 is not a multiple of the Q4_0 block size 32"));
    qf_err_clear(&e);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", 4, 2, ne, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "unknown ggml type 4"));
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", 99, 2, ne, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", -1, 2, ne, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", QF_GGML_F32, 0, ne, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", QF_GGML_F32, 5, ne, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", QF_GGML_F32, 2, ne0, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "u", QF_GGML_F32, 2, big, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "\xc0\x80", QF_GGML_F32, 2, ne, NULL), QF_EINVAL);

    assert_int_equal(qf_gguf_writer_set_u32(w, "", 1, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_u32(w, "bad\xff", 1, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_str(w, "k", "bad\xff", NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_str(w, "k", NULL, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_arr(w, "k", QF_GGUF_BOOL, bad_bool, 2, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_arr(w, "k", QF_GGUF_STRING, bad_bool, 2, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_arr_str(w, "k", bad_strs, NULL, 2, NULL), QF_EINVAL);
    /* raw encodings are checked like the reader checks them */
    qf_put64(raw, 100);
    assert_int_equal(qf_gguf_writer_set_raw(w, "k", QF_GGUF_STRING, raw, 10, NULL), QF_EINVAL);
    raw[0] = 2;
    assert_int_equal(qf_gguf_writer_set_raw(w, "k", QF_GGUF_BOOL, raw, 1, NULL), QF_EINVAL);
    raw[0] = 1;
    assert_int_equal(qf_gguf_writer_set_raw(w, "k", QF_GGUF_BOOL, raw, 2, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_raw(w, "k", 13, raw, 1, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_raw(w, "k", QF_GGUF_BOOL, raw, 1, NULL), 0);
    assert_int_equal(qf_gguf_writer_copy_kv(w, NULL, 0, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_finish(w, NULL), QF_EINVAL); /* not begun */
    assert_int_equal(qf_gguf_writer_write(w, raw, 1, NULL), QF_EINVAL);

    /* after begin: metadata frozen; more data than declared refused */
    tmp_path(path, sizeof path, "rej.gguf");
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_set_u32(w, "late", 1, NULL), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_remove(w, "k"), QF_EINVAL);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "late", QF_GGML_F32, 2, ne, NULL), QF_EINVAL);
    {
        uint8_t *d = calloc(1, 36 + 256 + 1);
        assert_non_null(d);
        qf_err_clear(&e);
        assert_int_equal(qf_gguf_writer_write(w, d, 36 + 256 + 1, &e), QF_EINVAL);
        assert_non_null(strstr(e.msg, "only 292 left"));
        assert_int_equal(qf_gguf_writer_write(w, d, 36 + 256, NULL), 0);
        assert_int_equal(qf_gguf_writer_write(w, d, 1, NULL), QF_EINVAL);
        free(d);
    }
    assert_int_equal(qf_gguf_writer_finish(w, NULL), 0);
    qf_gguf_writer_free(w);
    qf_gguf_writer_free(NULL);
}

static void test_writer_overwrite(void **state)
{
    char path[600];
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    FILE *f;
    char buf[32] = { 0 };
    (void)state;

    clean_dir();
    tmp_path(path, sizeof path, "exists.gguf");
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "a", 1, NULL), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), QF_EEXIST);
    assert_non_null(strstr(e.msg, path));
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "precious");
    assert_int_equal(tu_count_entries(dir), 1);
    /* with force it is replaced */
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, &e), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &e), 0);
    qf_gguf_writer_free(w);
    {
        qf_gguf *g = open_ok(path);
        assert_int_equal(qf_gguf_kv_count(g), 1);
        qf_gguf_close(g);
    }
    assert_int_equal(tu_count_entries(dir), 1);
}

static void test_writer_missing_data(void **state)
{
    char path[600];
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    const uint64_t ne[1] = { 16 };
    const uint8_t d[40] = { 0 };
    (void)state;

    clean_dir();
    tmp_path(path, sizeof path, "missing.gguf");
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "a", QF_GGML_F32, 1, ne, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "b", QF_GGML_F32, 1, ne, NULL), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), 0);
    assert_int_equal(tu_count_entries(dir), 1); /* the temp file */
    assert_int_equal(qf_gguf_writer_write(w, d, 40, &e), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "tensor \"a\": only 40 of 64 bytes written (88 bytes"));
    assert_int_equal(tu_count_entries(dir), 0); /* no output, no temp file */
    assert_int_equal(qf_gguf_writer_finish(w, NULL), QF_EINVAL);
    qf_gguf_writer_free(w);

    /* freeing a writer mid-way abandons the output too */
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "a", QF_GGML_F32, 1, ne, NULL), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, 0, &e), 0);
    assert_int_equal(qf_gguf_writer_write(w, d, 10, &e), 0);
    qf_gguf_writer_free(w);
    assert_int_equal(tu_count_entries(dir), 0);
}

/* Read `rel`, copy every pair and tensor into a new file, compare bytes. */
static void rewrite_same(const char *rel)
{
    char in[1200], out[600];
    qf_gguf *g;
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    uint8_t *a, *b, *all;
    size_t na, nb;
    uint64_t total = 0, pos = 0;
    int64_t i;

    fixture(in, sizeof in, rel);
    tmp_path(out, sizeof out, "rewrite.gguf");
    unlink(out);
    g = open_ok(in);
    assert_int_equal(qf_gguf_writer_new(&w, &e), 0);
    for (i = 0; i < qf_gguf_kv_count(g); i++)
        assert_int_equal(qf_gguf_writer_copy_kv(w, g, i, &e), 0);
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        assert_int_equal(qf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, &e), 0);
        total += t->nbytes;
    }
    assert_int_equal(qf_gguf_writer_file_size(w), qf_gguf_file_size(g));
    /* all tensor bytes back to back, streamed in chunks that cross tensors */
    all = malloc(total);
    assert_non_null(all);
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        memcpy(all + pos, t->data, t->nbytes);
        pos += t->nbytes;
    }
    assert_int_equal(qf_gguf_writer_begin(w, out, 0, &e), 0);
    for (pos = 0; pos < total; pos += 4099)
        assert_int_equal(qf_gguf_writer_write(w, all + pos, total - pos < 4099 ? total - pos : 4099, &e), 0);
    if (qf_gguf_writer_finish(w, &e) != 0)
        fail_msg("%s", e.msg);
    qf_gguf_writer_free(w);
    qf_gguf_close(g);
    free(all);
    a = tu_read_file(in, &na);
    b = tu_read_file(out, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
}

static void test_rewrite_fixtures(void **state)
{
    (void)state;
    clean_dir();
    rewrite_same("fixtures/gguf/stories260K-Q4_K_M.gguf");
    rewrite_same("fixtures/gguf/stories260K-f16.gguf");
}

/* =====================================================================
 * Corrupt fixtures
 * ===================================================================== */

static const struct {
    const char *file;
    int code;
} corrupt_codes[] = {
    { "gguf-empty.gguf", QF_ETRUNC },
    { "gguf-short-magic.gguf", QF_ETRUNC },
    { "gguf-bad-magic.gguf", QF_EFORMAT },
    { "gguf-version0.gguf", QF_EFORMAT },
    { "gguf-version1.gguf", QF_EUNSUPPORTED },
    { "gguf-version4.gguf", QF_EUNSUPPORTED },
    { "gguf-big-endian.gguf", QF_EUNSUPPORTED },
    { "gguf-trunc-header.gguf", QF_ETRUNC },
    { "gguf-tensor-count.gguf", QF_ETRUNC },
    { "gguf-kv-count.gguf", QF_ETRUNC },
    { "gguf-trunc-kv.gguf", QF_ETRUNC },
    { "gguf-str-past-eof.gguf", QF_ETRUNC },
    { "gguf-key-past-eof.gguf", QF_ETRUNC },
    { "gguf-kv-type.gguf", QF_EFORMAT },
    { "gguf-arr-type.gguf", QF_EFORMAT },
    { "gguf-arr-count.gguf", QF_ETRUNC },
    { "gguf-bool2.gguf", QF_EFORMAT },
    { "gguf-bool2-array.gguf", QF_EFORMAT },
    { "gguf-key-utf8.gguf", QF_EFORMAT },
    { "gguf-key-overlong-utf8.gguf", QF_EFORMAT },
    { "gguf-key-empty.gguf", QF_EFORMAT },
    { "gguf-key-nul.gguf", QF_EFORMAT },
    { "gguf-dup-key.gguf", QF_EFORMAT },
    { "gguf-nest-deep.gguf", QF_ELIMIT },
    { "gguf-align-pow2.gguf", QF_EFORMAT },
    { "gguf-align-zero.gguf", QF_EFORMAT },
    { "gguf-align-type.gguf", QF_EFORMAT },
    { "gguf-trunc-tensor-info.gguf", QF_ETRUNC },
    { "gguf-name-past-eof.gguf", QF_ETRUNC },
    { "gguf-dup-tensor.gguf", QF_EFORMAT },
    { "gguf-name-long.gguf", QF_EFORMAT },
    { "gguf-name-utf8.gguf", QF_EFORMAT },
    { "gguf-ndims0.gguf", QF_EFORMAT },
    { "gguf-ndims5.gguf", QF_EFORMAT },
    { "gguf-dim-zero.gguf", QF_EFORMAT },
    { "gguf-dim-negative.gguf", QF_EFORMAT },
    { "gguf-dim-overflow.gguf", QF_EFORMAT },
    { "gguf-type-unknown.gguf", QF_EFORMAT },
    { "gguf-type-removed.gguf", QF_EFORMAT },
    { "gguf-block.gguf", QF_EFORMAT },
    { "gguf-misaligned.gguf", QF_EFORMAT },
    { "gguf-offset-gap.gguf", QF_EFORMAT },
    { "gguf-offset-overlap.gguf", QF_EFORMAT },
    { "gguf-data-trunc.gguf", QF_ETRUNC },
    { "gguf-data-missing.gguf", QF_ETRUNC },
};

static void test_corrupt_fixtures(void **state)
{
    char tsv[1200], line[1024], path[2200], cdir[1200];
    FILE *f;
    int rows = 0, files = 0;
    size_t k;
    DIR *d;
    struct dirent *de;
    (void)state;

    fixture(tsv, sizeof tsv, "fixtures/corrupt/gguf.tsv");
    f = fopen(tsv, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl;
        qf_gguf *g = NULL;
        qf_err e = { 0 }, e2 = { 0 };
        uint8_t *buf;
        size_t size;
        int rc, code = 1;
        if (!tab)
            continue;
        *tab = '\0';
        if ((nl = strchr(tab + 1, '\n')))
            *nl = '\0';
        for (k = 0; k < sizeof corrupt_codes / sizeof corrupt_codes[0]; k++)
            if (strcmp(corrupt_codes[k].file, line) == 0)
                code = corrupt_codes[k].code;
        if (code == 1)
            fail_msg("%s: no expected code in test_gguf.c", line);
        snprintf(path, sizeof path, "%s/fixtures/corrupt/%s", root, line);
        rc = qf_gguf_open(path, &g, &e);
        if (rc != code || !strstr(e.msg, tab + 1) || strncmp(e.msg, path, strlen(path)) != 0)
            fail_msg("%s: rc %d (%s), expected %d (%s) with \"%s\"", line, rc, e.msg, code,
                     qf_err_name(code), tab + 1);
        assert_null(g);
        assert_int_equal(e.code, code);
        assert_null(strchr(e.msg, '\n'));
        /* the same bytes through the buffer entry point */
        buf = tu_read_file(path, &size);
        assert_int_equal(qf_gguf_open_buffer(size ? buf : NULL, size, line, &g, &e2), code);
        assert_non_null(strstr(e2.msg, tab + 1));
        assert_int_equal(strncmp(e2.msg, line, strlen(line)), 0);
        free(buf);
        rows++;
    }
    fclose(f);
    assert_true(rows >= 20);
    assert_int_equal((size_t)rows, sizeof corrupt_codes / sizeof corrupt_codes[0]);
    /* every gguf-*.gguf in the folder is listed */
    fixture(cdir, sizeof cdir, "fixtures/corrupt");
    d = opendir(cdir);
    assert_non_null(d);
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, "gguf-", 5) == 0 && n > 5 && strcmp(de->d_name + n - 5, ".gguf") == 0)
            files++;
    }
    closedir(d);
    assert_int_equal(files, rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_matches_dump),
        cmocka_unit_test(test_offsets_consistent),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_getter_errors),
        cmocka_unit_test(test_iterate_tokens),
        cmocka_unit_test(test_iter_malformed),
        cmocka_unit_test(test_vtype_names),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_writer_all_types),
        cmocka_unit_test(test_version2),
        cmocka_unit_test(test_writer_set_moves_key),
        cmocka_unit_test(test_writer_alignment),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_writer_overwrite),
        cmocka_unit_test(test_writer_missing_data),
        cmocka_unit_test(test_rewrite_fixtures),
        cmocka_unit_test(test_corrupt_fixtures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
