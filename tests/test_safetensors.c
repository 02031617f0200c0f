/*
 * tests/test_safetensors.c - safetensors reader and writer.
 *
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".".
 * Temporary folders come from mkdtemp and are removed by each test.
 */
#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/error.h"
#include "formats/safetensors.h"
#include "formats/types.h"

/* =====================================================================
 * Helpers
 * ===================================================================== */

/* A safetensors image: header text (length taken from it) + data bytes. */
static uint8_t *image(const char *header, const void *data, size_t n_data, size_t *n)
{
    size_t h = strlen(header);
    uint8_t *p = malloc(8 + h + n_data + 1);
    uint64_t v = h;
    int i;

    assert_non_null(p);
    for (i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    memcpy(p + 8, header, h);
    if (n_data)
        memcpy(p + 8 + h, data, n_data);
    *n = 8 + h + n_data;
    return p;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131u + seed * 17u + (i >> 8));
}

/* Write a file of tensors named names[i], U8 shape [sizes[i]], data fill(seed=i). */
static void write_u8_file(const char *path, const char *const *names, const uint64_t *sizes,
                          int n)
{
    qf_st_writer *w = NULL;
    qf_err err = { 0 };
    uint8_t buf[256];
    int i;

    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    for (i = 0; i < n; i++)
        assert_int_equal(qf_st_writer_add_tensor(w, names[i], QF_DTYPE_U8, 1, &sizes[i], &err), 0);
    assert_int_equal(qf_st_writer_begin(w, path, QF_OUT_FORCE, &err), 0);
    for (i = 0; i < n; i++) {
        assert_true(sizes[i] <= sizeof buf);
        fill(buf, (size_t)sizes[i], (unsigned)i);
        assert_int_equal(qf_st_writer_write(w, buf, sizes[i], &err), 0);
    }
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);
}

/* Open must fail with `code`, the message starting with `prefix` and
 * containing `needle`. */
static void expect_open_fail(const char *path, int code, const char *prefix, const char *needle)
{
    qf_st *st = (qf_st *)1;
    qf_err err = { 0 };
    int rc = qf_st_open(path, &st, &err);

    if (rc != code || !strstr(err.msg, needle) ||
        strncmp(err.msg, prefix, strlen(prefix)) != 0)
        print_error("open %s: rc %d (want %d), msg \"%s\" (want prefix \"%s\", \"%s\")\n", path,
                    rc, code, err.msg, prefix, needle);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(st);
    assert_non_null(strstr(err.msg, needle));
    assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
    assert_null(strchr(err.msg, '\n'));
}

/* =====================================================================
 * The real model: stories260K
 * ===================================================================== */

static void check_stories(const qf_st *st)
{
    const qf_st_tensor *t;
    int64_t i, n = qf_st_tensor_count(st);
    static const uint8_t norm_head[16] = { 0xef, 0x54, 0x1d, 0x40, 0x6e, 0x04, 0xaf, 0x3f,
                                           0x5c, 0x0e, 0xe0, 0x3f, 0x6f, 0xcd, 0x8d, 0x3f };
    uint64_t sum = 0, k;

    /* embed + 5 layers x 9 + norm; tied embeddings: no lm_head */
    assert_int_equal(n, 47);
    assert_int_equal(qf_st_file_count(st), 1);
    assert_int_equal(qf_st_file_size(st, 0), 1044992);
    assert_int_equal(qf_st_header_size(st, 0), 4856);
    assert_int_equal(qf_st_meta_count(st, 0), 1);
    assert_string_equal(qf_st_meta_get(st, "format"), "pt");
    assert_null(qf_st_meta_get(st, "nope"));
    assert_int_equal(qf_st_find(st, "lm_head.weight"), -1);

    for (i = 0; i < n; i++) {
        t = qf_st_tensor_at(st, i);
        assert_non_null(t);
        assert_int_equal(t->dtype, QF_DTYPE_F32);
        assert_int_equal(t->file, 0);
        assert_int_equal(t->nbytes, t->n_elements * 4);
        assert_true(t->offset >= 8 + 4856 && t->offset + t->nbytes <= 1044992);
        if (i > 0)
            assert_true(strcmp(qf_st_tensor_at(st, i - 1)->name, t->name) < 0);
        assert_int_equal(qf_st_find(st, t->name), i);
    }
    assert_null(qf_st_tensor_at(st, n));
    assert_null(qf_st_tensor_at(st, -1));
    assert_string_equal(qf_st_tensor_at(st, 0)->name, "model.embed_tokens.weight");
    assert_string_equal(qf_st_tensor_at(st, n - 1)->name, "model.norm.weight");

    t = qf_st_tensor_at(st, 0);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->offset, 8 + 4856);

    i = qf_st_find(st, "model.layers.0.mlp.down_proj.weight");
    assert_true(i >= 0);
    t = qf_st_tensor_at(st, i);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->shape[1], 172);
    assert_int_equal(t->n_elements, 64 * 172);

    t = qf_st_tensor_at(st, qf_st_find(st, "model.layers.4.self_attn.k_proj.weight"));
    assert_non_null(t);
    assert_int_equal(t->shape[0], 32); /* 4 kv heads x 8 */
    assert_int_equal(t->shape[1], 64);

    t = qf_st_tensor_at(st, n - 1);
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->offset, 8 + 4856 + 1039872);
    assert_memory_equal(t->data, norm_head, 16);
    {
        float f[4];
        assert_int_equal(qf_dtype_to_f32(t->dtype, t->data, f, 4), 0);
        assert_true(f[0] > 2.4583f && f[0] < 2.4584f);
    }

    t = qf_st_tensor_at(st, qf_st_find(st, "model.layers.0.self_attn.k_proj.weight"));
    assert_non_null(t);
    for (k = 0; k < t->nbytes; k++)
        sum += t->data[k];
    assert_int_equal(sum, 1026340); /* byte sum, from Python */
}

