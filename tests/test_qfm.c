/*
 * tests/test_qfm.c - QFM reader, writer and provenance rewrite.
 *
 * A model with every GGUF value type (64-bit extremes, NaN payloads, -0,
 * strings that are not UTF-8, nested arrays) and tensors of several types
 * and codecs is written and read back field by field and byte by byte; the
 * file must not depend on the thread count; every prefix of a small file and
 * every single-byte change must be refused (at open, or when the tensor it
 * hits is read); the provenance rewrite must keep the tensors and the
 * digest valid. Fixtures are found under $QF_ROOT (set by tests/run.sh).
 */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/qfm_io.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/qfm.h"
#include "formats/types.h"
#include "quantize/affine.h"

static char dir[256];
static char root[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return tu_mkdtemp(dir, sizeof dir, "qfm");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

/* ---------------------------------------------------------------------
 * The test model
 * ------------------------------------------------------------------- */

#define N_F16 3000 /* 6000 bytes: several 1 KiB frames, the last one short */

static uint16_t f16_data[N_F16];
static uint8_t q8_data[34 * 4];
static uint8_t int4_data[20 * 2];

static void fill_data(void)
{
    int i;
    for (i = 0; i < N_F16; i++)
        f16_data[i] = qf_f32_to_f16(sinf((float)i * 0.01f));
    for (i = 0; i < (int)sizeof q8_data; i++)
        q8_data[i] = (uint8_t)(i * 37 + 11);
    for (i = 0; i < (int)sizeof int4_data; i++)
        int4_data[i] = (uint8_t)(i * 13 + 1);
    int4_data[0] = 0x00; /* scale f16 1.0 = 0x3c00 for both groups */
    int4_data[1] = 0x3c;
    int4_data[2] = 0x00; /* bias 0 */
    int4_data[3] = 0x00;
    int4_data[20] = 0x00;
    int4_data[21] = 0x3c;
    int4_data[22] = 0x00;
    int4_data[23] = 0x00;
}

static void set_values(qf_gguf_writer *m)
{
    static const char bad_utf8[] = { 'a', (char)0xff, 0, 'b' };
    const char *strs[] = { "x", "", "\xe2\x82\xac" };
    int64_t i64s[] = { INT64_MIN, -1, INT64_MAX };
    float fl[] = { -0.0f, 1e-45f, 3.4028235e38f };
    uint8_t nested[64];
    size_t n = 0;
    uint32_t nan_payload = 0x7fc00123u, snan = 0xff800001u;
    float fnan, fsnan;
    double d = 2.2250738585072014e-308 / 3.0; /* subnormal */

    memcpy(&fnan, &nan_payload, 4);
    memcpy(&fsnan, &snan, 4);
    assert_int_equal(qf_gguf_writer_set_str(m, "general.architecture", "llama", NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u8(m, "v.u8", 255, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_i8(m, "v.i8", -128, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u16(m, "v.u16", 65535, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_i16(m, "v.i16", -32768, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u32(m, "v.u32", 4294967295u, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_i32(m, "v.i32", INT32_MIN, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u64(m, "v.u64", UINT64_MAX, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_i64(m, "v.i64", INT64_MIN, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u64(m, "v.u64b", (1ull << 53) + 1, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f32(m, "v.f32", 1e-5f, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f32(m, "v.nan", fnan, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f32(m, "v.snan", fsnan, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f32(m, "v.inf", -INFINITY, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f64(m, "v.f64", d, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_f64(m, "v.pi", 3.141592653589793, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_bool(m, "v.bool", 1, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_strn(m, "v.nul", "a\0b", 3, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_raw(m, "v.bad", QF_GGUF_STRING,
                                            "\x04\0\0\0\0\0\0\0" "a\xff\0b", 12, NULL), 0);
    (void)bad_utf8;
    assert_int_equal(qf_gguf_writer_set_arr_str(m, "v.strs", strs, NULL, 3, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_arr(m, "v.i64s", QF_GGUF_INT64, i64s, 3, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_arr(m, "v.fl", QF_GGUF_FLOAT32, fl, 3, NULL), 0);
    /* ARRAY of 2 ARRAYs of UINT8: [[1, 2], []] */
    qf_put32(nested + n, QF_GGUF_ARRAY), n += 4;
    qf_put64(nested + n, 2), n += 8;
    qf_put32(nested + n, QF_GGUF_UINT8), n += 4;
    qf_put64(nested + n, 2), n += 8;
    nested[n++] = 1;
    nested[n++] = 2;
    qf_put32(nested + n, QF_GGUF_UINT8), n += 4;
    qf_put64(nested + n, 0), n += 8;
    assert_int_equal(qf_gguf_writer_set_raw(m, "v.nested", QF_GGUF_ARRAY, nested, n, NULL), 0);
}

/* Write the test model with `opts`; returns 0 or the writer's code. */
static int write_model(const char *path, const qf_qfm_opts *opts, int force)
{
    qf_gguf_writer *meta = NULL;
    qf_qfm_writer *w = NULL;
    qf_err err = { 0 };
    uint64_t ne_f16[2] = { 100, 30 }, ne_q8[2] = { 32, 4 }, ne_i4[2] = { 32, 2 };
    int rc;

    assert_int_equal(qf_gguf_writer_new(&meta, NULL), 0);
    set_values(meta);
    assert_int_equal(qf_gguf_writer_add_tensor(meta, "w.f16", QF_GGML_F16, 2, ne_f16, NULL), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(meta, "w.q8", QF_GGML_Q8_0, 2, ne_q8, NULL), 0);
    assert_int_equal(qf_qfm_writer_new(meta, opts, &w, &err), 0);
    qf_gguf_writer_free(meta);
    assert_int_equal(qf_qfm_writer_add_tensor(w, "w.int4", "int4-g32", 2, ne_i4, sizeof int4_data, &err), 0);
    assert_int_equal(qf_qfm_writer_set_provenance(w, "recipe", "{\"w.q8\": \"Q8_0\"}", &err), 0);
    rc = qf_qfm_writer_begin(w, path, force ? QF_OUT_FORCE : 0, &err);
    if (rc == 0) {
        /* bytes in uneven pieces, across tensor boundaries */
        uint8_t *all = malloc(sizeof f16_data + sizeof q8_data + sizeof int4_data);
        size_t n = 0, off = 0, step = 777;
        memcpy(all, f16_data, sizeof f16_data), n += sizeof f16_data;
        memcpy(all + n, q8_data, sizeof q8_data), n += sizeof q8_data;
        memcpy(all + n, int4_data, sizeof int4_data), n += sizeof int4_data;
        while (rc == 0 && off < n) {
            size_t k = n - off < step ? n - off : step;
            rc = qf_qfm_writer_write(w, all + off, k, &err);
            off += k;
        }
        free(all);
        if (rc == 0)
            rc = qf_qfm_writer_finish(w, &err);
    }
    qf_qfm_writer_free(w);
    return rc;
}

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    qf_qfm_opts o = { QF_QFM_ZSTD, 3, 2, 1024 };
    char p[512];
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    qf_gguf_writer *ref = NULL;
    const qf_gguf_writer *m;
    int64_t i;
    uint8_t buf[8192];
    (void)state;

    fill_data();
    path_of(p, sizeof p, "a.qfm");
    assert_int_equal(write_model(p, &o, 0), 0);
    assert_int_equal(write_model(p, &o, 0), QF_EEXIST); /* no overwrite without force */
    assert_int_equal(qf_qfm_open_model(p, &q, &err), 0);
    /* metadata: the same encoded values, in order */
    assert_int_equal(qf_gguf_writer_new(&ref, NULL), 0);
    set_values(ref);
    m = qf_qfm_metadata(q);
    assert_int_equal(qf_gguf_writer_kv_count(m), qf_gguf_writer_kv_count(ref));
    for (i = 0; i < qf_gguf_writer_kv_count(ref); i++) {
        qf_gguf_val a, b;
        qf_gguf_writer_kv_value(ref, i, &a);
        qf_gguf_writer_kv_value(m, i, &b);
        assert_string_equal(qf_gguf_writer_kv_key(ref, i), qf_gguf_writer_kv_key(m, i));
        assert_int_equal(a.type, b.type);
        assert_int_equal(a.raw_len, b.raw_len);
        assert_memory_equal(a.raw, b.raw, a.raw_len);
    }
    qf_gguf_writer_free(ref);
    /* tensors */
    assert_int_equal(qf_qfm_tensor_count(q), 3);
    {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, 0);
        assert_string_equal(t->name, "w.f16");
        assert_string_equal(t->type_name, "F16");
        assert_int_equal(t->nbytes, sizeof f16_data);
        assert_int_equal(t->codec, QF_QFM_ZSTD);
        assert_int_equal(t->n_frames, 6); /* 6000 bytes in 1 KiB frames */
        assert_true(t->stored_size < t->nbytes);
        assert_int_equal(t->offset % 64, 0);
        assert_int_equal(qf_qfm_read_tensor(q, 0, buf, sizeof buf, &err), 0);
        assert_memory_equal(buf, f16_data, sizeof f16_data);
        /* a range across frames 1..3 */
        memset(buf, 0, sizeof buf);
        assert_int_equal(qf_qfm_read_range(q, 0, 1000, 2500, buf, NULL, &err), 0);
        assert_memory_equal(buf, (uint8_t *)f16_data + 1000, 2500);
        assert_int_equal(qf_qfm_read_range(q, 0, 5999, 2, buf, NULL, &err), QF_EINVAL);
    }
    {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, 2);
        assert_string_equal(t->type_name, "int4-g32");
        assert_int_equal(t->ggml_type, -1);
        assert_int_equal(qf_qfm_read_tensor(q, 2, buf, sizeof buf, &err), 0);
        assert_memory_equal(buf, int4_data, sizeof int4_data);
    }
    assert_int_equal(qf_qfm_read_tensor(q, 1, buf, sizeof buf, &err), 0);
    assert_memory_equal(buf, q8_data, sizeof q8_data);
    assert_non_null(strstr(qf_qfm_provenance(q), "\"recipe\":{\"w.q8\":\"Q8_0\"}"));
    assert_int_equal(qf_qfm_find_tensor(q, "w.q8"), 1);
    assert_int_equal(qf_qfm_find_tensor(q, "nope"), -1);
    qf_qfm_close(q);
    /* without the affine resolver the int4 tensor's type is unknown */
    qf_err_clear(&err);
    assert_int_equal(qf_qfm_open(p, NULL, NULL, &q, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "tensor \"w.int4\": unknown type \"int4-g32\""));
}

static void test_threads_and_codecs(void **state)
{
    char a[512], b[512], c[512];
    uint8_t *x, *y;
    size_t nx, ny;
    qf_qfm_opts o1 = { QF_QFM_ZSTD, 5, 1, 1024 }, o3 = { QF_QFM_ZSTD, 5, 3, 1024 };
    qf_qfm_opts raw = { QF_QFM_RAW, 0, 2, 0 };
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    int64_t i;
    (void)state;

    fill_data();
    path_of(a, sizeof a, "t1.qfm");
    path_of(b, sizeof b, "t3.qfm");
    path_of(c, sizeof c, "raw.qfm");
    assert_int_equal(write_model(a, &o1, 1), 0);
    assert_int_equal(write_model(b, &o3, 1), 0);
    x = tu_read_file(a, &nx);
    y = tu_read_file(b, &ny);
    assert_int_equal(nx, ny); /* same bytes whatever the thread count */
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
    assert_int_equal(write_model(c, &raw, 1), 0);
    assert_int_equal(qf_qfm_open_model(c, &q, &err), 0);
    for (i = 0; i < qf_qfm_tensor_count(q); i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        assert_int_equal(t->codec, QF_QFM_RAW);
        assert_int_equal(t->stored_size, t->nbytes);
        assert_non_null(t->data); /* usable in place */
        assert_int_equal((uintptr_t)(t->data - (const uint8_t *)qf_qfm_header(q) + 16) % 64, 0);
        assert_int_equal(qf_qfm_stream(q, i, NULL, NULL, NULL, &err), 0);
    }
    assert_memory_equal(qf_qfm_tensor_at(q, 0)->data, f16_data, sizeof f16_data);
    qf_qfm_close(q);
}

static void test_every_prefix_refused(void **state)
{
    char p[512];
    uint8_t *f;
    size_t n;
    uint64_t k;
    qf_qfm_opts o = { QF_QFM_ZSTD, 3, 1, 1024 };
    (void)state;

    fill_data();
    path_of(p, sizeof p, "prefix.qfm");
    assert_int_equal(write_model(p, &o, 1), 0);
    f = tu_read_file(p, &n);
    for (k = 0; k < n; k++) {
        qf_qfm *q = NULL;
        qf_err err = { 0 };
        int rc = qf_qfm_open_buffer(f, k, "cut.qfm", qf_qfm_affine_types, NULL, &q, &err);
        if (rc == 0)
            fail_msg("prefix of %llu bytes accepted", (unsigned long long)k);
        assert_null(q);
        assert_int_equal(strncmp(err.msg, "cut.qfm: ", 9), 0);
    }
    free(f);
}

static void test_every_byte_change_caught(void **state)
{
    char p[512];
    uint8_t *f;
    size_t n;
    uint64_t k;
    qf_qfm_opts o = { QF_QFM_ZSTD, 3, 1, 1024 };
    int named = 0;
    (void)state;

    fill_data();
    path_of(p, sizeof p, "flip.qfm");
    assert_int_equal(write_model(p, &o, 1), 0);
    f = tu_read_file(p, &n);
    for (k = 0; k < n; k++) {
        qf_qfm *q = NULL;
        qf_err err = { 0 };
        int64_t i;
        int caught = 0;
        f[k] ^= 0x20;
        if (qf_qfm_open_buffer(f, n, "flip.qfm", qf_qfm_affine_types, NULL, &q, &err) != 0) {
            caught = 1;
        } else {
            for (i = 0; i < qf_qfm_tensor_count(q) && !caught; i++) {
                qf_err e2 = { 0 };
                if (qf_qfm_stream(q, i, NULL, NULL, NULL, &e2) != 0) {
                    caught = 1;
                    /* the message names the damaged tensor */
                    assert_non_null(strstr(e2.msg, qf_qfm_tensor_at(q, i)->name));
                    named++;
                }
            }
            qf_qfm_close(q);
        }
        if (!caught)
            fail_msg("change at byte %llu of %llu not caught", (unsigned long long)k, (unsigned long long)n);
        f[k] ^= 0x20;
    }
    assert_true(named > 100); /* data bytes were among them */
    free(f);
}

static void test_rewrite_provenance(void **state)
{
    char p[512];
    qf_qfm_opts o = { QF_QFM_ZSTD, 3, 1, 1024 };
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    uint8_t buf[8192];
    (void)state;

    fill_data();
    path_of(p, sizeof p, "prov.qfm");
    assert_int_equal(write_model(p, &o, 1), 0);
    assert_int_equal(qf_qfm_rewrite_provenance(p, "{\"verify\": {\"ppl\": 12.5}, \"recipe\": null}", 0,
                                               qf_qfm_affine_types, NULL, &err), 0);
    assert_int_equal(qf_qfm_open_model(p, &q, &err), 0);
    assert_string_equal(qf_qfm_provenance(q), "{\"verify\":{\"ppl\":12.5}}");
    assert_int_equal(qf_qfm_read_tensor(q, 0, buf, sizeof buf, &err), 0);
    assert_memory_equal(buf, f16_data, sizeof f16_data);
    assert_int_equal(qf_qfm_read_tensor(q, 2, buf, sizeof buf, &err), 0);
    assert_memory_equal(buf, int4_data, sizeof int4_data);
    qf_qfm_close(q);
    assert_int_equal(qf_qfm_rewrite_provenance(p, "{\"a\": 1}", QF_QFM_PROV_REPLACE, qf_qfm_affine_types,
                                               NULL, &err), 0);
    assert_int_equal(qf_qfm_open_model(p, &q, &err), 0);
    assert_string_equal(qf_qfm_provenance(q), "{\"a\":1}");
    qf_qfm_close(q);
    assert_int_equal(qf_qfm_rewrite_provenance(p, "[1]", 0, qf_qfm_affine_types, NULL, &err), QF_EINVAL);
}

static void test_writer_rejects(void **state)
{
    qf_qfm_writer *w = NULL;
    qf_err err = { 0 };
    qf_qfm_opts bad = { 7, 0, 1, 0 };
    uint64_t ne[2] = { 32, 2 };
    char p[512];
    (void)state;

    assert_int_equal(qf_qfm_writer_new(NULL, &bad, &w, &err), QF_EINVAL);
    assert_int_equal(qf_qfm_writer_new(NULL, NULL, &w, &err), 0);
    assert_int_equal(qf_qfm_writer_add_tensor(w, "x", "Q8_0", 2, ne, 67, &err), QF_EINVAL);
    assert_int_equal(qf_qfm_writer_add_tensor(w, "x", "Q8_0", 2, ne, 68, &err), 0);
    assert_int_equal(qf_qfm_writer_add_tensor(w, "x", "F32", 1, ne, 128, &err), QF_EINVAL);
    assert_int_equal(qf_qfm_writer_set_provenance(w, "k", "{bad", &err), QF_EINVAL);
    path_of(p, sizeof p, "short.qfm");
    assert_int_equal(qf_qfm_writer_begin(w, p, QF_OUT_FORCE, &err), 0);
    assert_int_equal(qf_qfm_writer_write(w, "abc", 3, &err), 0);
    err.code = 0;
    assert_int_equal(qf_qfm_writer_finish(w, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "tensor \"x\": data missing"));
    qf_qfm_writer_free(w);
    {
        FILE *f = fopen(p, "rb");
        assert_null(f); /* nothing left behind */
    }
}

/* Each data-level fixture of fixtures/corrupt/qfm-data.expect fails when
 * its tensor is read, with the message given there. */
static void test_data_fixtures(void **state)
{
    char path[1800], line[512];
    FILE *f;
    int n = 0;
    (void)state;

    snprintf(path, sizeof path, "%s/fixtures/corrupt/qfm-data.expect", root);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl;
        qf_qfm *q = NULL;
        qf_err err = { 0 };
        int64_t i;
        int rc = 0;
        if (line[0] == '#' || !tab)
            continue;
        *tab = '\0';
        if ((nl = strchr(tab + 1, '\n')))
            *nl = '\0';
        snprintf(path, sizeof path, "%s/fixtures/corrupt/%s", root, line);
        assert_int_equal(qf_qfm_open_model(path, &q, &err), 0);
        for (i = 0; i < qf_qfm_tensor_count(q) && rc == 0; i++)
            rc = qf_qfm_stream(q, i, NULL, NULL, NULL, &err);
        assert_int_not_equal(rc, 0);
        if (!strstr(err.msg, tab + 1))
            fail_msg("%s: got '%s', expected '%s'", line, err.msg, tab + 1);
        qf_qfm_close(q);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_threads_and_codecs),
        cmocka_unit_test(test_every_prefix_refused),
        cmocka_unit_test(test_every_byte_change_caught),
        cmocka_unit_test(test_rewrite_provenance),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_data_fixtures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
