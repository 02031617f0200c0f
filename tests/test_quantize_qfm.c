/*
 * tests/test_quantize_qfm.c - convert/quantize_model writing a QFM: affine
 * plans (which tensors get the type, the int8-ch fallback, general.file_type),
 * the bytes of each affine tensor against quantize/affine.h applied to the
 * source's rows, the recipe in the provenance, a GGUF type's QFM against
 * its GGUF, and the refusals (affine plan to GGUF, imatrix or budget with an
 * affine type).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/qfm_io.h"
#include "convert/quantize_model.h"
#include "convert/source.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/qfm.h"
#include "formats/types.h"
#include "quantize/affine.h"
#include "quantize/mix.h"

static char dir[256];
static char model[1200];

static int setup(void **state)
{
    const char *r = getenv("QF_ROOT");
    (void)state;
    snprintf(model, sizeof model, "%s/fixtures/gguf/stories260K-f16.gguf", r && *r ? r : ".");
    snprintf(dir, sizeof dir, "/tmp/qf_test_quantize_qfm.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int code_of(const char *name)
{
    qf_affine a;
    assert_int_equal(qf_affine_parse(name, &a), 0);
    return qf_affine_code(a);
}

static const qf_quantize_tensor *find(const qf_quantize *q, const char *name)
{
    for (int64_t i = 0; i < qf_quantize_tensor_count(q); i++)
        if (!strcmp(qf_quantize_tensor_at(q, i)->name, name))
            return qf_quantize_tensor_at(q, i);
    fail_msg("no tensor %s", name);
    return NULL;
}

/* The plan: 2-D weights (token_embd too) in the type, the 172-column
 * ffn_down in int8-ch, norms as stored; a GGUF write is refused. */
static void test_affine_plan(void **state)
{
    qf_source *src = NULL;
    qf_quantize *q = NULL;
    qf_quantize_opts o;
    qf_quantize_totals tt;
    const qf_quantize_tensor *t;
    qf_err err = { 0 };
    char path[300];
    (void)state;

    assert_int_equal(qf_source_open(model, &src, &err), 0);
    qf_quantize_opts_init(&o);
    o.affine = code_of("int4-g32");
    o.threads = 2;
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), 0);
    assert_true(qf_quantize_has_affine(q));

    t = find(q, "blk.0.attn_q.weight");
    assert_int_equal(t->type, code_of("int4-g32"));
    assert_true(t->quantize);
    assert_false(t->fallback);
    assert_int_equal(t->out_bytes, 64 * 2 * (4 + 16));
    t = find(q, "token_embd.weight");
    assert_int_equal(t->type, code_of("int4-g32"));
    t = find(q, "blk.2.ffn_down.weight");
    assert_int_equal(t->type, code_of("int8-ch"));
    assert_int_equal(t->wanted, code_of("int4-g32"));
    assert_true(t->fallback);
    assert_false(t->llama_fails);
    assert_int_equal(t->out_bytes, 64 * (4 + 172));
    t = find(q, "blk.0.ffn_norm.weight");
    assert_int_equal(t->type, QF_GGML_F32);
    assert_false(t->quantize);
    assert_string_equal(qf_quantize_type_name(code_of("int8-g128")), "int8-g128");
    assert_string_equal(qf_quantize_type_name(QF_GGML_Q4_K), "Q4_K");

    qf_quantize_get_totals(q, &tt);
    assert_int_equal(tt.n_fallback, 5);
    assert_int_equal(tt.file_size, 0); /* no GGUF form */
    {
        const qf_gguf_writer *m = qf_quantize_metadata(q);
        qf_gguf_val v;
        int64_t k = qf_gguf_writer_find_key(m, "general.file_type");
        assert_true(k >= 0);
        qf_gguf_writer_kv_value(m, k, &v);
        assert_int_equal(v.u, 1);
    }
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    assert_int_equal(qf_quantize_write(q, path, 0, NULL, NULL, NULL, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "no GGUF form"));
    qf_quantize_free(q);
    qf_source_close(src);
}

static void test_affine_refusals(void **state)
{
    qf_source *src = NULL;
    qf_quantize *q = NULL;
    qf_quantize_opts o;
    qf_err err = { 0 };
    int types[64];
    (void)state;

    assert_int_equal(qf_source_open(model, &src, &err), 0);
    qf_quantize_opts_init(&o);
    o.affine = QF_AFFINE_CODE_BASE + QF_AFFINE_CODE_COUNT;
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), QF_EINVAL);
    o.affine = code_of("int8-ch");
    o.imatrix = "x.dat";
    memset(&err, 0, sizeof err);
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "takes no importance matrix"));
    o.imatrix = NULL;
    memset(types, 0xff, sizeof types);
    o.source_types = types;
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), QF_EINVAL);
    assert_null(q);
    qf_source_close(src);
}

/* The QFM: each affine tensor's bytes are qf_affine_quantize of the
 * source's rows; the recipe names every tensor. */