static void test_stories_file(void **state)
{
    qf_st *st = NULL;
    qf_err err = { 0 };
    const char *path = tu_fixture("fixtures/stories260K/model.safetensors");
    const char *k, *v;
    int64_t i;

    (void)state;
    assert_int_equal(qf_st_open(path, &st, &err), 0);
    assert_int_equal(err.code, 0);
    check_stories(st);
    assert_string_equal(qf_st_file_path(st, 0), path);
    assert_null(qf_st_file_path(st, 1));
    assert_null(qf_st_index_path(st));
    assert_int_equal(qf_st_meta_at(st, 0, 0, &k, &v), 0);
    assert_string_equal(k, "format");
    assert_string_equal(v, "pt");
    assert_int_equal(qf_st_meta_at(st, 0, 1, &k, &v), QF_EINVAL);
    assert_null(k);
    assert_int_equal(qf_st_meta_at(st, 1, 0, &k, &v), QF_EINVAL);
    /* Released pages read back from the file. */
    for (i = 0; i < qf_st_tensor_count(st); i++)
        qf_st_release_tensor(st, i);
    qf_st_release_tensor(st, -1);
    qf_st_release_tensor(st, 1000);
    check_stories(st);
    for (i = 0; i < qf_st_tensor_count(st); i++) {
        qf_st_release_range(st, i, 0, 4096);
        qf_st_release_range(st, i, 100, 100000);
        qf_st_release_range(st, i, 4096, UINT64_MAX);
        qf_st_release_range(st, i, UINT64_MAX, UINT64_MAX);
    }
    qf_st_release_range(st, -1, 0, 1);
    check_stories(st);
    qf_st_close(st);
    qf_st_close(NULL);
}

static void test_stories_folder_and_buffer(void **state)
{
    qf_st *st = NULL;
    qf_err err = { 0 };
    uint8_t *buf;
    size_t n;

    (void)state;
    /* The folder holds one .safetensors (and .json files that are not indexes). */
    assert_int_equal(qf_st_open(tu_fixture("fixtures/stories260K"), &st, &err), 0);
    check_stories(st);
    assert_non_null(strstr(qf_st_file_path(st, 0), "stories260K/model.safetensors"));
    qf_st_close(st);

    buf = tu_read_file(tu_fixture("fixtures/stories260K/model.safetensors"), &n);
    assert_int_equal(qf_st_open_buffer(buf, n, "mem.safetensors", &st, &err), 0);
    check_stories(st);
    assert_string_equal(qf_st_file_path(st, 0), "mem.safetensors");
    assert_ptr_equal(qf_st_tensor_at(st, 0)->data, buf + 8 + 4856);
    qf_st_release_tensor(st, 0); /* no-op over a buffer */
    qf_st_close(st);

    /* One byte short: truncated, naming the last tensor by offset. */
    assert_int_equal(qf_st_open_buffer(buf, n - 1, "mem.safetensors", &st, &err), QF_ETRUNC);
    assert_null(st);
    assert_non_null(strstr(err.msg, "mem.safetensors: tensor \"model.norm.weight\""));
    free(buf);
}

/* =====================================================================
 * Valid edge cases through open_buffer
 * ===================================================================== */

static qf_st *open_img(const char *header, const void *data, size_t n_data, uint8_t **keep,
                       int want_rc, qf_err *err)
{
    size_t n;
    qf_st *st = NULL;
    int rc;

    *keep = image(header, data, n_data, &n);
    qf_err_clear(err);
    rc = qf_st_open_buffer(*keep, n, "t.safetensors", &st, err);
    if (rc != want_rc)
        print_error("header %s: rc %d, want %d: %s\n", header, rc, want_rc, err->msg);
    assert_int_equal(rc, want_rc);
    return st;
}

static void test_buffer_edge_cases(void **state)
{
    qf_err err = { 0 };
    uint8_t data[64], *img;
    qf_st *st;
    const qf_st_tensor *t;

    (void)state;
    fill(data, sizeof data, 1);

    /* No tensors at all. */
    st = open_img("{}", NULL, 0, &img, 0, &err);
    assert_int_equal(qf_st_tensor_count(st), 0);
    assert_int_equal(qf_st_find(st, "a"), -1);
    assert_int_equal(qf_st_meta_count(st, 0), 0);
    qf_st_close(st);
    free(img);

    /* Padding spaces and JSON whitespace; offsets not in name order. */
    st = open_img("{ \"b\" : {\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\n"
                  "\t\"a\":{\"data_offsets\":[4,12],\"shape\":[2,2],\"dtype\":\"I16\"}}   \r\n  ",
                  data, 12, &img, 0, &err);
    assert_int_equal(qf_st_tensor_count(st), 2);
    t = qf_st_tensor_at(st, 0);
    assert_string_equal(t->name, "a");
    assert_int_equal(t->dtype, QF_DTYPE_I16);
    assert_ptr_equal(t->data, img + qf_st_header_size(st, 0) + 8 + 4);
    assert_int_equal(t->offset, qf_st_header_size(st, 0) + 8 + 4);
    t = qf_st_tensor_at(st, 1);
    assert_string_equal(t->name, "b");
    assert_int_equal(t->offset, qf_st_header_size(st, 0) + 8);
    qf_st_close(st);
    free(img);

    /* Scalars and zero-size tensors (several at one offset), escaped names. */
    st = open_img("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                  "\"z1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                  "\"z2\":{\"dtype\":\"BF16\",\"shape\":[5,0],\"data_offsets\":[8,8]},"
                  "\"q\\\"\\u00e9\\n\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[8,9]},"
                  "\"big\":{\"dtype\":\"U8\",\"shape\":[0,18446744073709551615],"
                  "\"data_offsets\":[9,9]}}",
                  data, 9, &img, 0, &err);
    assert_int_equal(qf_st_tensor_count(st), 5);
    t = qf_st_tensor_at(st, qf_st_find(st, "s"));
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->n_elements, 1);
    assert_int_equal(t->nbytes, 8);
    t = qf_st_tensor_at(st, qf_st_find(st, "z2"));
    assert_int_equal(t->n_elements, 0);
    assert_int_equal(t->nbytes, 0);
    t = qf_st_tensor_at(st, qf_st_find(st, "q\"\xc3\xa9\n"));
    assert_non_null(t);
    assert_int_equal(t->dtype, QF_DTYPE_BOOL);
    t = qf_st_tensor_at(st, qf_st_find(st, "big"));
    assert_int_equal(t->shape[1], UINT64_MAX);
    assert_int_equal(t->n_elements, 0);
    qf_st_close(st);
    free(img);

    /* Metadata in header order. */
    st = open_img("{\"__metadata__\":{\"z\":\"1\",\"a\":\"\\u00e9\",\"m\":\"\"}}", NULL, 0, &img,
                  0, &err);
    {
        const char *k, *v;
        assert_int_equal(qf_st_meta_count(st, 0), 3);
        assert_int_equal(qf_st_meta_at(st, 0, 0, &k, &v), 0);
        assert_string_equal(k, "z");
        assert_int_equal(qf_st_meta_at(st, 0, 1, &k, &v), 0);
        assert_string_equal(v, "\xc3\xa9");
        assert_string_equal(qf_st_meta_get(st, "m"), "");
    }
    qf_st_close(st);
    free(img);

    /* A few rejects not worth a fixture file. */
    st = open_img("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\n\x01", data, 1,
                  &img, QF_EFORMAT, &err);
    free(img);
    st = open_img("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", data, 1, &img,
                  QF_EFORMAT, &err);
    free(img);
    st = open_img("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", data, 1,
                  &img, QF_EFORMAT, &err);
    assert_non_null(strstr(err.msg, "data_offsets[1] is negative"));
    free(img);
    st = open_img("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                  "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]},"
                  "\"d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                  data, 1, &img, 0, &err); /* zero-size at 0 and at the end are fine */
    qf_st_close(st);
    free(img);
    st = open_img("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}",
                  data, 4, &img, QF_EFORMAT, &err); /* inside another tensor */
    assert_non_null(strstr(err.msg, "tensor \"b\": data_offsets [2, 2) overlap \"a\""));
    free(img);
    st = open_img("{\"__metadata__\":[]}", NULL, 0, &img, QF_EFORMAT, &err);
    free(img);
    /* null metadata is none, as in the reference (an Option) */
    st = open_img("{\"__metadata__\":null}", NULL, 0, &img, 0, &err);
    assert_int_equal(qf_st_meta_count(st, 0), 0);
    qf_st_close(st);
    free(img);

    /* Argument checks. */
    assert_int_equal(qf_st_open_buffer(NULL, 5, NULL, &st, &err), QF_EINVAL);
    qf_err_clear(&err);
    assert_int_equal(qf_st_open_buffer(NULL, 0, NULL, &st, &err), QF_ETRUNC);
    assert_int_equal(strncmp(err.msg, "<buffer>: ", 10), 0);
}

