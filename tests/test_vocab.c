/*
 * tests/test_vocab.c - convert/vocab.h: tokenizer folders as tokenizer.ggml.*.
 *
 * Golden: fixtures/stories260K (tokenizer.model, tokenizer_config.json,
 * special_tokens_map.json, config.json, generation_config.json) must give
 * exactly the tokenizer keys llama.cpp b4747's converter wrote into
 * fixtures/gguf/stories260K-f16.gguf: same keys, order, types and encoded
 * values (every token, score and type).
 *
 * The small folders of fixtures/tokenizers/ (made by make-fixtures.py) pin
 * each path of the converter: byte-level BPE with added tokens and merge
 * pairs, merges.txt, a converted SentencePiece tokenizer.json, a
 * tokenizer.model with added tokens. fixtures/tokenizers/corrupt/ must each
 * fail with the code and message corrupt.tsv gives, naming the file.
 *
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".".
 */
#include "tests/testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "convert/vocab.h"
#include "convert/vocab_impl.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"

static char dir[256];
static char root[1024];

static void fixture(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return tu_mkdtemp(dir, sizeof dir, "vocab");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

/* =====================================================================
 * Helpers
 * ===================================================================== */

/* Load a folder (relative to the repository) and fail the test on error. */
static qf_vocab *load_ok(const char *rel, uint64_t n_vocab)
{
    char path[1400];
    qf_vocab *v = NULL;
    qf_err e = { 0 };
    int rc;

    fixture(path, sizeof path, rel);
    rc = qf_vocab_load(path, n_vocab, &v, &e);
    if (rc)
        fail_msg("%s: rc %d: %s", rel, rc, e.msg);
    assert_non_null(v);
    return v;
}

/* Write the vocab's keys into an empty GGUF, save it as dir/<name>, open it. */
static qf_gguf *to_gguf(const qf_vocab *v, const char *name)
{
    char path[400];
    qf_gguf_writer *w = NULL;
    qf_gguf *g = NULL;
    qf_err e = { 0 };

    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(qf_gguf_writer_new(&w, &e), 0);
    if (qf_vocab_write_gguf(v, w, &e) != 0)
        fail_msg("write_gguf: %s", e.msg);
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, &e), 0);
    assert_int_equal(qf_gguf_writer_finish(w, &e), 0);
    qf_gguf_writer_free(w);
    if (qf_gguf_open(path, &g, &e) != 0)
        fail_msg("reopen %s: %s", path, e.msg);
    return g;
}

