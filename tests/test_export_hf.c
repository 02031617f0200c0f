/*
 * tests/test_export_hf.c - convert/export_hf: a model back to a Hugging
 * Face folder.
 *
 * The quantized fixture (stories260K Q4_K_M: Q8_0, Q5_0, IQ4_NL, F16 and
 * F32 tensors) is exported to F32 and every exported tensor is compared
 * with the source's own dequantization, q/k rows mapped through the
 * converter's permutation (written here in its forward direction, so the
 * export's inverse is checked against it). Then F16 export of an F16 GGUF
 * (bytes equal to the source's for unpermuted tensors), config.json,
 * refusals and the atomic folder handling, on small GGUFs made here.
 */
#include "tests/testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/export_hf.h"
#include "convert/source.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/types.h"

static char root[1024], dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return tu_mkdtemp(dir, sizeof dir, "export");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

static qf_source *open_src(const char *rel)
{
    char p[1200];
    qf_source *s = NULL;
    qf_err err = { 0 };
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (qf_source_open(p, &s, &err) != 0)
        fail_msg("%s", err.msg);
    return s;
}

/* The HF name of a GGUF name, written independently of the exporter. */
static void hf_of(const char *g, char *out, size_t cap)
{
    static const char *const map[][2] = {
        { "attn_norm", "input_layernorm" },   { "attn_q", "self_attn.q_proj" },
        { "attn_k", "self_attn.k_proj" },     { "attn_v", "self_attn.v_proj" },
        { "attn_output", "self_attn.o_proj" }, { "ffn_norm", "post_attention_layernorm" },
        { "ffn_gate", "mlp.gate_proj" },      { "ffn_up", "mlp.up_proj" },
        { "ffn_down", "mlp.down_proj" },
    };
    int layer;
    char kind[32];
    size_t i;
    if (!strcmp(g, "token_embd.weight"))
        snprintf(out, cap, "model.embed_tokens.weight");
    else if (!strcmp(g, "output_norm.weight"))
        snprintf(out, cap, "model.norm.weight");
    else if (!strcmp(g, "output.weight"))
        snprintf(out, cap, "lm_head.weight");
    else {
        assert_int_equal(sscanf(g, "blk.%d.%31[a-z_].weight", &layer, kind), 2);
        for (i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(kind, map[i][0]))
                break;
        assert_true(i < sizeof map / sizeof map[0]);
        snprintf(out, cap, "model.layers.%d.%s.weight", layer, map[i][1]);
    }
}

/* Every exported tensor against the source's rows. heads_q/heads_kv: the
 * permutation's head counts (0: none). */
static void check_values(const qf_source *s, const char *out, qf_dtype dt, uint64_t heads_q,
                         uint64_t heads_kv)
{
    qf_st *st = NULL;
    qf_err err = { 0 };
    int64_t i, n = qf_source_tensor_count(s), found = 0;

    if (qf_st_open(out, &st, &err) != 0)
        fail_msg("%s", err.msg);
    for (i = 0; i < n; i++) {
        const qf_source_tensor *t = qf_source_tensor_at(s, i);
        const qf_st_tensor *h;
        char name[128];
        uint64_t r, heads = 0;
        float *row, *got;
        int64_t k;
        hf_of(t->name, name, sizeof name);
        k = qf_st_find(st, name);
        if (k < 0)
            fail_msg("%s: no %s", out, name);
        h = qf_st_tensor_at(st, k);
        found++;
        assert_int_equal(h->dtype, dt);
        assert_int_equal(h->n_dims, t->n_dims);
        assert_int_equal(h->shape[h->n_dims - 1], t->ne[0]);
        if (t->n_dims == 2) {
            assert_int_equal(h->shape[0], t->ne[1]);
            if (strstr(t->name, "attn_q.weight"))
                heads = heads_q;
            if (strstr(t->name, "attn_k.weight"))
                heads = heads_kv;
        }
        row = malloc(t->ne[0] * sizeof *row);
        got = malloc(t->ne[0] * sizeof *got);
        assert_non_null(row);
        assert_non_null(got);
        for (r = 0; r < t->n_rows; r++) {
            /* GGUF row r of head hh, position kk holds HF row
             * hh*hd + (kk&1)*(hd/2) + kk/2 (llama.cpp's permute) */
            uint64_t hr = r;
            if (heads) {
                uint64_t hd = t->n_rows / heads, hh = r / hd, kk = r % hd;
                hr = hh * hd + (kk & 1) * (hd / 2) + kk / 2;
            }
            assert_int_equal(qf_source_rows_f32(s, i, r, 1, row, &err), 0);
            if (dt != QF_DTYPE_F32) { /* the export's rounding of the F32 values */
                uint8_t tmp[4096];
                assert_true(t->ne[0] * 2 <= sizeof tmp);
                qf_f32_to_dtype(dt, row, tmp, t->ne[0]);
                qf_dtype_to_f32(dt, tmp, row, t->ne[0]);
            }
            qf_dtype_to_f32(dt, h->data + hr * t->ne[0] * qf_dtype_size(dt), got, t->ne[0]);
            if (memcmp(row, got, t->ne[0] * sizeof *row) != 0)
                fail_msg("%s row %llu (HF row %llu) differs", t->name, (unsigned long long)r,
                         (unsigned long long)hr);
        }
        free(row);
        free(got);
    }
    assert_int_equal(qf_st_tensor_count(st), found);
    qf_st_close(st);
}