/* =====================================================================
 * Corrupt fixtures
 * ===================================================================== */

static const struct {
    const char *file;
    int code;
} corrupt_codes[] = {
    { "st-short-length.safetensors", QF_ETRUNC },
    { "st-header-past-eof.safetensors", QF_ETRUNC },
    { "st-header-too-large.safetensors", QF_ELIMIT },
    { "st-empty-header.safetensors", QF_EFORMAT },
    { "st-not-json.safetensors", QF_EFORMAT },
    { "st-not-object.safetensors", QF_EFORMAT },
    { "st-leading-space.safetensors", QF_EFORMAT },
    { "st-bad-utf8.safetensors", QF_EFORMAT },
    { "st-trailing-garbage.safetensors", QF_EFORMAT },
    { "st-nul-escape.safetensors", QF_EFORMAT },
    { "st-control-byte.safetensors", QF_EFORMAT },
    { "st-deep-nesting.safetensors", QF_EFORMAT },
    { "st-meta-non-string.safetensors", QF_EFORMAT },
    { "st-meta-not-object.safetensors", QF_EFORMAT },
    { "st-meta-duplicate-key.safetensors", QF_EFORMAT },
    { "st-entry-not-object.safetensors", QF_EFORMAT },
    { "st-unknown-dtype.safetensors", QF_EFORMAT },
    { "st-lowercase-dtype.safetensors", QF_EFORMAT },
    { "st-dtype-not-string.safetensors", QF_EFORMAT },
    { "st-unknown-key.safetensors", QF_EFORMAT },
    { "st-duplicate-key.safetensors", QF_EFORMAT },
    { "st-missing-offsets.safetensors", QF_EFORMAT },
    { "st-missing-shape.safetensors", QF_EFORMAT },
    { "st-shape-not-array.safetensors", QF_EFORMAT },
    { "st-negative-dim.safetensors", QF_EFORMAT },
    { "st-float-dim.safetensors", QF_EFORMAT },
    { "st-float-integral-dim.safetensors", QF_EFORMAT },
    { "st-exponent-dim.safetensors", QF_EFORMAT },
    { "st-string-dim.safetensors", QF_EFORMAT },
    { "st-dim-too-large.safetensors", QF_ELIMIT },
    { "st-elements-overflow.safetensors", QF_ELIMIT },
    { "st-bytes-overflow.safetensors", QF_ELIMIT },
    { "st-too-many-dims.safetensors", QF_ELIMIT },
    { "st-offsets-not-pair.safetensors", QF_EFORMAT },
    { "st-offset-leading-zero.safetensors", QF_EFORMAT },
    { "st-offset-too-large.safetensors", QF_ELIMIT },
    { "st-begin-after-end.safetensors", QF_EFORMAT },
    { "st-size-mismatch.safetensors", QF_EFORMAT },
    { "st-overlap.safetensors", QF_EFORMAT },
    { "st-gap.safetensors", QF_EFORMAT },
    { "st-gap-at-start.safetensors", QF_EFORMAT },
    { "st-trailing-data.safetensors", QF_EFORMAT },
    { "st-truncated-data.safetensors", QF_ETRUNC },
    { "st-duplicate-name.safetensors", QF_EFORMAT },
    { "st-duplicate-metadata.safetensors", QF_EFORMAT },
};
#define N_CORRUPT (sizeof corrupt_codes / sizeof corrupt_codes[0])