/* The keys of g, one per line, for an order check. */
static void keys_of(const qf_gguf *g, char *out, size_t cap)
{
    int64_t i;
    size_t o = 0;

    out[0] = '\0';
    for (i = 0; i < qf_gguf_kv_count(g) && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s\n", qf_gguf_kv_key(g, i));
}

/* Element k of array key. */
static qf_gguf_val elem(const qf_gguf *g, const char *key, uint64_t k)
{
    qf_gguf_val v, e;
    qf_gguf_iter it;
    int64_t i = qf_gguf_find_key(g, key);
    uint64_t j;

    if (i < 0)
        fail_msg("no key %s", key);
    qf_gguf_kv_value(g, i, &v);
    assert_int_equal(v.type, QF_GGUF_ARRAY);
    if (k >= v.arr_n)
        fail_msg("%s has %" PRIu64 " elements, not %" PRIu64, key, v.arr_n, k + 1);
    qf_gguf_iter_init(&it, &v);
    for (j = 0; j <= k; j++)
        assert_int_equal(qf_gguf_iter_next(&it, &e), 1);
    return e;
}

static uint64_t arr_n(const qf_gguf *g, const char *key)
{
    qf_gguf_val v;
    int64_t i = qf_gguf_find_key(g, key);

    if (i < 0)
        fail_msg("no key %s", key);
    qf_gguf_kv_value(g, i, &v);
    assert_int_equal(v.type, QF_GGUF_ARRAY);
    return v.arr_n;
}

/* Token k's text, type and (if scores are present) score. */
static void check_tok(const qf_gguf *g, uint64_t k, const char *text, int type, double score)
{
    qf_gguf_val t = elem(g, "tokenizer.ggml.tokens", k);
    qf_gguf_val ty = elem(g, "tokenizer.ggml.token_type", k);

    if (t.str_len != strlen(text) || memcmp(t.str, text, strlen(text)) != 0)
        fail_msg("token %" PRIu64 ": \"%.*s\", expected \"%s\"", k, (int)t.str_len, t.str, text);
    if (ty.i != type)
        fail_msg("token %" PRIu64 " \"%s\": type %" PRId64 ", expected %d", k, text, ty.i, type);
    if (qf_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        qf_gguf_val s = elem(g, "tokenizer.ggml.scores", k);
        if (s.f != score)
            fail_msg("token %" PRIu64 " \"%s\": score %g, expected %g", k, text, s.f, score);
    }
}

static void check_str_elem(const qf_gguf *g, const char *key, uint64_t k, const char *want)
{
    qf_gguf_val e = elem(g, key, k);
    if (e.str_len != strlen(want) || memcmp(e.str, want, strlen(want)) != 0)
        fail_msg("%s[%" PRIu64 "]: \"%.*s\", expected \"%s\"", key, k, (int)e.str_len, e.str, want);
}

static void check_uint(const qf_gguf *g, const char *key, uint64_t want)
{
    uint64_t v = 0;
    qf_err e = { 0 };
    int64_t i = qf_gguf_find_key(g, key);

    if (i < 0)
        fail_msg("no key %s", key);
    assert_int_equal(qf_gguf_kv_type(g, i), QF_GGUF_UINT32);
    assert_int_equal(qf_gguf_get_uint(g, key, &v, &e), 0);
    if (v != want)
        fail_msg("%s = %" PRIu64 ", expected %" PRIu64, key, v, want);
}

static void check_bool(const qf_gguf *g, const char *key, int want)
{
    int v = -1;
    qf_err e = { 0 };

    if (qf_gguf_get_bool(g, key, &v, &e) != 0)
        fail_msg("%s: %s", key, e.msg[0] ? e.msg : "absent");
    assert_int_equal(v, want);
}

static void check_str(const qf_gguf *g, const char *key, const char *want)
{
    const char *s = NULL;
    uint64_t len = 0;
    qf_err e = { 0 };

    if (qf_gguf_get_str(g, key, &s, &len, &e) != 0)
        fail_msg("%s: %s", key, e.msg[0] ? e.msg : "absent");
    if (len != strlen(want) || memcmp(s, want, (size_t)len) != 0)
        fail_msg("%s = \"%.*s\", expected \"%s\"", key, (int)len, s, want);
}

/* =====================================================================
 * SentencePiece
 * ===================================================================== */

/* Our keys for fixtures/stories260K equal llama.cpp's, byte for byte. */
static void test_stories_golden(void **state)
{
    char golden[1400], ka[4096];
    qf_vocab *v = load_ok("fixtures/stories260K", 512);
    qf_gguf *a = to_gguf(v, "stories.gguf"), *b = NULL;
    qf_err e = { 0 };
    int64_t i, j = 0, n = 0;
    (void)state;

    assert_string_equal(qf_vocab_model(v), "llama");
    assert_int_equal(qf_vocab_size(v), 512);
    fixture(golden, sizeof golden, "fixtures/gguf/stories260K-f16.gguf");
    assert_int_equal(qf_gguf_open(golden, &b, &e), 0);
    /* every tokenizer key of the golden file, in order, with equal bytes */
    for (i = 0; i < qf_gguf_kv_count(b); i++) {
        const char *k = qf_gguf_kv_key(b, i);
        qf_gguf_val va, vb;
        if (strncmp(k, "tokenizer.", 10) != 0)
            continue;
        if (j >= qf_gguf_kv_count(a))
            fail_msg("golden key %s is missing from ours", k);
        assert_string_equal(qf_gguf_kv_key(a, j), k);
        qf_gguf_kv_value(a, j, &va);
        qf_gguf_kv_value(b, i, &vb);
        assert_int_equal(va.type, vb.type);
        if (va.raw_len != vb.raw_len || memcmp(va.raw, vb.raw, (size_t)va.raw_len) != 0)
            fail_msg("%s differs from the golden file", k);
        j++;
        n++;
    }
    assert_int_equal(n, 9);
    assert_int_equal(qf_gguf_kv_count(a), n); /* and nothing else */
    keys_of(a, ka, sizeof ka);
    assert_string_equal(ka, "tokenizer.ggml.model\ntokenizer.ggml.pre\ntokenizer.ggml.tokens\n"
                            "tokenizer.ggml.scores\ntokenizer.ggml.token_type\n"
                            "tokenizer.ggml.bos_token_id\ntokenizer.ggml.eos_token_id\n"
                            "tokenizer.ggml.add_bos_token\ntokenizer.ggml.add_eos_token\n");
    /* and element by element, for readable failures */
    for (i = 0; i < 512; i++) {
        qf_gguf_val ta = elem(a, "tokenizer.ggml.tokens", (uint64_t)i);
        qf_gguf_val tb = elem(b, "tokenizer.ggml.tokens", (uint64_t)i);
        assert_int_equal(ta.str_len, tb.str_len);
        assert_memory_equal(ta.str, tb.str, (size_t)ta.str_len);
        assert_true(elem(a, "tokenizer.ggml.scores", (uint64_t)i).f ==
                    elem(b, "tokenizer.ggml.scores", (uint64_t)i).f);
        assert_int_equal(elem(a, "tokenizer.ggml.token_type", (uint64_t)i).i,
                         elem(b, "tokenizer.ggml.token_type", (uint64_t)i).i);
    }
    check_tok(a, 0, "<unk>", QF_TOK_UNKNOWN, 0.0);
    check_tok(a, 1, "<s>", QF_TOK_CONTROL, 0.0);
    check_tok(a, 2, "</s>", QF_TOK_CONTROL, 0.0);
    check_tok(a, 3, "<0x00>", QF_TOK_BYTE, 0.0);
    check_str(a, "tokenizer.ggml.pre", "default");
    check_uint(a, "tokenizer.ggml.bos_token_id", 1);
    check_bool(a, "tokenizer.ggml.add_bos_token", 1);
    qf_gguf_close(a);
    qf_gguf_close(b);
    qf_vocab_free(v);
}

/* config.json's vocab_size above the piece count: [PAD<i>], -10000, UNUSED. */
static void test_spm_padding(void **state)
{
    qf_vocab *v = load_ok("fixtures/stories260K", 520);
    qf_gguf *g = to_gguf(v, "pad.gguf");
    (void)state;

    assert_int_equal(qf_vocab_size(v), 520);
    assert_int_equal(arr_n(g, "tokenizer.ggml.scores"), 520);
    assert_int_equal(elem(g, "tokenizer.ggml.token_type", 511).i, QF_TOK_NORMAL); /* a piece */
    check_tok(g, 512, "[PAD512]", QF_TOK_UNUSED, -10000.0);
    check_tok(g, 519, "[PAD519]", QF_TOK_UNUSED, -10000.0);
    qf_gguf_close(g);
    qf_vocab_free(v);
}

static void test_spm_vocab_too_small(void **state)
{
    char path[1400];
    qf_vocab *v = (qf_vocab *)1;
    qf_err e = { 0 };
    (void)state;

    fixture(path, sizeof path, "fixtures/stories260K");
    assert_int_equal(qf_vocab_load(path, 100, &v, &e), QF_EFORMAT);
    assert_null(v);
    assert_non_null(strstr(e.msg, "stories260K/tokenizer.model: 512 pieces, more than the "
                                  "model's vocab_size 100"));
}

/* added_tokens.json and added_tokens_decoder over stories260K's pieces. */
static void test_spm_added(void **state)
{
    qf_vocab *v = load_ok("fixtures/tokenizers/spm-added", 514);
    qf_gguf *g = to_gguf(v, "spm-added.gguf");
    char keys[2048];
    (void)state;

    check_tok(g, 3, "\xE2\x96\x81hi", QF_TOK_USER_DEFINED, -1000.0); /* added_tokens.json: as is */
    check_tok(g, 5, " x y", QF_TOK_USER_DEFINED, -1000.0);          /* decoder: U+2581 -> ' ' */
    check_tok(g, 6, "<|sep|>", QF_TOK_CONTROL, -1000.0);            /* looks special */
    check_tok(g, 512, "<extra_0>", QF_TOK_USER_DEFINED, -1000.0);
    check_tok(g, 513, "<pad>", QF_TOK_CONTROL, -1000.0);
    check_tok(g, 4, "<0x01>", QF_TOK_BYTE, 0.0); /* untouched piece */
    /* no tokenizer.json: ids come from config.json only; 513 < 514 is kept */
    check_uint(g, "tokenizer.ggml.bos_token_id", 1);
    check_uint(g, "tokenizer.ggml.eos_token_id", 2);
    check_uint(g, "tokenizer.ggml.padding_token_id", 513);
    keys_of(g, keys, sizeof keys);
    assert_null(strstr(keys, "unknown_token_id"));
    assert_null(strstr(keys, "add_bos_token")); /* tokenizer_config.json has no flags */
    qf_gguf_close(g);
    qf_vocab_free(v);
}

/* Every prefix and many one-byte changes of a real tokenizer.model: a clean
 * result or a clean error, never a crash (ASan checks the reads). */
static void test_spm_hostile_bytes(void **state)
{
    char path[1400];
    qf_map *m = NULL;
    const uint8_t *data;
    uint8_t *copy;
    uint64_t size, k, n;
    qf_spm_piece *p;
    qf_err e;
    int rc;
    (void)state;

    fixture(path, sizeof path, "fixtures/stories260K/tokenizer.model");
    assert_int_equal(qf_map_open(path, &m, NULL), 0);
    data = qf_map_data(m);
    size = qf_map_size(m);
    for (k = 0; k < size; k++) {
        copy = malloc(k ? k : 1);
        memcpy(copy, data, k);
        memset(&e, 0, sizeof e);
        p = NULL;
        rc = qf_vocab_spm_parse(copy, k, "t.model", &p, &n, &e);
        if (rc) {
            assert_true(rc == QF_ETRUNC || rc == QF_EFORMAT || rc == QF_ELIMIT);
            assert_non_null(strstr(e.msg, "t.model"));
            assert_null(p);
        } else {
            assert_true(n >= 1);
            free(p);
        }
        free(copy);
    }
    copy = malloc(size);
    for (k = 0; k < size; k += 3) {
        static const uint8_t vals[] = { 0x00, 0x0a, 0x3b, 0x7f, 0x80, 0xff };
        size_t j;
        for (j = 0; j < sizeof vals; j++) {
            memcpy(copy, data, size);
            copy[k] = vals[j];
            memset(&e, 0, sizeof e);
            p = NULL;
            if (qf_vocab_spm_parse(copy, size, "t.model", &p, &n, &e) == 0)
                free(p);
            else
                assert_non_null(strstr(e.msg, "t.model"));
        }
    }
    free(copy);
    rc = qf_vocab_spm_parse(data, size, "t.model", &p, &n, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 512);
    assert_int_equal(p[0].type, 2);
    assert_int_equal(p[0].len, 5);
    assert_memory_equal(p[0].s, "<unk>", 5);
    free(p);
    qf_map_close(m);
}

/* =====================================================================
 * tokenizer.json
 * ===================================================================== */

static void test_bpe_tiny(void **state)
{
    qf_vocab *v = load_ok("fixtures/tokenizers/bpe-tiny", 0);
    qf_gguf *g = to_gguf(v, "bpe-tiny.gguf");
    char keys[2048];
    (void)state;

    assert_string_equal(qf_vocab_model(v), "gpt2");
    assert_int_equal(qf_vocab_size(v), 15);
    keys_of(g, keys, sizeof keys);
    /* no scores for gpt2; ids in the order found: tokenizer_config.json
     * (bos, eos, pad via added_tokens), then config.json (unk) */
    assert_string_equal(keys, "tokenizer.ggml.model\ntokenizer.ggml.pre\ntokenizer.ggml.tokens\n"
                              "tokenizer.ggml.token_type\ntokenizer.ggml.merges\n"
                              "tokenizer.ggml.bos_token_id\ntokenizer.ggml.eos_token_id\n"
                              "tokenizer.ggml.padding_token_id\ntokenizer.ggml.unknown_token_id\n"
                              "tokenizer.ggml.add_bos_token\ntokenizer.ggml.add_eos_token\n"
                              "tokenizer.chat_template\n");
    check_str(g, "tokenizer.ggml.model", "gpt2");
    check_str(g, "tokenizer.ggml.pre", "gpt-2");
    check_tok(g, 0, "<|endoftext|>", QF_TOK_CONTROL, 0);
    check_tok(g, 1, "a", QF_TOK_NORMAL, 0);
    check_tok(g, 4, "\xC4\xA0", QF_TOK_NORMAL, 0);
    check_tok(g, 12, "<|im_start|>", QF_TOK_CONTROL, 0);
    check_tok(g, 13, " user name", QF_TOK_USER_DEFINED, 0); /* U+2581 -> ' ' */
    check_tok(g, 14, "<think>", QF_TOK_CONTROL, 0);       /* special per tokenizer_config */
    assert_int_equal(arr_n(g, "tokenizer.ggml.merges"), 5);
    check_str_elem(g, "tokenizer.ggml.merges", 0, "a b");
    check_str_elem(g, "tokenizer.ggml.merges", 2, "\xC4\xA0 a");
    check_str_elem(g, "tokenizer.ggml.merges", 4, "x\xC4\xA0y z"); /* space in a pair -> U+0120 */
    check_uint(g, "tokenizer.ggml.bos_token_id", 0);
    check_uint(g, "tokenizer.ggml.eos_token_id", 12);   /* config.json's 99 loses */
    check_uint(g, "tokenizer.ggml.padding_token_id", 14);
    check_uint(g, "tokenizer.ggml.unknown_token_id", 3); /* only config.json has it */
    check_bool(g, "tokenizer.ggml.add_bos_token", 0);
    check_bool(g, "tokenizer.ggml.add_eos_token", 1);
    check_str(g, "tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    qf_gguf_close(g);
    qf_vocab_free(v);
}

/* With config.json's vocab_size larger: ids without a token are padded. */
static void test_bpe_padded(void **state)
{
    qf_vocab *v = load_ok("fixtures/tokenizers/bpe-tiny", 20);
    qf_gguf *g = to_gguf(v, "bpe-pad.gguf");
    (void)state;

    assert_int_equal(qf_vocab_size(v), 20);
    check_tok(g, 14, "<think>", QF_TOK_CONTROL, 0);
    check_tok(g, 15, "[PAD15]", QF_TOK_UNUSED, 0);
    check_tok(g, 19, "[PAD19]", QF_TOK_UNUSED, 0);
    qf_gguf_close(g);
    qf_vocab_free(v);
}

static void test_bpe_merges_txt(void **state)
{
    qf_vocab *v = load_ok("fixtures/tokenizers/bpe-merges-txt", 0);
    qf_gguf *g = to_gguf(v, "bpe-merges.gguf");
    char keys[2048];
    (void)state;

    check_str(g, "tokenizer.ggml.pre", "smollm"); /* Digits(individual) + ByteLevel */
    assert_int_equal(arr_n(g, "tokenizer.ggml.merges"), 3);
    check_str_elem(g, "tokenizer.ggml.merges", 0, "a b");
    check_str_elem(g, "tokenizer.ggml.merges", 1, "ab c");
    check_str_elem(g, "tokenizer.ggml.merges", 2, "\xC4\xA0 a");
    keys_of(g, keys, sizeof keys);
    assert_null(strstr(keys, "_token_id")); /* no config files at all */
    assert_null(strstr(keys, "chat_template"));
    qf_gguf_close(g);
    qf_vocab_free(v);
}

/* A SentencePiece model converted to tokenizer.json: _set_vocab_llama_hf. */
static void test_llama_hf(void **state)
{
    qf_vocab *v = load_ok("fixtures/tokenizers/spm-hf", 0);
    qf_gguf *g = to_gguf(v, "spm-hf.gguf");
    char keys[2048];
    (void)state;

    assert_string_equal(qf_vocab_model(v), "llama");
    assert_int_equal(qf_vocab_size(v), 13);
    check_str(g, "tokenizer.ggml.pre", "default");
    check_tok(g, 0, "<unk>", QF_TOK_CONTROL, -1000); /* special, not UNKNOWN, on this path */
    check_tok(g, 1, "<s>", QF_TOK_CONTROL, -1000);
    check_tok(g, 3, "<0x00>", QF_TOK_BYTE, -1000);
    check_tok(g, 5, "<0xfF>", QF_TOK_BYTE, -1000);
    check_tok(g, 6, "\xE2\x96\x81", QF_TOK_NORMAL, -1000);
    check_tok(g, 9, "<0x1G>", QF_TOK_NORMAL, -1000);
    check_tok(g, 10, "<|user|>", QF_TOK_USER_DEFINED, -1000); /* special flag alone: no */
    check_tok(g, 11, "<extra>", QF_TOK_USER_DEFINED, -1000);
    check_tok(g, 12, "<tool>", QF_TOK_CONTROL, -1000); /* additional_special_tokens */
    keys_of(g, keys, sizeof keys);
    assert_null(strstr(keys, "merges"));
    assert_null(strstr(keys, "padding_token_id")); /* config.json's 600 >= 13: skipped */
    assert_string_equal(keys, "tokenizer.ggml.model\ntokenizer.ggml.pre\ntokenizer.ggml.tokens\n"
                              "tokenizer.ggml.scores\ntokenizer.ggml.token_type\n"
                              "tokenizer.ggml.bos_token_id\ntokenizer.ggml.eos_token_id\n"
                              "tokenizer.ggml.unknown_token_id\n"
                              "tokenizer.ggml.seperator_token_id\n"
                              "tokenizer.ggml.add_bos_token\ntokenizer.ggml.add_eos_token\n"
                              "tokenizer.chat_template.tool_use\ntokenizer.chat_template.rag\n"
                              "tokenizer.chat_templates\ntokenizer.chat_template\n");
    check_uint(g, "tokenizer.ggml.bos_token_id", 1);
    check_uint(g, "tokenizer.ggml.eos_token_id", 2);
    check_uint(g, "tokenizer.ggml.unknown_token_id", 0);
    check_uint(g, "tokenizer.ggml.seperator_token_id", 11);
    check_bool(g, "tokenizer.ggml.add_bos_token", 1);
    check_bool(g, "tokenizer.ggml.add_eos_token", 0);
    check_str(g, "tokenizer.chat_template.tool_use", "T");
    check_str(g, "tokenizer.chat_template.rag", "R");
    check_str_elem(g, "tokenizer.chat_templates", 0, "tool_use");
    check_str_elem(g, "tokenizer.chat_templates", 1, "rag");
    check_str(g, "tokenizer.chat_template", "D");
    qf_gguf_close(g);
    qf_vocab_free(v);

    v = load_ok("fixtures/tokenizers/spm-hf", 16);
    g = to_gguf(v, "spm-hf-16.gguf");
    check_tok(g, 15, "[PAD15]", QF_TOK_UNUSED, -1000);
    qf_gguf_close(g);
    qf_vocab_free(v);
}

/* A tokenizer.json in dir/<name>/ with the given pre_tokenizer and
 * normalizer (JSON texts); returns the load's code and fills pre / msg. */
static int try_pre(const char *name, const char *pre_json, const char *norm_json,
                   int ignore_merges, char *pre, size_t cap, qf_err *e)
{
    char d[400], p[500];
    cJSON *tj = cJSON_CreateObject(), *model = cJSON_CreateObject(), *voc = cJSON_CreateObject();
    char *text;
    qf_vocab *v = NULL;
    int rc;

    snprintf(d, sizeof d, "%s/%s", dir, name);
    mkdir(d, 0755);
    cJSON_AddItemToObject(voc, "a", cJSON_CreateNumber(0));
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", voc);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateArray());
    cJSON_AddBoolToObject(model, "ignore_merges", ignore_merges);
    cJSON_AddItemToObject(tj, "model", model);
    cJSON_AddItemToObject(tj, "pre_tokenizer", cJSON_Parse(pre_json));
    cJSON_AddItemToObject(tj, "normalizer", norm_json ? cJSON_Parse(norm_json) : cJSON_CreateNull());
    text = cJSON_Print(tj);
    snprintf(p, sizeof p, "%s/tokenizer.json", d);
    tu_write_text(p, text);
    free(text);
    cJSON_Delete(tj);
    memset(e, 0, sizeof *e);
    rc = qf_vocab_load(d, 0, &v, e);
    pre[0] = '\0';
    if (!rc) {
        qf_gguf *g = to_gguf(v, "pre.gguf");
        const char *s;
        uint64_t len;
        assert_int_equal(qf_gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, NULL), 0);
        snprintf(pre, cap, "%.*s", (int)len, s);
        qf_gguf_close(g);
    }
    qf_vocab_free(v);
    return rc;
}

/* A Split step as JSON, from the regex as tokenizer.json holds it (decoded). */
static char *split_json(const char *regex)
{
    cJSON *o = cJSON_CreateObject(), *pat = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(o, "type", "Split");
    cJSON_AddStringToObject(pat, "Regex", regex);
    cJSON_AddItemToObject(o, "pattern", pat);
    cJSON_AddStringToObject(o, "behavior", "Isolated");
    cJSON_AddBoolToObject(o, "invert", 0);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

#define BL_NOREGEX                                                                                 \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}"
#define BL_REGEX                                                                                   \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"

static void expect_pre(const char *name, const char *const *splits, int n_splits,
                       const char *tail, const char *norm, int ignore_merges, const char *want)
{
    char json[8192], pre[64];
    size_t o;
    int i;
    qf_err e;

    o = (size_t)snprintf(json, sizeof json, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    for (i = 0; i < n_splits; i++) {
        char *s = split_json(splits[i]);
        o += (size_t)snprintf(json + o, sizeof json - o, "%s%s", i ? "," : "", s);
        free(s);
    }
    snprintf(json + o, sizeof json - o, "%s%s]}", n_splits ? "," : "", tail);
    if (try_pre(name, json, norm, ignore_merges, pre, sizeof pre, &e) != 0)
        fail_msg("%s: %s", name, e.msg);
    if (strcmp(pre, want) != 0)
        fail_msg("%s: pre \"%s\", expected \"%s\"", name, pre, want);
}

static void test_pre_table(void **state)
{
    static const char *const llama3[] = {
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" };
    static const char *const qwen2[] = {
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" };
    /* raw CR/LF and the \r \n escapes are the same regex */
    static const char *const coder[] = { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
                                         "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}" };
    static const char *const coder2[] = { "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
                                          "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}" };
    static const char *const v3[] = {
        "\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
        "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" };
    static const char *const dsllm[] = {
        "[\r\n]", "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "\\s+$",
        "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}+" };
    char pre[64], json[1024];
    qf_err e;
    (void)state;

    expect_pre("gpt2", NULL, 0, BL_REGEX, NULL, 0, "gpt-2");
    expect_pre("gpt2-seq-nfc", NULL, 0, BL_REGEX, "{\"type\":\"NFC\"}", 0, "gpt-2");
    expect_pre("smollm", NULL, 0, "{\"type\":\"Digits\",\"individual_digits\":true}," BL_REGEX,
               NULL, 0, "smollm");
    expect_pre("llama3", llama3, 1, BL_NOREGEX, NULL, 1, "llama-bpe");
    expect_pre("llama3-merges", llama3, 1, BL_NOREGEX, NULL, 0, "smaug-bpe");
    expect_pre("qwen2", qwen2, 1, BL_NOREGEX, "{\"type\":\"NFC\"}", 0, "qwen2");
    expect_pre("ds-coder", coder, 5, BL_NOREGEX, NULL, 0, "deepseek-coder");
    expect_pre("ds-coder2", coder2, 5, BL_NOREGEX,
               "{\"type\":\"Sequence\",\"normalizers\":[]}", 0, "deepseek-coder");
    expect_pre("ds-v3", v3, 3, BL_NOREGEX, NULL, 0, "deepseek-v3");
    expect_pre("ds-llm", dsllm, 6, BL_NOREGEX, NULL, 0, "deepseek-llm");
    expect_pre("falcon", NULL, 0,
               "{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"}," BL_REGEX
               ",{\"type\":\"Digits\",\"individual_digits\":false},"
               "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[0-9][0-9][0-9]\"},"
               "\"behavior\":\"Isolated\",\"invert\":false}",
               NULL, 0, "falcon");
    /* use_regex absent means true */
    assert_int_equal(try_pre("bl-default", "{\"type\":\"ByteLevel\"}", NULL, 0, pre, sizeof pre,
                             &e), 0);
    assert_string_equal(pre, "gpt-2");
    /* the same regex with another behavior, or as a String, is not the same */
    snprintf(json, sizeof json, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
             "\"pattern\":{\"Regex\":\"\\\\p{N}\"},\"behavior\":\"Removed\",\"invert\":false},"
             BL_NOREGEX "]}");
    assert_int_equal(try_pre("removed", json, NULL, 0, pre, sizeof pre, &e), QF_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "\"Split(Removed):\\p{N}\""));
    assert_int_equal(try_pre("metaspace", "{\"type\":\"Metaspace\",\"replacement\":\"x\"}", NULL,
                             0, pre, sizeof pre, &e), QF_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "pre_tokenizer [\"Metaspace\"] matches no llama.cpp"));
    assert_non_null(strstr(e.msg, "/metaspace/tokenizer.json: "));
    assert_int_equal(try_pre("notype", "{\"use_regex\":true}", NULL, 0, pre, sizeof pre, &e),
                     QF_EFORMAT);
    assert_non_null(strstr(e.msg, "an entry has no \"type\""));
}

/* add_bos/add_eos from tokenizer.json's post_processor when
 * tokenizer_config.json does not give them; its flags win when it does. */
static void test_post_processor(void **state)
{
    char d[400], p[500];
    const char *tj =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"<B>\":1,\"<E>\":2},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
        "\"added_tokens\":[{\"id\":1,\"content\":\"<B>\",\"special\":true},"
        "{\"id\":2,\"content\":\"<E>\",\"special\":true}],"
        "\"post_processor\":{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\"},"
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<B>\"}},"
        "{\"Sequence\":{\"id\":\"A\"}},{\"SpecialToken\":{\"id\":\"<E>\"}}]}]}}";
    qf_vocab *v = NULL;
    qf_gguf *g;
    qf_err e = { 0 };
    char keys[2048];
    (void)state;

    snprintf(d, sizeof d, "%s/post", dir);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/tokenizer.json", d);
    tu_write_text(p, tj);
    assert_int_equal(qf_vocab_load(d, 0, &v, &e), 0);
    g = to_gguf(v, "post.gguf");
    check_bool(g, "tokenizer.ggml.add_bos_token", 1);
    check_bool(g, "tokenizer.ggml.add_eos_token", 1);
    keys_of(g, keys, sizeof keys);
    assert_null(strstr(keys, "bos_token_id")); /* ids need tokenizer_config.json */
    qf_gguf_close(g);
    qf_vocab_free(v);
    v = NULL;

    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    tu_write_text(p, "{\"bos_token\":\"<B>\",\"eos_token\":\"</E>\",\"add_bos_token\":false}");
    assert_int_equal(qf_vocab_load(d, 0, &v, &e), 0);
    g = to_gguf(v, "post2.gguf");
    check_bool(g, "tokenizer.ggml.add_bos_token", 0); /* tokenizer_config.json wins */
    check_bool(g, "tokenizer.ggml.add_eos_token", 0); /* <E> is not its eos_token */
    check_uint(g, "tokenizer.ggml.bos_token_id", 1);
    qf_gguf_close(g);
    qf_vocab_free(v);
}

/* =====================================================================
 * Errors
 * ===================================================================== */

static int code_of(const char *name)
{
    static const struct { const char *n; int c; } codes[] = {
        { "EFORMAT", QF_EFORMAT }, { "ETRUNC", QF_ETRUNC }, { "ELIMIT", QF_ELIMIT },
        { "EUNSUPPORTED", QF_EUNSUPPORTED }, { "ENOTFOUND", QF_ENOTFOUND }, { "EIO", QF_EIO },
    };
    size_t k;

    for (k = 0; k < sizeof codes / sizeof codes[0]; k++)
        if (strcmp(codes[k].n, name) == 0)
            return codes[k].c;
    fail_msg("unknown code name %s", name);
    return 0;
}

static void test_corrupt_fixtures(void **state)
{
    char tsv[1400], line[256], path[2400], cdir[1400], want_dir[300];
    FILE *f;
    int rows = 0, dirs = 0;
    DIR *d;
    struct dirent *de;
    (void)state;

    fixture(tsv, sizeof tsv, "fixtures/tokenizers/corrupt/corrupt.tsv");
    f = fopen(tsv, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char *name = line, *nv, *code, *sub, *nl;
        qf_vocab *v = (qf_vocab *)1;
        qf_err e = { 0 };
        int rc, want;

        if ((nl = strchr(line, '\n')))
            *nl = '\0';
        nv = strchr(name, '\t');
        code = nv ? strchr(nv + 1, '\t') : NULL;
        sub = code ? strchr(code + 1, '\t') : NULL;
        if (!sub)
            fail_msg("bad corrupt.tsv line: %s", line);
        *nv++ = *code++ = *sub++ = '\0';
        want = code_of(code);
        snprintf(path, sizeof path, "%s/fixtures/tokenizers/corrupt/%s", root, name);
        rc = qf_vocab_load(path, strtoull(nv, NULL, 10), &v, &e);
        snprintf(want_dir, sizeof want_dir, "corrupt/%s/", name);
        if (rc != want || !strstr(e.msg, sub) || !strstr(e.msg, want_dir))
            fail_msg("%s: rc %d (%s), expected %d with \"%s\"", name, rc, e.msg, want, sub);
        assert_null(v);
        assert_int_equal(e.code, want);
        assert_null(strchr(e.msg, '\n'));
        rows++;
    }
    fclose(f);
    assert_true(rows >= 30);
    fixture(cdir, sizeof cdir, "fixtures/tokenizers/corrupt");
    d = opendir(cdir);
    assert_non_null(d);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && !strchr(de->d_name, '.'))
            dirs++;
    closedir(d);
    assert_int_equal(dirs, rows); /* every folder is listed */
}

static void test_not_found(void **state)
{
    char d[400], p[500];
    qf_vocab *v = (qf_vocab *)1;
    qf_err e = { 0 };
    (void)state;

    snprintf(d, sizeof d, "%s/empty", dir);
    mkdir(d, 0755);
    assert_int_equal(qf_vocab_load(d, 0, &v, &e), QF_ENOTFOUND);
    assert_null(v);
    assert_non_null(strstr(e.msg, "/empty: no tokenizer.model or tokenizer.json"));
    /* a slow tokenizer alone (vocab.json + merges.txt) is not read */
    snprintf(p, sizeof p, "%s/vocab.json", d);
    tu_write_text(p, "{\"a\": 0}");
    memset(&e, 0, sizeof e);
    assert_int_equal(qf_vocab_load(d, 0, &v, &e), QF_ENOTFOUND);
    /* a folder that does not exist */
    memset(&e, 0, sizeof e);
    snprintf(d, sizeof d, "%s/no-such-folder", dir);
    assert_int_equal(qf_vocab_load(d, 0, &v, &e), QF_ENOTFOUND);
    /* a tokenizer.model that is a folder does not count (Path.is_file) */
    snprintf(d, sizeof d, "%s/dirmodel", dir);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/tokenizer.model", d);
    mkdir(p, 0755);
    assert_int_equal(qf_vocab_load(d, 0, &v, NULL), QF_ENOTFOUND);
}

static void test_args(void **state)
{
    qf_vocab *v = (qf_vocab *)1;
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };
    (void)state;

    qf_vocab_free(NULL);
    assert_int_equal(qf_vocab_size(NULL), 0);
    assert_null(qf_vocab_model(NULL));
    assert_int_equal(qf_vocab_load(NULL, 0, &v, &e), QF_EINVAL);
    assert_null(v);
    assert_int_equal(qf_vocab_load(".", 0, NULL, NULL), QF_EINVAL);
    assert_int_equal(qf_vocab_load(".", (uint64_t)1 << 40, &v, &e), QF_ELIMIT);
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_vocab_write_gguf(NULL, w, NULL), QF_EINVAL);
    qf_gguf_writer_free(w);
}