static cJSON *read_json(const char *path)
{
    size_t n;
    char *text = tu_read_file(path, &n);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    assert_non_null(j);
    return j;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        fail_msg("config.json: no number \"%s\"", key);
    return v->valuedouble;
}

static void test_q4km_values(void **state)
{
    qf_source *s = open_src("fixtures/gguf/stories260K-Q4_K_M.gguf");
    char out[512], cfgp[600];
    qf_err err = { 0 };
    cJSON *cfg;
    const cJSON *v;
    (void)state;
    snprintf(out, sizeof out, "%s/q4", dir);
    if (qf_export_hf(s, out, QF_DTYPE_F32, 0, &err) != 0)
        fail_msg("%s", err.msg);
    check_values(s, out, QF_DTYPE_F32, 8, 4);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", out);
    cfg = read_json(cfgp);
    assert_int_equal((int)num(cfg, "hidden_size"), 64);
    assert_int_equal((int)num(cfg, "intermediate_size"), 172);
    assert_int_equal((int)num(cfg, "num_hidden_layers"), 5);
    assert_int_equal((int)num(cfg, "num_attention_heads"), 8);
    assert_int_equal((int)num(cfg, "num_key_value_heads"), 4);
    assert_int_equal((int)num(cfg, "vocab_size"), 512);
    assert_int_equal((int)num(cfg, "max_position_embeddings"), 512);
    assert_int_equal((int)num(cfg, "bos_token_id"), 1);
    assert_int_equal((int)num(cfg, "eos_token_id"), 2);
    assert_true(num(cfg, "rms_norm_eps") == 1e-05);
    assert_true(num(cfg, "rope_theta") == 10000.0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings")));
    v = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    assert_string_equal(cJSON_GetArrayItem(v, 0)->valuestring, "LlamaForCausalLM");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype")->valuestring, "float32");
    assert_null(cJSON_GetObjectItemCaseSensitive(cfg, "head_dim"));
    assert_null(cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling"));
    cJSON_Delete(cfg);
    qf_source_close(s);
}

static void test_f16_bytes(void **state)
{
    qf_source *s = open_src("fixtures/gguf/stories260K-f16.gguf");
    char out[512];
    qf_err err = { 0 };
    qf_st *st = NULL;
    const qf_st_tensor *h;
    const qf_source_tensor *t;
    (void)state;
    snprintf(out, sizeof out, "%s/f16", dir);
    if (qf_export_hf(s, out, QF_DTYPE_F16, 0, &err) != 0)
        fail_msg("%s", err.msg);
    check_values(s, out, QF_DTYPE_F16, 8, 4);
    /* an unpermuted F16 tensor: the same bytes */
    assert_int_equal(qf_st_open(out, &st, &err), 0);
    h = qf_st_tensor_at(st, qf_st_find(st, "model.layers.2.mlp.down_proj.weight"));
    t = qf_source_tensor_at(s, qf_source_find_tensor(s, "blk.2.ffn_down.weight"));
    assert_non_null(h);
    assert_int_equal(t->type, QF_GGML_F16);
    assert_int_equal(h->nbytes, t->nbytes);
    assert_memory_equal(h->data, t->data, t->nbytes);
    qf_st_close(st);
    /* BF16 too */
    snprintf(out, sizeof out, "%s/bf16", dir);
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_BF16, 0, &err), 0);
    check_values(s, out, QF_DTYPE_BF16, 8, 4);
    qf_source_close(s);
}