static void test_corrupt_fixtures(void **state)
{
    FILE *f = fopen(tu_fixture("fixtures/corrupt/safetensors.tsv"), "r");
    char line[1024], path[1200], prefix[1300];
    int seen[N_CORRUPT] = { 0 };
    size_t i, lines = 0;
    DIR *d;
    struct dirent *de;

    (void)state;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl;
        int code = 0;
        uint8_t *buf;
        size_t n;
        qf_st *st = NULL;
        qf_err err = { 0 };

        assert_non_null(tab);
        *tab = '\0';
        if ((nl = strchr(tab + 1, '\n')) != NULL)
            *nl = '\0';
        for (i = 0; i < N_CORRUPT; i++)
            if (strcmp(corrupt_codes[i].file, line) == 0) {
                code = corrupt_codes[i].code;
                seen[i]++;
            }
        if (code == 0)
            print_error("%s: no expected code in the test's table\n", line);
        assert_int_not_equal(code, 0);
        snprintf(path, sizeof path, "%s", tu_fixture("fixtures/corrupt"));
        snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", line);
        snprintf(prefix, sizeof prefix, "%s: ", path);
        expect_open_fail(path, code, prefix, tab + 1);

        /* The buffer entry point says the same thing. */
        buf = tu_read_file(path, &n);
        assert_int_equal(qf_st_open_buffer(buf, n, path, &st, &err), code);
        assert_null(st);
        assert_non_null(strstr(err.msg, tab + 1));
        assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
        free(buf);
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, N_CORRUPT);
    for (i = 0; i < N_CORRUPT; i++)
        assert_int_equal(seen[i], 1);

    /* Every st-* file in the folder is listed. */
    d = opendir(tu_fixture("fixtures/corrupt"));
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        int found = 0;
        if (strncmp(de->d_name, "st-", 3) != 0)
            continue;
        for (i = 0; i < N_CORRUPT; i++)
            found |= strcmp(corrupt_codes[i].file, de->d_name) == 0;
        if (!found)
            print_error("%s is not in safetensors.tsv\n", de->d_name);
        assert_true(found);
    }
    closedir(d);
}

/* =====================================================================
 * Writer
 * ===================================================================== */

static void test_writer_exact_bytes(void **state)
{
    char *dir = tu_tmpdir("st");
    const char *out = tu_path(dir, "x.safetensors");
    static const char want[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    uint64_t shape[2] = { 2, 3 };
    uint8_t data[24];
    qf_st_writer *w = NULL;
    qf_err err = { 0 };
    uint8_t *got;
    size_t n, hlen = (sizeof want - 1 + 7) / 8 * 8, i;

    (void)state;
    fill(data, sizeof data, 3);
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_set_meta(w, "format", "np", &err), 0);
    assert_int_equal(qf_st_writer_set_meta(w, "format", "pt", &err), 0); /* replaces */
    assert_int_equal(qf_st_writer_add_tensor(w, "a", QF_DTYPE_F32, 2, shape, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), 0);
    assert_int_equal(qf_st_writer_write(w, data, 24, &err), 0);
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);

    got = tu_read_file(out, &n);
    assert_int_equal(n, 8 + hlen + 24);
    assert_int_equal(got[0], hlen);
    for (i = 1; i < 8; i++)
        assert_int_equal(got[i], 0);
    assert_memory_equal(got + 8, want, sizeof want - 1);
    for (i = sizeof want - 1; i < hlen; i++)
        assert_int_equal(got[8 + i], ' ');
    assert_memory_equal(got + 8 + hlen, data, 24);
    free(got);

    /* No metadata, no tensors: "{}" padded to 8. */
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, QF_OUT_FORCE, &err), 0);
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);
    got = tu_read_file(out, &n);
    assert_int_equal(n, 16);
    assert_memory_equal(got, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(got);

    assert_int_equal(tu_count_entries(dir), 1);
    tu_rm_tree(dir);
    free(dir);
}

static void test_writer_round_trip(void **state)
{
    char *dir = tu_tmpdir("st");
    const char *out = tu_path(dir, "rt.safetensors");
    static const char *odd = "we\"ird\\name\n\t\x01 \xc3\xa9\xe2\x82\xac";
    uint64_t s1[3] = { 3, 5, 7 }, s2[1] = { 9 }, s3[2] = { 4, 0 };
    size_t total = 3 * 5 * 7 * 2 + 9 * 8 + 0 + 4, off, step;
    uint8_t *data = malloc(total), *back;
    qf_st_writer *w = NULL;
    qf_st *st = NULL;
    qf_err err = { 0 };
    const qf_st_tensor *t;
    const char *k, *v;
    size_t n;

    (void)state;
    assert_non_null(data);
    fill(data, total, 7);
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_set_meta(w, "format", "pt", &err), 0);
    assert_int_equal(qf_st_writer_set_meta(w, "note \"q\"", "line1\nline2", &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "zeta", QF_DTYPE_BF16, 3, s1, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, odd, QF_DTYPE_I64, 1, s2, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "empty", QF_DTYPE_F16, 2, s3, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "scalar", QF_DTYPE_U32, 0, NULL, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), 0);
    /* writes of 13 bytes: they straddle tensor boundaries */
    for (off = 0; off < total; off += step) {
        step = total - off < 13 ? total - off : 13;
        assert_int_equal(qf_st_writer_write(w, data + off, step, &err), 0);
    }
    assert_int_equal(qf_st_writer_write(w, data, 0, &err), 0);
    /* one byte too many is refused */
    assert_int_equal(qf_st_writer_write(w, data, 1, &err), QF_EINVAL);
    qf_err_clear(&err);
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);

    assert_int_equal(qf_st_open(out, &st, &err), 0);
    assert_int_equal(qf_st_tensor_count(st), 4);
    assert_int_equal((8 + qf_st_header_size(st, 0)) % 8, 0);
    assert_int_equal(qf_st_file_size(st, 0), 8 + qf_st_header_size(st, 0) + total);
    /* sorted by name: "empty", "scalar", "we...", "zeta" */
    assert_string_equal(qf_st_tensor_at(st, 0)->name, "empty");
    assert_string_equal(qf_st_tensor_at(st, 1)->name, "scalar");
    assert_string_equal(qf_st_tensor_at(st, 2)->name, odd);
    assert_string_equal(qf_st_tensor_at(st, 3)->name, "zeta");

    t = qf_st_tensor_at(st, 3);
    assert_int_equal(t->dtype, QF_DTYPE_BF16);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->shape[2], 7);
    assert_int_equal(t->offset, 8 + qf_st_header_size(st, 0));
    assert_memory_equal(t->data, data, 210);
    t = qf_st_tensor_at(st, 2);
    assert_int_equal(t->dtype, QF_DTYPE_I64);
    assert_memory_equal(t->data, data + 210, 72);
    t = qf_st_tensor_at(st, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], 0);
    t = qf_st_tensor_at(st, 1);
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->nbytes, 4);
    assert_memory_equal(t->data, data + 282, 4);

    assert_int_equal(qf_st_meta_count(st, 0), 2);
    assert_int_equal(qf_st_meta_at(st, 0, 1, &k, &v), 0);
    assert_string_equal(k, "note \"q\"");
    assert_string_equal(v, "line1\nline2");
    qf_st_close(st);

    /* Reading back and rewriting gives the same bytes. */
    back = tu_read_file(out, &n);
    assert_int_equal(qf_st_open_buffer(back, n, "back", &st, &err), 0);
    {
        const char *out2 = tu_path(dir, "rt2.safetensors");
        uint8_t *again;
        size_t n2;
        int64_t i;
        static const int decl[4] = { 3, 2, 0, 1 }; /* declaration order by name index */

        assert_int_equal(qf_st_writer_new(&w, &err), 0);
        assert_int_equal(qf_st_writer_set_meta(w, "format", "pt", &err), 0);
        assert_int_equal(qf_st_writer_set_meta(w, "note \"q\"", "line1\nline2", &err), 0);
        for (i = 0; i < 4; i++) {
            t = qf_st_tensor_at(st, decl[i]);
            assert_int_equal(qf_st_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->shape,
                                                     &err), 0);
        }
        assert_int_equal(qf_st_writer_begin(w, out2, 0, &err), 0);
        for (i = 0; i < 4; i++) {
            t = qf_st_tensor_at(st, decl[i]);
            assert_int_equal(qf_st_writer_write(w, t->data, t->nbytes, &err), 0);
        }
        assert_int_equal(qf_st_writer_finish(w, &err), 0);
        qf_st_writer_free(w);
        again = tu_read_file(out2, &n2);
        assert_int_equal(n2, n);
        assert_memory_equal(again, back, n);
        free(again);
    }
    qf_st_close(st);
    free(back);
    free(data);
    tu_rm_tree(dir);
    free(dir);
}