/* Keys already in the writer stay first; the vocab's follow in order. */
static void test_append_to_writer(void **state)
{
    char path[400];
    qf_vocab *v = load_ok("fixtures/stories260K", 512);
    qf_gguf_writer *w = NULL;
    qf_gguf *g = NULL;
    (void)state;

    snprintf(path, sizeof path, "%s/append.gguf", dir);
    assert_int_equal(qf_gguf_writer_new(&w, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "general.architecture", "llama", NULL), 0);
    assert_int_equal(qf_vocab_write_gguf(v, w, NULL), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "general.quantization_version", 2, NULL), 0);
    assert_int_equal(qf_gguf_writer_begin(w, path, QF_OUT_FORCE, NULL), 0);
    assert_int_equal(qf_gguf_writer_finish(w, NULL), 0);
    assert_int_equal(qf_gguf_open(path, &g, NULL), 0);
    assert_int_equal(qf_gguf_kv_count(g), 11);
    assert_string_equal(qf_gguf_kv_key(g, 0), "general.architecture");
    assert_string_equal(qf_gguf_kv_key(g, 1), "tokenizer.ggml.model");
    assert_string_equal(qf_gguf_kv_key(g, 10), "general.quantization_version");
    qf_gguf_close(g);
    qf_gguf_writer_free(w);
    qf_vocab_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_golden),
        cmocka_unit_test(test_spm_padding),
        cmocka_unit_test(test_spm_vocab_too_small),
        cmocka_unit_test(test_spm_added),
        cmocka_unit_test(test_spm_hostile_bytes),
        cmocka_unit_test(test_bpe_tiny),
        cmocka_unit_test(test_bpe_padded),
        cmocka_unit_test(test_bpe_merges_txt),
        cmocka_unit_test(test_llama_hf),
        cmocka_unit_test(test_pre_table),
        cmocka_unit_test(test_post_processor),
        cmocka_unit_test(test_corrupt_fixtures),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_append_to_writer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