/* A tiny GGUF: arch, tokenizer model (or NULL), an extra tensor name (or
 * NULL), optional rope_freqs values. */
static void tiny_gguf(const char *path, const char *arch, const char *tok, const char *extra,
                      const float *rope, uint64_t n_rope)
{
    qf_gguf_writer *w = NULL;
    qf_err err = { 0 };
    char key[64];
    uint64_t ne[2] = { 8, 16 }, one[1] = { 8 };
    float data[16 * 8];
    const char *toks[16];
    char tokbuf[16][8];
    float scores[16];
    int32_t types[16];
    int i;
    for (i = 0; i < 16 * 8; i++)
        data[i] = (float)i * 0.25f - 3.0f;
    for (i = 0; i < 16; i++) {
        snprintf(tokbuf[i], sizeof tokbuf[i], "t%d", i);
        toks[i] = tokbuf[i];
        scores[i] = (float)-i;
        types[i] = i == 0 ? 2 : 1;
    }
    assert_int_equal(qf_gguf_writer_new(&w, &err), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "general.architecture", arch, &err), 0);
#define U32(k, v) (snprintf(key, sizeof key, "%s." k, arch), assert_int_equal(qf_gguf_writer_set_u32(w, key, v, &err), 0))
    U32("block_count", 1);
    U32("embedding_length", 8);
    U32("attention.head_count", 2);
    U32("context_length", 64);
#undef U32
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    assert_int_equal(qf_gguf_writer_set_f32(w, key, 500000.0f, &err), 0);
    if (tok) {
        assert_int_equal(qf_gguf_writer_set_str(w, "tokenizer.ggml.model", tok, &err), 0);
        assert_int_equal(qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 16, &err), 0);
        assert_int_equal(qf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QF_GGUF_FLOAT32, scores, 16, &err), 0);
        assert_int_equal(qf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QF_GGUF_INT32, types, 16, &err), 0);
    }
    if (rope)
        assert_int_equal(qf_gguf_writer_add_tensor(w, "rope_freqs.weight", QF_GGML_F32, 1, &n_rope, &err), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "token_embd.weight", QF_GGML_F32, 2, ne, &err), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "output_norm.weight", QF_GGML_F32, 1, one, &err), 0);
    if (extra)
        assert_int_equal(qf_gguf_writer_add_tensor(w, extra, QF_GGML_F32, 1, one, &err), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, &err), 0);
    if (rope)
        assert_int_equal(qf_gguf_writer_write(w, rope, n_rope * 4, &err), 0);
    assert_int_equal(qf_gguf_writer_write(w, data, sizeof data, &err), 0);
    assert_int_equal(qf_gguf_writer_write(w, data, 8 * 4, &err), 0);
    if (extra)
        assert_int_equal(qf_gguf_writer_write(w, data, 8 * 4, &err), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &err), 0);
    qf_gguf_writer_free(w);
}

static int leftovers(void) /* hidden entries in the test folder */
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_refusals(void **state)
{
    char g[512], out[512];
    qf_source *s;
    qf_err err = { 0 };
    struct stat sb;
    (void)state;
    snprintf(out, sizeof out, "%s/refused", dir);
    /* an architecture without an HF counterpart here */
    snprintf(g, sizeof g, "%s/phi.gguf", dir);
    tiny_gguf(g, "phi2", "llama", NULL, NULL, 0);
    assert_int_equal(qf_source_open(g, &s, &err), 0);
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_F32, 0, &err), QF_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "architecture \"phi2\" cannot be exported"));
    qf_source_close(s);
    /* a tensor without an HF name */
    snprintf(g, sizeof g, "%s/extra.gguf", dir);
    tiny_gguf(g, "llama", "llama", "blk.0.mystery.weight", NULL, 0);
    assert_int_equal(qf_source_open(g, &s, &err), 0);
    qf_err_clear(&err);
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_F32, 0, &err), QF_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "blk.0.mystery.weight"));
    /* bad dtypes */
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_F64, 0, &err), QF_EINVAL);
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_I8, 0, &err), QF_EINVAL);
    assert_int_equal(qf_export_hf(s, out, QF_GGML_Q8_0, 0, &err), QF_EINVAL);
    qf_source_close(s);
    assert_int_equal(stat(out, &sb), -1);
    assert_int_equal(leftovers(), 0);
}