static void test_writer_no_overwrite(void **state)
{
    char *dir = tu_tmpdir("st");
    const char *out = tu_path(dir, "keep.safetensors");
    uint64_t shape = 4;
    qf_st_writer *w = NULL;
    qf_err err = { 0 };
    uint8_t *got;
    size_t n;
    qf_st *st = NULL;

    (void)state;
    tu_write_text(out, "precious");
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "a", QF_DTYPE_U8, 1, &shape, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), QF_EEXIST);
    assert_int_equal(err.code, QF_EEXIST);
    assert_non_null(strstr(err.msg, out));
    got = tu_read_file(out, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(got, "precious", 8);
    free(got);
    assert_int_equal(tu_count_entries(dir), 1);

    /* The same writer can begin again, with force. */
    qf_err_clear(&err);
    assert_int_equal(qf_st_writer_begin(w, out, QF_OUT_FORCE, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, QF_OUT_FORCE, &err), QF_EINVAL);
    assert_int_equal(qf_st_writer_write(w, "abcd", 4, &err), 0);
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);
    assert_int_equal(qf_st_open(out, &st, &err), 0);
    assert_memory_equal(qf_st_tensor_at(st, 0)->data, "abcd", 4);
    qf_st_close(st);
    assert_int_equal(tu_count_entries(dir), 1);
    tu_rm_tree(dir);
    free(dir);
}

static void test_writer_missing_data(void **state)
{
    char *dir = tu_tmpdir("st");
    const char *out = tu_path(dir, "part.safetensors");
    uint64_t shape[2] = { 4, 4 };
    qf_st_writer *w = NULL;
    qf_err err = { 0 };
    uint8_t data[64] = { 0 };
    struct stat sb;

    (void)state;
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "a", QF_DTYPE_F32, 2, shape, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "b", QF_DTYPE_F32, 2, shape, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), 0);
    assert_int_equal(tu_count_entries(dir), 1); /* the temp file */
    assert_int_equal(qf_st_writer_write(w, data, 64, &err), 0);
    assert_int_equal(qf_st_writer_write(w, data, 40, &err), 0);
    assert_int_equal(qf_st_writer_finish(w, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "104 of 128"));
    assert_non_null(strstr(err.msg, "\"b\""));
    assert_int_equal(strncmp(err.msg, out, strlen(out)), 0);
    assert_int_not_equal(stat(out, &sb), 0);
    assert_int_equal(tu_count_entries(dir), 0); /* no temp file left */
    /* calls after a finished writer are refused */
    qf_err_clear(&err);
    assert_int_equal(qf_st_writer_write(w, data, 1, &err), QF_EINVAL);
    assert_int_equal(qf_st_writer_finish(w, &err), QF_EINVAL);
    qf_st_writer_free(w);

    /* Freeing mid-write abandons too. */
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "a", QF_DTYPE_F32, 2, shape, &err), 0);
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), 0);
    assert_int_equal(qf_st_writer_write(w, data, 64, &err), 0);
    qf_st_writer_free(w);
    assert_int_equal(tu_count_entries(dir), 0);
    qf_st_writer_free(NULL);
    tu_rm_tree(dir);
    free(dir);
}