static void test_affine_bytes_and_recipe(void **state)
{
    static const char *const TYPES[] = { "int4-g64", "int8-g32", "int8-ch" };
    char path[300];
    (void)state;

    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
        qf_source *src = NULL;
        qf_quantize *q = NULL;
        qf_quantize_opts o;
        qf_quantize_qfm_opts qo;
        qf_quantize_totals tt;
        qf_qfm *f = NULL;
        qf_err err = { 0 };
        cJSON *prov, *recipe, *tensors;
        int64_t i, n_affine = 0;

        assert_int_equal(qf_source_open(model, &src, &err), 0);
        qf_quantize_opts_init(&o);
        o.affine = code_of(TYPES[k]);
        o.threads = 2;
        assert_int_equal(qf_quantize_plan(src, &o, &q, &err), 0);
        qf_quantize_qfm_opts_init(&qo);
        qo.qfm.codec = k == 1 ? QF_QFM_RAW : QF_QFM_ZSTD;
        snprintf(path, sizeof path, "%s/%s.qfm", dir, TYPES[k]);
        assert_int_equal(qf_quantize_write_qfm(q, path, 0, &qo, NULL, NULL, &err), 0);
        qf_quantize_get_totals(q, &tt);
        assert_int_equal(qf_qfm_open_model(path, &f, &err), 0);
        assert_int_equal(tt.file_size, qf_qfm_file_size(f));
        assert_int_equal(qf_qfm_tensor_count(f), qf_quantize_tensor_count(q));

        for (i = 0; i < qf_qfm_tensor_count(f); i++) {
            const qf_qfm_tensor *ft = qf_qfm_tensor_at(f, i);
            const qf_quantize_tensor *pt = qf_quantize_tensor_at(q, i);
            qf_affine a;
            float *rows;
            uint8_t *want, *got;
            assert_string_equal(ft->name, pt->name);
            assert_string_equal(ft->type_name, qf_quantize_type_name(pt->type));
            if (!qf_affine_from_code(pt->type, &a))
                continue;
            n_affine++;
            rows = malloc(ft->n_elements * sizeof *rows);
            want = malloc(ft->nbytes);
            got = malloc(ft->nbytes);
            assert_non_null(rows);
            assert_non_null(want);
            assert_non_null(got);
            assert_int_equal(qf_source_rows_f32(src, pt->source_index, 0, ft->n_rows, rows, &err), 0);
            assert_int_equal(qf_affine_quantize(a, rows, want, (int64_t)ft->n_rows, (int64_t)ft->ne[0]), 0);
            assert_int_equal(qf_qfm_read_tensor(f, i, got, ft->nbytes, &err), 0);
            assert_memory_equal(want, got, ft->nbytes);
            free(rows);
            free(want);
            free(got);
        }
        assert_int_equal(n_affine, 36);

        prov = cJSON_Parse(qf_qfm_provenance(f));
        assert_non_null(prov);
        recipe = cJSON_GetObjectItem(prov, "recipe");
        assert_non_null(recipe);
        assert_string_equal(cJSON_GetObjectItem(recipe, "type")->valuestring, TYPES[k]);
        assert_int_equal(cJSON_GetObjectItem(recipe, "ftype")->valueint, 1);
        tensors = cJSON_GetObjectItem(recipe, "tensors");
        assert_int_equal(cJSON_GetArraySize(tensors), qf_quantize_tensor_count(q));
        assert_non_null(cJSON_GetObjectItem(prov, "sources"));
        cJSON_Delete(prov);
        qf_qfm_close(f);
        qf_quantize_free(q);
        qf_source_close(src);
    }
}

/* A mix into a QFM: the header's metadata and tensors are the GGUF's, and
 * each tensor's digest is the GGUF tensor's. */
static void test_mix_matches_gguf(void **state)
{
    char gpath[300], qpath[300];
    qf_source *src = NULL;
    qf_quantize *q = NULL;
    qf_quantize_opts o;
    qf_quantize_qfm_opts qo;
    qf_gguf *g = NULL;
    qf_qfm *f = NULL;
    qf_err err = { 0 };
    int64_t i;
    (void)state;

    snprintf(gpath, sizeof gpath, "%s/m.gguf", dir);
    snprintf(qpath, sizeof qpath, "%s/m.qfm", dir);
    assert_int_equal(qf_source_open(model, &src, &err), 0);
    qf_quantize_opts_init(&o);
    o.ftype = QF_FTYPE_Q4_K_M;
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), 0);
    assert_false(qf_quantize_has_affine(q));
    assert_int_equal(qf_quantize_write(q, gpath, 0, NULL, NULL, NULL, &err), 0);
    qf_quantize_free(q);
    assert_int_equal(qf_quantize_plan(src, &o, &q, &err), 0);
    qf_quantize_qfm_opts_init(&qo);
    assert_int_equal(qf_quantize_write_qfm(q, qpath, 0, &qo, NULL, NULL, &err), 0);
    /* once per plan */
    assert_int_equal(qf_quantize_write_qfm(q, qpath, QF_OUT_FORCE, &qo, NULL, NULL, &err), QF_EINVAL);

    assert_int_equal(qf_gguf_open(gpath, &g, &err), 0);
    assert_int_equal(qf_qfm_open_model(qpath, &f, &err), 0);
    assert_int_equal(qf_gguf_kv_count(g), qf_gguf_writer_kv_count(qf_qfm_metadata(f)));
    assert_int_equal(qf_gguf_tensor_count(g), qf_qfm_tensor_count(f));
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *gt = qf_gguf_tensor_at(g, i);
        const qf_qfm_tensor *ft = qf_qfm_tensor_at(f, i);
        uint8_t d[QF_SHA256_LEN];
        assert_string_equal(gt->name, ft->name);
        assert_int_equal(gt->type, ft->ggml_type);
        assert_int_equal(gt->nbytes, ft->nbytes);
        assert_int_equal(qf_sha256_buf(gt->data, (size_t)gt->nbytes, d), 0);
        assert_memory_equal(d, ft->sha256, QF_SHA256_LEN);
    }
    qf_qfm_close(f);
    qf_gguf_close(g);
    qf_quantize_free(q);
    qf_source_close(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affine_plan),
        cmocka_unit_test(test_affine_refusals),
        cmocka_unit_test(test_affine_bytes_and_recipe),
        cmocka_unit_test(test_mix_matches_gguf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