static void test_exists_force_and_tokenizer(void **state)
{
    char g[512], out[512], p[600];
    qf_source *s;
    qf_err err = { 0 };
    qf_export_hf_opts o = { QF_DTYPE_F32, 0, 0, -1 };
    FILE *f;
    struct stat sb;
    (void)state;
    snprintf(g, sizeof g, "%s/gpt2.gguf", dir);
    tiny_gguf(g, "qwen2", "gpt2", NULL, NULL, 0);
    snprintf(out, sizeof out, "%s/out", dir);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(p, sizeof p, "%s/keep", out);
    f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(qf_source_open(g, &s, &err), 0);
    /* exists: refused, untouched */
    assert_int_equal(qf_export_hf_ex(s, out, &o, &err), QF_EEXIST);
    assert_int_equal(stat(p, &sb), 0);
    /* forced: replaced; a gpt2 vocabulary gets no tokenizer files, and says so */
    o.flags = QF_EXPORT_FORCE;
    qf_err_clear(&err);
    if (qf_export_hf_ex(s, out, &o, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(o.report, QF_EXPORT_REPORT_NO_TOKENIZER);
    assert_int_equal(stat(p, &sb), -1);
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    assert_int_equal(stat(p, &sb), 0);
    snprintf(p, sizeof p, "%s/tokenizer.model", out);
    assert_int_equal(stat(p, &sb), -1);
    snprintf(p, sizeof p, "%s/config.json", out);
    {
        cJSON *c = read_json(p);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "architectures");
        assert_string_equal(cJSON_GetArrayItem(a, 0)->valuestring, "Qwen2ForCausalLM");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "model_type")->valuestring, "qwen2");
        assert_true(num(c, "rope_theta") == 500000.0);
        assert_int_equal((int)num(c, "vocab_size"), 16);
        assert_null(cJSON_GetObjectItemCaseSensitive(c, "num_key_value_heads"));
        assert_null(cJSON_GetObjectItemCaseSensitive(c, "intermediate_size"));
        cJSON_Delete(c);
    }
    qf_source_close(s);
    assert_int_equal(leftovers(), 0);
}

/* convert.c's llama3 factors (factor 8, low 1, high 4, original 8192,
 * theta 500000, 64-wide heads) must come back as those parameters. */
static void test_llama3_fit(void **state)
{
    float f[32];
    char g[512], out[512], p[600];
    qf_source *s;
    qf_err err = { 0 };
    cJSON *c;
    const cJSON *rs;
    int i;
    (void)state;
    for (i = 0; i < 32; i++) {
        float freq = 1.0f / powf(500000.0f, (float)(2 * i) / 64.0f);
        float wl = (float)(2.0 * M_PI) / freq;
        if ((double)wl < 8192.0 / 4.0)
            f[i] = 1.0f;
        else if ((double)wl > 8192.0)
            f[i] = 8.0f;
        else {
            float sm = (8192.0f / wl - 1.0f) / (4.0f - 1.0f);
            f[i] = 1.0f / ((1.0f - sm) / 8.0f + sm);
        }
    }
    snprintf(g, sizeof g, "%s/rope3.gguf", dir);
    tiny_gguf(g, "llama", "llama", NULL, f, 32);
    snprintf(out, sizeof out, "%s/rope3", dir);
    assert_int_equal(qf_source_open(g, &s, &err), 0);
    if (qf_export_hf(s, out, QF_DTYPE_F32, 0, &err) != 0)
        fail_msg("%s", err.msg);
    snprintf(p, sizeof p, "%s/config.json", out);
    c = read_json(p);
    rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    assert_non_null(rs);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(rs, "rope_type")->valuestring, "llama3");
    assert_true(num(rs, "factor") == 8.0);
    assert_true(num(rs, "low_freq_factor") == 1.0);
    assert_true(num(rs, "high_freq_factor") == 4.0);
    assert_true(num(rs, "original_max_position_embeddings") == 8192.0);
    cJSON_Delete(c);
    qf_source_close(s);
    /* factors no llama3 curve gives: refused, nothing left */
    f[31] = 3.0f, f[30] = 7.0f;
    tiny_gguf(g, "llama", "llama", NULL, f, 32);
    snprintf(out, sizeof out, "%s/rope3-bad", dir);
    assert_int_equal(qf_source_open(g, &s, &err), 0);
    assert_int_equal(qf_export_hf(s, out, QF_DTYPE_F32, 0, &err), QF_EUNSUPPORTED);
    qf_source_close(s);
    assert_int_equal(leftovers(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4km_values),
        cmocka_unit_test(test_f16_bytes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_exists_force_and_tokenizer),
        cmocka_unit_test(test_llama3_fit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