static void test_writer_bad_arguments(void **state)
{
    qf_st_writer *w = NULL;
    qf_err err = { 0 };
    uint64_t s9[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    uint64_t big[2] = { UINT64_MAX / 2, 3 }, half[1] = { UINT64_MAX / 4 }, one = 1;

    (void)state;
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "a", QF_DTYPE_U8, 1, &one, &err), 0);
#define BAD(want, call)                    \
    do {                                   \
        qf_err_clear(&err);                \
        assert_int_equal((call), (want));  \
        assert_int_equal(err.code, (want));\
        assert_true(err.msg[0] != '\0');   \
    } while (0)
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "a", QF_DTYPE_U8, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "", QF_DTYPE_U8, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "__metadata__", QF_DTYPE_U8, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "bad\xff", QF_DTYPE_U8, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "b", QF_DTYPE_INVALID, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "b", QF_DTYPE_COUNT, 1, &one, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "b", QF_DTYPE_U8, 9, s9, &err));
    BAD(QF_EINVAL, qf_st_writer_add_tensor(w, "b", QF_DTYPE_U8, 1, NULL, &err));
    BAD(QF_ELIMIT, qf_st_writer_add_tensor(w, "b", QF_DTYPE_U8, 2, big, &err));
    assert_int_equal(qf_st_writer_add_tensor(w, "c", QF_DTYPE_U8, 1, half, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "d", QF_DTYPE_U8, 1, half, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "e", QF_DTYPE_U8, 1, half, &err), 0);
    assert_int_equal(qf_st_writer_add_tensor(w, "f", QF_DTYPE_U8, 1, half, &err), 0);
    /* the running data size overflows */
    BAD(QF_ELIMIT, qf_st_writer_add_tensor(w, "g", QF_DTYPE_U8, 1, half, &err));
    BAD(QF_EINVAL, qf_st_writer_set_meta(w, "k", "\xc0\x80", &err));
    BAD(QF_EINVAL, qf_st_writer_set_meta(w, NULL, "v", &err));
    BAD(QF_EINVAL, qf_st_writer_write(w, "x", 1, &err)); /* before begin */
    BAD(QF_EINVAL, qf_st_writer_finish(w, &err));
    qf_st_writer_free(w);

    /* Many tensors: the name set grows and still catches duplicates. */
    {
        char name[32];
        int i;
        assert_int_equal(qf_st_writer_new(&w, &err), 0);
        for (i = 0; i < 5000; i++) {
            snprintf(name, sizeof name, "t.%d", i);
            assert_int_equal(qf_st_writer_add_tensor(w, name, QF_DTYPE_F16, 1, &one, &err), 0);
        }
        for (i = 0; i < 5000; i += 97) {
            snprintf(name, sizeof name, "t.%d", i);
            BAD(QF_EINVAL, qf_st_writer_add_tensor(w, name, QF_DTYPE_F16, 1, &one, &err));
        }
        qf_st_writer_free(w);
    }
#undef BAD
}

static void test_all_dtypes(void **state)
{
    char *dir = tu_tmpdir("st");
    const char *out = tu_path(dir, "dt.safetensors");
    qf_st_writer *w = NULL;
    qf_st *st = NULL;
    qf_err err = { 0 };
    uint64_t shape[2] = { 3, 2 };
    uint8_t data[48];
    int t;

    (void)state;
    assert_int_equal(qf_st_writer_new(&w, &err), 0);
    for (t = 1; t < QF_DTYPE_COUNT; t++) {
        const char *name = qf_dtype_name((qf_dtype)t);
        assert_int_equal(qf_dtype_from_name(name, strlen(name)), t);
        assert_int_equal(qf_st_writer_add_tensor(w, name, (qf_dtype)t, 2, shape, &err), 0);
    }
    assert_int_equal(qf_st_writer_begin(w, out, 0, &err), 0);
    for (t = 1; t < QF_DTYPE_COUNT; t++) {
        size_t n = 6 * qf_dtype_size((qf_dtype)t);
        fill(data, n, (unsigned)t);
        assert_int_equal(qf_st_writer_write(w, data, n, &err), 0);
    }
    assert_int_equal(qf_st_writer_finish(w, &err), 0);
    qf_st_writer_free(w);

    assert_int_equal(qf_st_open(out, &st, &err), 0);
    assert_int_equal(qf_st_tensor_count(st), QF_DTYPE_COUNT - 1);
    for (t = 1; t < QF_DTYPE_COUNT; t++) {
        const qf_st_tensor *x = qf_st_tensor_at(st, qf_st_find(st, qf_dtype_name((qf_dtype)t)));
        assert_non_null(x);
        assert_int_equal(x->dtype, t);
        assert_int_equal(x->n_elements, 6);
        assert_int_equal(x->nbytes, 6 * qf_dtype_size((qf_dtype)t));
        fill(data, (size_t)x->nbytes, (unsigned)t);
        assert_memory_equal(x->data, data, (size_t)x->nbytes);
    }
    qf_st_close(st);

    /* And each spelled by hand in a header. */
    for (t = 1; t < QF_DTYPE_COUNT; t++) {
        char hdr[200];
        uint8_t *img;
        size_t sz = qf_dtype_size((qf_dtype)t);
        snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,%zu]}}",
                 qf_dtype_name((qf_dtype)t), sz);
        fill(data, sz, 0);
        st = open_img(hdr, data, sz, &img, 0, &err);
        assert_int_equal(qf_st_tensor_at(st, 0)->dtype, t);
        qf_st_close(st);
        free(img);
    }
    tu_rm_tree(dir);
    free(dir);
}

/* =====================================================================
 * Sharded models and folders
 * ===================================================================== */

static const char *const sh1_names[] = { "layer.1.w", "embed", "layer.0.w" };
static const uint64_t sh1_sizes[] = { 16, 24, 8 };
static const char *const sh2_names[] = { "norm", "head" };
static const uint64_t sh2_sizes[] = { 4, 32 };

static const char good_index[] =
    "{\n  \"metadata\": {\"total_size\": 84},\n  \"weight_map\": {\n"
    "    \"embed\": \"model-00001-of-00002.safetensors\",\n"
    "    \"head\": \"model-00002-of-00002.safetensors\",\n"
    "    \"layer.0.w\": \"model-00001-of-00002.safetensors\",\n"
    "    \"layer.1.w\": \"model-00001-of-00002.safetensors\",\n"
    "    \"norm\": \"model-00002-of-00002.safetensors\"\n  }\n}\n";

static void make_shards(const char *dir)
{
    /* shard 2 written first: the order comes from the file names */
    write_u8_file(tu_path(dir, "model-00002-of-00002.safetensors"), sh2_names, sh2_sizes, 2);
    write_u8_file(tu_path(dir, "model-00001-of-00002.safetensors"), sh1_names, sh1_sizes, 3);
}

static void check_sharded(const qf_st *st, const char *dir)
{
    static const char *const order[] = { "embed", "layer.0.w", "layer.1.w", "head", "norm" };
    static const uint32_t files[] = { 0, 0, 0, 1, 1 };
    int i;

    assert_int_equal(qf_st_tensor_count(st), 5);
    assert_int_equal(qf_st_file_count(st), 2);
    assert_string_equal(qf_st_file_path(st, 0), tu_path(dir, "model-00001-of-00002.safetensors"));
    assert_string_equal(qf_st_file_path(st, 1), tu_path(dir, "model-00002-of-00002.safetensors"));
    for (i = 0; i < 5; i++) {
        const qf_st_tensor *t = qf_st_tensor_at(st, i);
        assert_string_equal(t->name, order[i]);
        assert_int_equal(t->file, files[i]);
        assert_int_equal(qf_st_find(st, order[i]), i);
    }
    {   /* data of "head": shard 2, tensor 1 (seed 1), 32 bytes */
        uint8_t want[32];
        const qf_st_tensor *t = qf_st_tensor_at(st, qf_st_find(st, "head"));
        fill(want, 32, 1);
        assert_memory_equal(t->data, want, 32);
        assert_int_equal(t->offset + 32, qf_st_file_size(st, 1)); /* declared last */
    }
    assert_int_equal(qf_st_meta_count(st, 0), 0);
}

static void test_sharded(void **state)
{
    char *dir = tu_tmpdir("st");
    char *index = strdup(tu_path(dir, "model.safetensors.index.json"));
    qf_st *st = NULL;
    qf_err err = { 0 };

    (void)state;
    make_shards(dir);
    /* Without an index, a folder of two shards is ambiguous. */
    expect_open_fail(dir, QF_EFORMAT, dir,
                     "2 .safetensors files and no model.safetensors.index.json: "
                     "model-00001-of-00002.safetensors, model-00002-of-00002.safetensors");
    tu_write_text(index, good_index);

    assert_int_equal(qf_st_open(index, &st, &err), 0);
    check_sharded(st, dir);
    assert_string_equal(qf_st_index_path(st), index);
    qf_st_close(st);

    assert_int_equal(qf_st_open(dir, &st, &err), 0);
    check_sharded(st, dir);
    assert_string_equal(qf_st_index_path(st), index);
    qf_st_close(st);

    /* A shard can still be opened alone. */
    assert_int_equal(qf_st_open(tu_path(dir, "model-00002-of-00002.safetensors"), &st, &err), 0);
    assert_int_equal(qf_st_tensor_count(st), 2);
    qf_st_close(st);
    tu_rm_tree(dir);
    free(index);
    free(dir);
}

static void test_index_errors(void **state)
{
    char *dir = tu_tmpdir("st");
    char *index = strdup(tu_path(dir, "model.safetensors.index.json"));
    char prefix[2100];
    static const char *const extra_names[] = { "norm", "extra" };
    static const uint64_t extra_sizes[] = { 4, 4 };

    (void)state;
    make_shards(dir);
    snprintf(prefix, sizeof prefix, "%s: ", index);

    /* A shard that does not exist. */
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"x\":\"model-00003-of-00003.safetensors\"}}");
    expect_open_fail(index, QF_ENOTFOUND, prefix,
                     "shard \"model-00003-of-00003.safetensors\" is missing");
    expect_open_fail(dir, QF_ENOTFOUND, prefix, "model-00003-of-00003.safetensors");

    /* A tensor the map puts in a shard that lacks it. */
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"layer.1.w\":\"model-00001-of-00002.safetensors\","
                      "\"head\":\"model-00002-of-00002.safetensors\","
                      "\"norm\":\"model-00002-of-00002.safetensors\","
                      "\"ghost\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_fail(index, QF_ENOTFOUND, prefix,
                     "tensor \"ghost\" is not in shard \"model-00002-of-00002.safetensors\"");

    /* A tensor in a shard that the map does not list. */
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"head\":\"model-00002-of-00002.safetensors\","
                      "\"norm\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix,
                     "tensor \"layer.1.w\" in shard \"model-00001-of-00002.safetensors\" is not "
                     "listed in weight_map");

    /* A tensor the map places in the other shard. */
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"layer.1.w\":\"model-00001-of-00002.safetensors\","
                      "\"head\":\"model-00001-of-00002.safetensors\","
                      "\"norm\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix,
                     "tensor \"head\" is in shard \"model-00002-of-00002.safetensors\" but "
                     "weight_map says \"model-00001-of-00002.safetensors\"");

    /* Path traversal and other non-plain shard names. */
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"../model-00001-of-00002.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "is not a plain file name");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"..\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "shard \"..\" is not a plain file name");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"/etc/passwd\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "is not a plain file name");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"sub/x.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "is not a plain file name");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "is not a plain file name");

    /* Malformed indexes. */
    tu_write_text(index, "{\"metadata\":{}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "no \"weight_map\" object");
    tu_write_text(index, "{\"weight_map\":{}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "\"weight_map\" is empty");
    tu_write_text(index, "{\"weight_map\":{\"embed\":3}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "shard is not a string");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"embed\":\"a.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "duplicate tensor \"embed\"");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"a.safetensors\"}} trailing");
    expect_open_fail(index, QF_EFORMAT, prefix, "bytes after the JSON object");
    tu_write_text(index, "[\"weight_map\"]");
    expect_open_fail(index, QF_EFORMAT, prefix, "not a JSON object");
    tu_write_text(index, "{\"weight_map\":");
    expect_open_fail(index, QF_EFORMAT, prefix, "not valid JSON");
    tu_write_text(index, "");
    expect_open_fail(index, QF_EFORMAT, prefix, "not valid JSON");
    tu_write_text(index, "{\"weight_map\":{\"embed\xff\":\"a.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix, "not valid UTF-8");

    /* The same tensor in two shards (one listed, one not). */
    write_u8_file(tu_path(dir, "model-00002-of-00002.safetensors"), extra_names, extra_sizes, 2);
    write_u8_file(tu_path(dir, "model-00003-of-00003.safetensors"), sh2_names, sh2_sizes, 2);
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"layer.1.w\":\"model-00001-of-00002.safetensors\","
                      "\"extra\":\"model-00002-of-00002.safetensors\","
                      "\"head\":\"model-00003-of-00003.safetensors\","
                      "\"norm\":\"model-00003-of-00003.safetensors\"}}");
    expect_open_fail(index, QF_EFORMAT, prefix,
                     "tensor \"norm\" is in shard \"model-00002-of-00002.safetensors\" but "
                     "weight_map says \"model-00003-of-00003.safetensors\"");

    /* A corrupt shard names the shard file. */
    tu_write_text(tu_path(dir, "model-00003-of-00003.safetensors"), "junk");
    tu_write_text(index, "{\"weight_map\":{\"embed\":\"model-00001-of-00002.safetensors\","
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"layer.1.w\":\"model-00001-of-00002.safetensors\","
                      "\"x\":\"model-00003-of-00003.safetensors\"}}");
    {
        char sp[2100];
        snprintf(sp, sizeof sp, "%s: ", tu_path(dir, "model-00003-of-00003.safetensors"));
        expect_open_fail(index, QF_ETRUNC, sp, "too short");
    }
    tu_rm_tree(dir);
    free(index);
    free(dir);
}

static void test_folder_forms(void **state)
{
    char *dir = tu_tmpdir("st");
    char sub[1100], blobs[1100], snap[1100], target[1200];
    static const char *const one_name[] = { "w" };
    static const uint64_t one_size[] = { 8 };
    qf_st *st = NULL;
    qf_err err = { 0 };

    (void)state;
    /* Nothing there. */
    expect_open_fail(dir, QF_ENOTFOUND, dir, "no .safetensors file");
    tu_write_text(tu_path(dir, "config.json"), "{}");
    expect_open_fail(dir, QF_ENOTFOUND, dir, "no .safetensors file");
    expect_open_fail(tu_path(dir, "missing.safetensors"), QF_ENOTFOUND, tu_path(dir, "missing"),
                     "No such file");

    /* One file: used; hidden files and folders named *.safetensors are not. */
    write_u8_file(tu_path(dir, "only.safetensors"), one_name, one_size, 1);
    tu_write_text(tu_path(dir, ".hidden.safetensors"), "junk");
    snprintf(sub, sizeof sub, "%s/dir.safetensors", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(qf_st_open(dir, &st, &err), 0);
    assert_int_equal(qf_st_tensor_count(st), 1);
    assert_string_equal(qf_st_file_path(st, 0), tu_path(dir, "only.safetensors"));
    assert_null(qf_st_index_path(st));
    qf_st_close(st);
    /* a trailing slash gives the same path */
    snprintf(target, sizeof target, "%s/", dir);
    assert_int_equal(qf_st_open(target, &st, &err), 0);
    assert_string_equal(qf_st_file_path(st, 0), tu_path(dir, "only.safetensors"));
    qf_st_close(st);
    /* a folder cannot be opened as a shard by a path ending in .safetensors */
    expect_open_fail(sub, QF_ENOTFOUND, sub, "no .safetensors file");

    /* Two files and no index: an error naming both. */
    write_u8_file(tu_path(dir, "b.safetensors"), one_name, one_size, 1);
    expect_open_fail(dir, QF_EFORMAT, dir, "b.safetensors, only.safetensors");

    /* A lone index of another name is used (diffusers). */
    tu_write_text(tu_path(dir, "diffusion_pytorch_model.safetensors.index.json"),
               "{\"weight_map\":{\"w\":\"b.safetensors\"}}");
    assert_int_equal(qf_st_open(dir, &st, &err), 0);
    assert_int_equal(qf_st_file_count(st), 1);
    assert_string_equal(qf_st_index_path(st),
                        tu_path(dir, "diffusion_pytorch_model.safetensors.index.json"));
    qf_st_close(st);
    tu_write_text(tu_path(dir, "other.safetensors.index.json"), "{}");
    expect_open_fail(dir, QF_EFORMAT, dir, "2 index files");
    tu_rm_tree(dir);

    /* Hugging Face cache layout: snapshot entries are symlinks into blobs/. */
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    snprintf(snap, sizeof snap, "%s/snapshots", dir);
    assert_int_equal(mkdir(blobs, 0755), 0);
    assert_int_equal(mkdir(snap, 0755), 0);
    snprintf(snap, sizeof snap, "%s/snapshots/abc123", dir);
    assert_int_equal(mkdir(snap, 0755), 0);
    make_shards(blobs);
    assert_int_equal(rename(tu_path(blobs, "model-00001-of-00002.safetensors"),
                            tu_path(blobs, "1111")), 0);
    assert_int_equal(rename(tu_path(blobs, "model-00002-of-00002.safetensors"),
                            tu_path(blobs, "2222")), 0);
    tu_write_text(tu_path(blobs, "3333"), good_index);
    assert_int_equal(symlink("../../blobs/1111", tu_path(snap, "model-00001-of-00002.safetensors")),
                     0);
    assert_int_equal(symlink("../../blobs/2222", tu_path(snap, "model-00002-of-00002.safetensors")),
                     0);
    assert_int_equal(symlink("../../blobs/3333", tu_path(snap, "model.safetensors.index.json")), 0);
    assert_int_equal(qf_st_open(snap, &st, &err), 0);
    check_sharded(st, snap);
    qf_st_close(st);
    assert_int_equal(qf_st_open(tu_path(snap, "model.safetensors.index.json"), &st, &err), 0);
    check_sharded(st, snap);
    qf_st_close(st);
    /* a dangling link is a missing shard */
    unlink(tu_path(blobs, "2222"));
    expect_open_fail(snap, QF_ENOTFOUND, tu_path(snap, "model.safetensors.index.json"),
                     "shard \"model-00002-of-00002.safetensors\" is missing");
    tu_rm_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_file),
        cmocka_unit_test(test_stories_folder_and_buffer),
        cmocka_unit_test(test_buffer_edge_cases),
        cmocka_unit_test(test_corrupt_fixtures),
        cmocka_unit_test(test_writer_exact_bytes),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_no_overwrite),
        cmocka_unit_test(test_writer_missing_data),
        cmocka_unit_test(test_writer_bad_arguments),
        cmocka_unit_test(test_all_dtypes),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_folder_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
