/*
 * tests/test_tokenizer.c - verify/tokenizer.h: text <-> ids as llama.cpp.
 *
 * Golden: fixtures/gguf/stories260K-f16.gguf (llama.cpp's converter output)
 * must tokenize every line of fixtures/tokenizers/llama-tokenize/corpus.txt,
 * and the whole file, to the ids llama.cpp b4747's llama-tokenize printed
 * (the *.ids.json beside it: with BOS, without, without parsing special
 * tokens). ../shared is not needed; tests/golden/tokenizer.py covers the
 * other oracles.
 *
 * The rest pins the pieces: Unicode classes (UCD 15.1 as llama.cpp), UTF-8
 * decoding with its error rule, the GPT-2 byte map, the regex matcher's
 * ECMAScript semantics, the hand-written GPT-2/LLaMA-3 splitters against the
 * matcher on the same regexes, byte-level BPE and the other pre-tokenizers
 * on small vocabularies built in memory, special-token partition, decode,
 * and the errors of bad metadata.
 *
 * Fixtures are found under $QF_ROOT (set by tests/run.sh), else ".".
 */
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats/error.h"
#include "formats/file.h"
#include "formats/gguf.h"
#include "verify/tokenizer.h"
#include "verify/tokenizer_impl.h"

static char root[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "%s", tu_root());
    return 0;
}

/* =====================================================================
 * Helpers
 * ===================================================================== */

/* A file of the source tree, whole (owned by the caller: free). */
static char *slurp(const char *rel, size_t *len) { return tu_read_file(tu_fixture(rel), len); }

static qf_tokenizer *stories(void)
{
    char path[1400];
    qf_gguf *g = NULL;
    qf_tokenizer *t = NULL;
    qf_err e = { 0 };

    snprintf(path, sizeof path, "%s/fixtures/gguf/stories260K-f16.gguf", root);
    if (qf_gguf_open(path, &g, &e))
        fail_msg("%s", e.msg);
    if (qf_tokenizer_from_gguf(g, &t, &e))
        fail_msg("%s", e.msg);
    qf_gguf_close(g);
    return t;
}

/* Encode into a malloc'd array; *n the count. */
static int32_t *enc(const qf_tokenizer *t, const char *s, size_t len, int add, int parse,
                    int64_t *n)
{
    qf_err e = { 0 };
    int64_t k = qf_tokenizer_encode(t, s, len, add, parse, NULL, 0, &e);
    int32_t *ids;
    if (k < 0)
        fail_msg("encode: %s", e.msg);
    ids = malloc((size_t)(k + 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(qf_tokenizer_encode(t, s, len, add, parse, ids, k, &e), k);
    *n = k;
    return ids;
}

static char *dec(const qf_tokenizer *t, const int32_t *ids, int64_t n, unsigned flags,
                 size_t *len)
{
    qf_err e = { 0 };
    int64_t k = qf_tokenizer_decode_ex(t, ids, n, flags, NULL, 0, &e);
    char *s;
    if (k < 0)
        fail_msg("decode: %s", e.msg);
    s = malloc((size_t)k + 1);
    assert_non_null(s);
    assert_int_equal(qf_tokenizer_decode_ex(t, ids, n, flags, s, (size_t)k, &e), k);
    s[k] = '\0';
    *len = (size_t)k;
    return s;
}

/* ids equal to the JSON array a (prints both on a difference) */
static int same_ids(const int32_t *ids, int64_t n, const cJSON *a, const char *what, int line)
{
    int64_t i;
    int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == n;
    for (i = 0; ok && i < n; i++)
        ok = cJSON_GetArrayItem(a, (int)i)->valueint == ids[i];
    if (!ok) {
        char *want = cJSON_PrintUnformatted(a);
        print_error("%s line %d: want %s, got [", what, line, want);
        for (i = 0; i < n; i++)
            print_error(i ? ", %d" : "%d", ids[i]);
        print_error("]\n");
        free(want);
    }
    return ok;
}

/* =====================================================================
 * Unicode
 * ===================================================================== */

static void test_unicode_flags(void **state)
{
    static const struct {
        uint32_t cp;
        unsigned flags;
    } cases[] = {
        { 'a', QF_UCP_LETTER },
        { 'Z', QF_UCP_LETTER },
        { '7', QF_UCP_NUMBER },
        { ' ', QF_UCP_SEPARATOR | QF_UCP_WHITESPACE },
        { '\n', QF_UCP_CONTROL | QF_UCP_WHITESPACE },
        { '\v', QF_UCP_CONTROL | QF_UCP_WHITESPACE },
        { 0x1C, QF_UCP_CONTROL }, /* not White_Space */
        { '$', QF_UCP_SYMBOL },
        { '!', QF_UCP_PUNCT },
        { 0x85, QF_UCP_CONTROL | QF_UCP_WHITESPACE },
        { 0xA0, QF_UCP_SEPARATOR | QF_UCP_WHITESPACE },
        { 0xAD, QF_UCP_CONTROL },  /* soft hyphen, Cf */
        { 0x0301, QF_UCP_MARK },
        { 0x0378, QF_UCP_UNDEFINED },
        { 0x0CF3, QF_UCP_MARK },   /* new in 15.0 */
        { 0x1C89, QF_UCP_UNDEFINED }, /* new only in 16.0 */
        { 0x200B, QF_UCP_CONTROL },
        { 0x2028, QF_UCP_SEPARATOR | QF_UCP_WHITESPACE },
        { 0x2460, QF_UCP_NUMBER }, /* circled one, No */
        { 0x2FFC, QF_UCP_SYMBOL }, /* new in 15.1 */
        { 0x3000, QF_UCP_SEPARATOR | QF_UCP_WHITESPACE },
        { 0x31EF, QF_UCP_SYMBOL }, /* new in 15.1 */
        { 0x4E00, QF_UCP_LETTER },
        { 0xD800, QF_UCP_CONTROL },
        { 0xE000, QF_UCP_CONTROL },
        { 0xFEFF, QF_UCP_CONTROL },
        { 0xFFFD, QF_UCP_SYMBOL },
        { 0x1F600, QF_UCP_SYMBOL },
        { 0x2EBF0, QF_UCP_LETTER }, /* CJK Ext. I, 15.1 */
        { 0x2EE5E, QF_UCP_UNDEFINED },
        { 0x10FFFF, QF_UCP_UNDEFINED },
        { 0x110000, QF_UCP_UNDEFINED },
    };
    size_t i;
    (void)state;

    assert_string_equal(qf_unicode_version, "15.1.0");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (qf_unicode_flags(cases[i].cp) != cases[i].flags)
            fail_msg("U+%04X: flags 0x%x, want 0x%x", cases[i].cp,
                     qf_unicode_flags(cases[i].cp), cases[i].flags);
    }
    /* the table is sorted and ends at 0x110000 */
    for (i = 1; i < qf_unicode_n_ranges; i++)
        assert_true((qf_unicode_ranges[i] >> 8) > (qf_unicode_ranges[i - 1] >> 8));
    assert_int_equal(qf_unicode_ranges[qf_unicode_n_ranges - 1] >> 8, 0x110000);
    assert_int_equal(qf_unicode_n_whitespace, 25);
}

static void test_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t len;
        uint32_t cp[8];
        size_t n;
    } cases[] = {
        { "a\xc3\xa9", 3, { 'a', 0xE9 }, 2 },
        { "\xe2\x96\x81", 3, { 0x2581 }, 1 },
        { "\xf0\x9f\x98\x80", 4, { 0x1F600 }, 1 },
        { "\x80z", 2, { 0xFFFD, 'z' }, 2 },              /* stray continuation */
        { "\xe2\x96z", 3, { 0xFFFD, 0xFFFD, 'z' }, 3 },  /* cut: each byte alone */
        { "\xc3", 1, { 0xFFFD }, 1 },                    /* cut at the end */
        { "\xc0\xaf", 2, { 0x2F }, 1 },                  /* overlong: decoded as is */
        { "\xed\xa0\x80", 3, { 0xD800 }, 1 },            /* surrogate: as is */
        { "\xf8\x88\x80\x80\x80", 5, { 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD }, 5 },
    };
    uint32_t out[8];
    size_t i, k;
    char u8[4];
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = qf_unicode_decode(cases[i].s, cases[i].len, out);
        assert_int_equal(n, cases[i].n);
        for (k = 0; k < n; k++)
            assert_int_equal(out[k], cases[i].cp[k]);
    }
    assert_int_equal(qf_unicode_encode(0x2581, u8), 3);
    assert_memory_equal(u8, "\xe2\x96\x81", 3);
    assert_int_equal(qf_unicode_encode(0x110000, u8), 3); /* U+FFFD */
    assert_memory_equal(u8, "\xef\xbf\xbd", 3);
    assert_int_equal(qf_unicode_len_utf8(0xF0), 4);
    assert_int_equal(qf_unicode_len_utf8(0x80), 1);
    assert_int_equal(qf_unicode_len_utf8(0xF8), 4); /* lead-nibble table, as llama.cpp */
}

static void test_byte_map(void **state)
{
    int b;
    (void)state;

    assert_int_equal(qf_unicode_byte_to_cpt(' '), 0x120);  /* Ġ */
    assert_int_equal(qf_unicode_byte_to_cpt('\n'), 0x10A); /* Ċ */
    assert_int_equal(qf_unicode_byte_to_cpt('A'), 'A');
    assert_int_equal(qf_unicode_byte_to_cpt(0xAD), 0x143);
    assert_int_equal(qf_unicode_byte_to_cpt(0), 0x100);
    for (b = 0; b < 256; b++)
        assert_int_equal(qf_unicode_cpt_to_byte(qf_unicode_byte_to_cpt((uint8_t)b)), b);
    assert_int_equal(qf_unicode_cpt_to_byte(0x144), -1);
    assert_int_equal(qf_unicode_cpt_to_byte(' '), -1);
}

/* =====================================================================
 * Regex matcher
 * ===================================================================== */

static qf_regex *re_compile(const char *pat)
{
    uint32_t u[512];
    size_t n = qf_unicode_decode(pat, strlen(pat), u);
    qf_regex *re = NULL;
    qf_err e = { 0 };
    if (qf_regex_compile(u, n, &re, &e))
        fail_msg("compile '%s': %s", pat, e.msg);
    return re;
}

static void test_regex_semantics(void **state)
{
    static const struct {
        const char *pat, *text;
        int ms, me; /* -1: no match */
    } cases[] = {
        { "a|ab", "ab", 0, 1 },             /* first alternative, not the longest */
        { "ab|a", "ab", 0, 2 },
        { "a+ab", "aaab", 0, 4 },           /* greedy, then backtrack */
        { "a+?", "aaa", 0, 1 },             /* lazy */
        { "a{2,3}", "aaaa", 0, 3 },
        { "a{2}", "a aa", 2, 4 },
        { "a{2,}", "aaaaa", 0, 5 },
        { "x{,2}", "x{,2}", 0, 5 },         /* not a quantifier: literal */
        { "\\s+(?!\\S)", "   x", 0, 2 },    /* GPT-2's trailing-space rule */
        { "\\s+(?!\\S)", "   ", 0, 3 },
        { "\\s+(?!\\S)", " x", -1, -1 },
        { "(?=b)\\w", "ab", 1, 2 },
        { "[\\-a]+", "-a-b", 0, 3 },
        { "[a-]+", "a-a-b", 0, 4 },
        { "\\x41\\u0042", "zAB", 1, 3 },
        { "^a", "ba", -1, -1 },
        { "a$", "aba", 2, 3 },
        { "(a*)*b", "aaab", 0, 4 },         /* empty iterations end the loop */
        { "(a|)+c", "aac", 0, 3 },
        { "((?=[A-Z])([^a-z]))+", "abCDe", 2, 4 }, /* tekken's one-character group */
        { "((?=[\\w])([^a-z]))*x", "ABx", 0, 3 },
        { "(?:'[sS]|'[tT])|[a-z]+", "it'S", 0, 2 },
        { ".+", "ab\ncd", 0, 2 },
        { "[\\d]+|\\D", "x12", 0, 1 },
        { "\\d+", "x12", 1, 3 },
        { "[^(\\s|.,!?\u2026)]+", "ab,\u3002c", 0, 2 },
        { "[\u4e00-\u9fa5]+", "a\u4e2d\u6587b", 1, 3 },
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t t[64];
        size_t n, ms = 0, me = 0;
        qf_regex *re;
        int rc;
        re = re_compile(cases[i].pat);
        n = qf_unicode_decode(cases[i].text, strlen(cases[i].text), t);
        rc = qf_regex_search(re, t, 0, n, 0, &ms, &me);
        if (cases[i].ms < 0) {
            if (rc != 0)
                fail_msg("/%s/ on \"%s\": matched [%zu, %zu)", cases[i].pat, cases[i].text, ms,
                         me);
        } else if (rc != 1 || ms != (size_t)cases[i].ms || me != (size_t)cases[i].me) {
            fail_msg("/%s/ on \"%s\": rc %d [%zu, %zu), want [%d, %d)", cases[i].pat,
                     cases[i].text, rc, ms, me, cases[i].ms, cases[i].me);
        }
        qf_regex_free(re);
    }
}

static void test_regex_search_from(void **state)
{
    qf_regex *re = re_compile("^a|b$");
    uint32_t t[4] = { 'a', 'a', 'b', 'b' };
    size_t ms, me;
    (void)state;

    /* ^ holds only at the start of the range, $ only at its end */
    assert_int_equal(qf_regex_search(re, t, 0, 4, 0, &ms, &me), 1);
    assert_int_equal(ms, 0);
    assert_int_equal(qf_regex_search(re, t, 0, 4, 1, &ms, &me), 1);
    assert_int_equal(ms, 3);
    assert_int_equal(qf_regex_search(re, t, 0, 3, 1, &ms, &me), 1);
    assert_int_equal(ms, 2);
    qf_regex_free(re);
}

static void test_regex_errors(void **state)
{
    static const char *const bad[] = {
        "(?<=a)b", "(a)\\1", "(?i:a)", "[z-a]", "(a", "a)", "a{3,1}", "*a", "a**", "\\p{L}",
        "[a", "\\", "\\b", "\\q", "\\x4",
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t u[64];
        size_t n = qf_unicode_decode(bad[i], strlen(bad[i]), u);
        qf_regex *re = NULL;
        qf_err e = { 0 };
        int rc = qf_regex_compile(u, n, &re, &e);
        if (rc >= 0)
            fail_msg("/%s/ compiled", bad[i]);
        assert_null(re);
        assert_true(strstr(e.msg, "regex: ") == e.msg);
    }
}

static void test_regex_limit(void **state)
{
    /* catastrophic backtracking becomes QF_ELIMIT, not a hang */
    qf_regex *re = re_compile("((a|a)|(a|aa))*c");
    uint32_t t[200];
    size_t i, ms, me;
    (void)state;

    for (i = 0; i < 200; i++)
        t[i] = 'a';
    assert_int_equal(qf_regex_search(re, t, 0, 200, 0, &ms, &me), QF_ELIMIT);
    qf_regex_free(re);
}

/* =====================================================================
 * Pre-tokenizer
 * ===================================================================== */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char RE_LLAMA3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Split text with the regex list; the words joined by '|' into out. */
static void split(const char *const *exprs, size_t n, int generic, const char *text, char *out,
                  size_t cap)
{
    qf_pretok *p = NULL;
    qf_err e = { 0 };
    uint32_t cp[512];
    size_t ncp = qf_unicode_decode(text, strlen(text), cp), *lens = NULL, nw = 0, w, k, at = 0,
           o = 0;

    if (qf_pretok_new(exprs, n, &p, &e))
        fail_msg("pretok: %s", e.msg);
    qf_pretok_set_generic(p, generic);
    if (qf_pretok_split(p, cp, ncp, &lens, &nw, &e))
        fail_msg("split: %s", e.msg);
    for (w = 0; w < nw; w++) {
        if (w && o + 1 < cap)
            out[o++] = '|';
        for (k = at; k < at + lens[w]; k++) {
            char u8[4];
            size_t nb = qf_unicode_encode(cp[k], u8);
            if (o + nb < cap) {
                memcpy(out + o, u8, nb);
                o += nb;
            }
        }
        at += lens[w];
    }
    out[o] = '\0';
    assert_int_equal(at, ncp);
    free(lens);
    qf_pretok_free(p);
}

static void test_pretok_examples(void **state)
{
    static const char *const gpt2[] = { RE_GPT2 };
    static const char *const llama3[] = { RE_LLAMA3 };
    static const char *const smollm[] = { "\\p{N}", RE_GPT2 };
    static const char *const deflt[] = { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                         "[0-9][0-9][0-9]" };
    static const char *const qwen2[] = {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" };
    char out[512];
    int g;
    (void)state;

    for (g = 0; g < 2; g++) {
        split(gpt2, 1, g, "Hello world's 12345  end", out, sizeof out);
        assert_string_equal(out, "Hello| world|'s| 12345| | end");
        split(gpt2, 1, g, "a \tb  ", out, sizeof out);
        assert_string_equal(out, "a| |\t|b|  ");
        split(llama3, 1, g, "I'M 1234567 x\r\n\n  y", out, sizeof out);
        assert_string_equal(out, "I|'M| |123|456|7| x|\r\n\n| | y");
    }
    split(smollm, 2, 0, "x\u00b2 \u2460 12", out, sizeof out);
    assert_string_equal(out, "x|\u00b2| |\u2460| |1|2");
    split(qwen2, 1, 0, "Hello123 world!\n", out, sizeof out);
    assert_string_equal(out, "Hello|1|2|3| world|!\n");
    split(deflt, 4, 0, "a+b=1234567, ok...", out, sizeof out);
    assert_string_equal(out, "a|+|b|=|123|456|7|,| ok|...");
}

/* The hand-written GPT-2 and LLaMA-3 splitters give what the regexes give. */
static void test_pretok_custom_equals_regex(void **state)
{
    static const char *const alphabet[] = {
        "a", "Z", "s", "t", "e", "l", "r", "v", "m", "d", "'", "S", "1", "0", " ", " ", "  ",
        "\t", "\r", "\n", "\xc2\xa0", "\xe3\x80\x80", "!", ".", "$", "\xc3\xa9", "\xcc\x81",
        "\xe2\x91\xa0", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\xcd\xb8", "\xef\xbf\xbd", "_",
        "\xe2\x80\x8b", "\x0b", "\xc2\x85",
    };
    static const char *const gpt2[] = { RE_GPT2 };
    static const char *const llama3[] = { RE_LLAMA3 };
    char text[256], a[1024], b[1024];
    unsigned seed = 12345;
    int i, k, n;
    size_t corpus_len, at = 0;
    char *corpus = slurp("fixtures/tokenizers/llama-tokenize/corpus.txt", &corpus_len);
    (void)state;

    /* every corpus line */
    while (at < corpus_len) {
        char *nl = memchr(corpus + at, '\n', corpus_len - at);
        size_t end = nl ? (size_t)(nl - corpus) : corpus_len, len = end - at;
        if (len < sizeof text) {
            memcpy(text, corpus + at, len);
            text[len] = '\0';
            split(gpt2, 1, 0, text, a, sizeof a);
            split(gpt2, 1, 1, text, b, sizeof b);
            assert_string_equal(a, b);
            split(llama3, 1, 0, text, a, sizeof a);
            split(llama3, 1, 1, text, b, sizeof b);
            assert_string_equal(a, b);
        }
        at = end + 1;
    }
    free(corpus);
    /* random strings over characters that exercise every branch */
    for (i = 0; i < 3000; i++) {
        size_t o = 0;
        seed = seed * 1103515245u + 12345u;
        n = 1 + (int)((seed >> 16) % 12);
        for (k = 0; k < n; k++) {
            const char *c;
            seed = seed * 1103515245u + 12345u;
            c = alphabet[(seed >> 16) % (sizeof alphabet / sizeof alphabet[0])];
            memcpy(text + o, c, strlen(c));
            o += strlen(c);
        }
        text[o] = '\0';
        split(gpt2, 1, 0, text, a, sizeof a);
        split(gpt2, 1, 1, text, b, sizeof b);
        if (strcmp(a, b))
            fail_msg("gpt2 \"%s\": custom \"%s\", regex \"%s\"", text, a, b);
        split(llama3, 1, 0, text, a, sizeof a);
        split(llama3, 1, 1, text, b, sizeof b);
        if (strcmp(a, b))
            fail_msg("llama3 \"%s\": custom \"%s\", regex \"%s\"", text, a, b);
    }
}

static void test_pretok_errors(void **state)
{
    static const char *const mixed[] = { "\\p{L}+|\u4e00" };
    static const char *const bad[] = { "(a" };
    qf_pretok *p = NULL;
    qf_err e = { 0 };
    (void)state;

    assert_int_equal(qf_pretok_new(mixed, 1, &p, &e), QF_EUNSUPPORTED);
    assert_null(p);
    assert_non_null(strstr(e.msg, "regex 0"));
    qf_err_clear(&e);
    assert_int_equal(qf_pretok_new(bad, 1, &p, &e), QF_EFORMAT);
    assert_non_null(strstr(e.msg, "missing )"));
}

/* =====================================================================
 * SentencePiece: stories260K against llama-tokenize
 * ===================================================================== */

static void check_lines(const qf_tokenizer *t, const char *oracle, int add, int parse)
{
    char rel[256];
    size_t clen, jlen, at = 0;
    char *corpus = slurp("fixtures/tokenizers/llama-tokenize/corpus.txt", &clen);
    char *js;
    cJSON *want;
    int line = 0, bad = 0;

    snprintf(rel, sizeof rel, "fixtures/tokenizers/llama-tokenize/%s", oracle);
    js = slurp(rel, &jlen);
    want = cJSON_Parse(js);
    assert_non_null(want);
    while (at < clen) {
        char *nl = memchr(corpus + at, '\n', clen - at);
        size_t end = nl ? (size_t)(nl - corpus) : clen;
        int64_t n;
        int32_t *ids = enc(t, corpus + at, end - at, add, parse, &n);
        bad += !same_ids(ids, n, cJSON_GetArrayItem(want, line), oracle, line + 1);
        free(ids);
        line++;
        at = end + 1;
    }
    assert_int_equal(line, 61);
    assert_int_equal(cJSON_GetArraySize(want), 61);
    assert_int_equal(bad, 0);
    cJSON_Delete(want);
    free(js);
    free(corpus);
}

static void check_whole(const qf_tokenizer *t, const char *oracle, int parse)
{
    char rel[256];
    size_t clen, jlen;
    char *corpus = slurp("fixtures/tokenizers/llama-tokenize/corpus.txt", &clen);
    char *js;
    cJSON *want;
    int64_t n;
    int32_t *ids;

    snprintf(rel, sizeof rel, "fixtures/tokenizers/llama-tokenize/%s", oracle);
    js = slurp(rel, &jlen);
    want = cJSON_Parse(js);
    assert_non_null(want);
    ids = enc(t, corpus, clen, 1, parse, &n);
    assert_true(same_ids(ids, n, want, oracle, 0));
    free(ids);
    cJSON_Delete(want);
    free(js);
    free(corpus);
}

static void test_stories_golden(void **state)
{
    qf_tokenizer *t = stories();
    (void)state;

    assert_int_equal(qf_tokenizer_n_vocab(t), 512);
    assert_int_equal(qf_tokenizer_bos(t), 1);
    assert_int_equal(qf_tokenizer_eos(t), 2);
    assert_true(qf_tokenizer_add_bos(t));
    assert_false(qf_tokenizer_add_eos(t));
    assert_string_equal(qf_tokenizer_model(t), "llama");
    assert_true(qf_tokenizer_is_eog(t, 2));
    assert_false(qf_tokenizer_is_eog(t, 1));
    check_lines(t, "stories260K.llama-tokenize.bos.ids.json", 1, 1);
    check_lines(t, "stories260K.llama-tokenize.nobos.ids.json", 0, 1);
    check_lines(t, "stories260K.llama-tokenize.bos.no-parse-special.ids.json", 1, 0);
    check_whole(t, "stories260K.llama-tokenize.whole.bos.ids.json", 1);
    check_whole(t, "stories260K.llama-tokenize.whole.bos.no-parse-special.ids.json", 0);
    qf_tokenizer_free(t);
}

static void test_stories_decode(void **state)
{
    qf_tokenizer *t = stories();
    size_t clen, at = 0, len;
    char *corpus = slurp("fixtures/tokenizers/llama-tokenize/corpus.txt", &clen);
    const char *p;
    char *s;
    int64_t n;
    int32_t *ids;
    int line = 0;
    (void)state;

    /* decode(encode(line)) is the line: the added leading space is dropped,
     * byte tokens give back every byte; only U+2581 in the text comes back
     * as a space (it is SentencePiece's space mark) */
    while (at < clen) {
        char *nl = memchr(corpus + at, '\n', clen - at);
        size_t end = nl ? (size_t)(nl - corpus) : clen, i, o = 0;
        char want[512];
        for (i = at; i < end && o < sizeof want; i++) {
            if (i + 2 < end && !memcmp(corpus + i, "\xe2\x96\x81", 3)) {
                want[o++] = ' ';
                i += 2;
            } else {
                want[o++] = corpus[i];
            }
        }
        ids = enc(t, corpus + at, end - at, 0, 0, &n);
        s = dec(t, ids, n, 0, &len);
        if (len != o || memcmp(s, want, len))
            fail_msg("line %d does not round-trip: \"%s\"", line + 1, s);
        free(s);
        free(ids);
        at = end + 1;
        line++;
    }
    free(corpus);

    /* llama.cpp keeps the space after BOS (BOS takes the strip) */
    ids = enc(t, "Hello world", 11, 1, 1, &n);
    s = dec(t, ids, n, 0, &len);
    assert_string_equal(s, " Hello world");
    free(s);
    s = dec(t, ids, n, QF_TOKENIZER_DECODE_REMOVE_SPECIAL, &len);
    assert_string_equal(s, " Hello world");
    free(s);
    s = dec(t, ids, n, QF_TOKENIZER_DECODE_SPECIAL, &len);
    assert_string_equal(s, "<s> Hello world");
    free(s);
    free(ids);

    /* special-token text parsed: control tokens vanish unless rendered */
    ids = enc(t, "a<s>b", 5, 0, 1, &n);
    s = dec(t, ids, n, QF_TOKENIZER_DECODE_SPECIAL, &len);
    assert_string_equal(s, "a<s> b");
    free(s);
    free(ids);

    /* pieces */
    p = qf_tokenizer_piece(t, 1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "<s>", 3);
    assert_null(qf_tokenizer_piece(t, 512, &len));
    assert_null(qf_tokenizer_piece(t, -1, &len));
    {
        char buf[16];
        qf_err e = { 0 };
        int32_t nl_id;
        assert_int_equal(qf_tokenizer_token_to_piece(t, 1, 0, buf, sizeof buf, &e), 0);
        assert_int_equal(qf_tokenizer_token_to_piece(t, 1, 1, buf, sizeof buf, &e), 3);
        ids = enc(t, "\n", 1, 0, 0, &n);
        nl_id = ids[n - 1]; /* <0x0A> */
        assert_int_equal(qf_tokenizer_token_to_piece(t, nl_id, 0, buf, sizeof buf, &e), 1);
        assert_int_equal(buf[0], '\n');
        free(ids);
        assert_int_equal(qf_tokenizer_token_to_piece(t, 9999, 0, buf, sizeof buf, &e),
                         QF_EINVAL);
    }
    qf_tokenizer_free(t);
}

static void test_capacity(void **state)
{
    qf_tokenizer *t = stories();
    int32_t ids[3];
    char buf[4];
    int32_t all[32];
    int64_t n;
    qf_err e = { 0 };
    (void)state;

    n = qf_tokenizer_encode(t, "Hello world", 11, 1, 1, ids, 3, &e);
    assert_int_equal(n, 7);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 346);
    assert_int_equal(ids[2], 306);
    assert_int_equal(qf_tokenizer_encode(t, "", 0, 1, 1, NULL, 0, &e), 1);
    assert_int_equal(qf_tokenizer_encode(t, "", 0, 0, 1, NULL, 0, &e), 0);
    assert_int_equal(qf_tokenizer_encode(t, NULL, 3, 0, 1, NULL, 0, &e), QF_EINVAL);
    n = qf_tokenizer_encode(t, "Hello world", 11, 0, 1, all, 32, &e);
    assert_int_equal(qf_tokenizer_decode(t, all, n, buf, sizeof buf, &e), 11);
    assert_memory_equal(buf, "Hell", 4);
    all[0] = 512;
    qf_err_clear(&e);
    assert_int_equal(qf_tokenizer_decode(t, all, 1, buf, sizeof buf, &e), QF_EINVAL);
    assert_non_null(strstr(e.msg, "512"));
    qf_tokenizer_free(t);
}

/* encode_alloc: the ids of encode, in an array of their own */
static void test_encode_alloc(void **state)
{
    qf_tokenizer *t = stories();
    const char *text = "Once upon a time, there was a <s> cat.";
    int32_t want[64], *ids = NULL;
    int64_t nw, n = -1;
    qf_err e = { 0 };
    (void)state;

    nw = qf_tokenizer_encode(t, text, strlen(text), 1, 1, want, 64, &e);
    assert_true(nw > 8 && nw <= 64);
    assert_int_equal(qf_tokenizer_encode_alloc(t, text, strlen(text), 1, 1, &ids, &n, &e), 0);
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, (size_t)nw * sizeof *want);
    free(ids);
    /* parse_special off: "<s>" is text, not BOS */
    nw = qf_tokenizer_encode(t, text, strlen(text), 1, 0, want, 64, &e);
    assert_int_equal(qf_tokenizer_encode_alloc(t, text, strlen(text), 1, 0, &ids, &n, &e), 0);
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, (size_t)nw * sizeof *want);
    free(ids);
    /* nothing to encode: an array all the same, no ids */
    assert_int_equal(qf_tokenizer_encode_alloc(t, "", 0, 0, 1, &ids, &n, &e), 0);
    assert_non_null(ids);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(qf_tokenizer_encode_alloc(t, NULL, 3, 0, 1, &ids, &n, &e), QF_EINVAL);
    assert_null(ids);
    assert_int_equal(n, 0);
    qf_tokenizer_free(t);
}

/* =====================================================================
 * Vocabularies built in memory
 * ===================================================================== */

typedef struct vspec {
    const char *model, *pre;
    const char *const *tokens;
    size_t n;
    const float *scores;
    const int32_t *types;
    const char *const *merges;
    size_t n_merges;
} vspec;

static qf_gguf_writer *writer(const vspec *v)
{
    qf_gguf_writer *w = NULL;
    qf_err e = { 0 };

    assert_int_equal(qf_gguf_writer_new(&w, &e), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model, &e), 0);
    if (v->pre)
        assert_int_equal(qf_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre, &e), 0);
    assert_int_equal(qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v->tokens, NULL,
                                                v->n, &e), 0);
    if (v->scores)
        assert_int_equal(qf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QF_GGUF_FLOAT32,
                                                v->scores, v->n, &e), 0);
    if (v->types)
        assert_int_equal(qf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QF_GGUF_INT32,
                                                v->types, v->n, &e), 0);
    if (v->merges)
        assert_int_equal(qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", v->merges, NULL,
                                                    v->n_merges, &e), 0);
    return w;
}

static qf_tokenizer *from_writer(qf_gguf_writer *w)
{
    qf_tokenizer *t = NULL;
    qf_err e = { 0 };
    if (qf_tokenizer_from_writer(w, "test", &t, &e))
        fail_msg("%s", e.msg);
    return t;
}

/* A byte-level BPE vocabulary: the 256 byte characters, then merged tokens. */
#define BPE_EXTRA 8
static const char *bpe_tokens[256 + BPE_EXTRA];
static char bpe_store[256][4];

static size_t bpe_vocab(void)
{
    static const char *const extra[BPE_EXTRA] = {
        "he", "ll", "hell", "hello", "\xc4\xa0w", "\xc4\xa0wo", "<|endoftext|>", "<extra>",
    };
    int b;
    for (b = 0; b < 256; b++) {
        size_t n = qf_unicode_encode(qf_unicode_byte_to_cpt((uint8_t)b), bpe_store[b]);
        bpe_store[b][n] = '\0';
        bpe_tokens[b] = bpe_store[b];
    }
    for (b = 0; b < BPE_EXTRA; b++)
        bpe_tokens[256 + b] = extra[b];
    return 256 + BPE_EXTRA;
}

static void test_bpe(void **state)
{
    static const char *const merges[] = { "h e", "l l", "he ll", "hell o", "\xc4\xa0 w",
                                          "\xc4\xa0w o", "bad-line" };
    int32_t types[256 + BPE_EXTRA];
    vspec v = { "gpt2", "gpt-2", bpe_tokens, 0, NULL, types, merges, 7 };
    qf_gguf_writer *w;
    qf_tokenizer *t;
    int64_t n;
    int32_t *ids;
    size_t i, len;
    char *s;
    qf_err e = { 0 };
    (void)state;

    v.n = bpe_vocab();
    for (i = 0; i < v.n; i++)
        types[i] = 1;
    types[256 + 6] = 3;                  /* <|endoftext|> control */
    types[256 + 7] = 4;                  /* <extra> user-defined */
    w = writer(&v);
    assert_int_equal(qf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 262, &e), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 262, &e), 0);
    t = from_writer(w);
    assert_false(qf_tokenizer_add_bos(t));
    assert_string_equal(qf_tokenizer_pre(t), "gpt-2");
    assert_true(qf_tokenizer_is_eog(t, 262));

    /* "hello" merges to one token; " wo" + "r"... */
    ids = enc(t, "hello world", 11, 1, 1, &n);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 256 + 3);   /* hello */
    assert_int_equal(ids[1], 256 + 5);   /* Ġwo */
    assert_int_equal(ids[2], 'r');
    assert_int_equal(ids[3], 'l');
    assert_int_equal(ids[4], 'd');
    free(ids);

    /* special text: control only when parsed, user-defined always */
    ids = enc(t, "a<|endoftext|><extra>", 21, 0, 1, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 262);
    assert_int_equal(ids[2], 263);
    free(ids);
    ids = enc(t, "a<|endoftext|><extra>", 21, 0, 0, &n);
    assert_int_equal(n, 15);
    assert_int_equal(ids[14], 263);
    free(ids);

    /* decode: GPT-2 bytes back, clean_up_tokenization_spaces */
    ids = enc(t, "it 's ok . yes", 14, 0, 1, &n);
    s = dec(t, ids, n, 0, &len);
    assert_string_equal(s, "it's ok. yes");
    free(s);
    free(ids);
    ids = enc(t, "\xff\x00\n\xe2\x82\xac", 6, 0, 1, &n);
    s = dec(t, ids, n, 0, &len);
    /* invalid UTF-8 in the input becomes U+FFFD, as in llama.cpp */
    assert_int_equal(len, 8);
    assert_memory_equal(s, "\xef\xbf\xbd\x00\n\xe2\x82\xac", 8);
    free(s);
    free(ids);
    qf_tokenizer_free(t);
    qf_gguf_writer_free(w);

    /* ignore_merges (llama-bpe): a word that is a token is taken whole, even
     * without a merge path to it; add_bos defaults on */
    v.pre = "llama-bpe";
    v.n_merges = 0;
    w = writer(&v);
    assert_int_equal(qf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 262, &e), 0);
    t = from_writer(w);
    assert_true(qf_tokenizer_add_bos(t));
    ids = enc(t, "hello hell", 10, 1, 1, &n);
    assert_int_equal(n, 7);
    assert_int_equal(ids[0], 262);
    assert_int_equal(ids[1], 256 + 3);
    assert_int_equal(ids[2], ' '); /* "Ġhell" is no token and there are no merges */
    free(ids);
    qf_tokenizer_free(t);
    qf_gguf_writer_free(w);

    /* every supported pre-tokenizer loads and tokenizes the corpus */
    {
        static const char *const pres[] = {
            "default", "llama3", "llama-bpe", "smaug-bpe", "dbrx", "deepseek-llm",
            "deepseek-coder", "deepseek-v3", "falcon", "gpt-2", "mpt", "starcoder", "smollm",
            "qwen2", "stablelm2", "poro-chat", "bloom", "viking", "chatglm-bpe", "tekken",
        };
        size_t clen;
        char *corpus = slurp("fixtures/tokenizers/llama-tokenize/corpus.txt", &clen);
        v.n_merges = 6;
        for (i = 0; i < sizeof pres / sizeof pres[0]; i++) {
            v.pre = pres[i];
            w = writer(&v);
            assert_int_equal(qf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 262, &e),
                             0);
            t = from_writer(w);
            ids = enc(t, corpus, clen, 0, 1, &n);
            s = dec(t, ids, n, QF_TOKENIZER_DECODE_SPECIAL, &len);
            /* byte-level: everything comes back but the cleaned spaces */
            assert_true(len <= clen && len > clen - 40);
            free(s);
            free(ids);
            qf_tokenizer_free(t);
            qf_gguf_writer_free(w);
        }
        free(corpus);
    }
}

static void test_spm_small(void **state)
{
    /* a SentencePiece vocabulary with scores, byte tokens for a few bytes */
    static const char *const tokens[] = { "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>",
                                          "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab",
                                          "\xe2\x96\x81" "ab", "<user>", "x" };
    static const float scores[] = { 0, 0, 0, 0, 0, -1, -2, -2, -1.5f, -1, -0.5f, 0, -3 };
    static const int32_t types[] = { 2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 4, 1 };
    vspec v = { "llama", "default", tokens, 13, scores, types, NULL, 0 };
    qf_gguf_writer *w = writer(&v);
    qf_tokenizer *t = from_writer(w);
    int64_t n;
    int32_t *ids;
    qf_err e = { 0 };
    size_t len;
    char *s;
    (void)state;

    /* " ab" -> "▁ab" by score order */
    ids = enc(t, "ab", 2, 1, 1, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 10);
    free(ids);
    /* byte fallback: \n has <0x0A>; \xc3\xa9: <0xC3> then, with no <0xA9>
     * and no one-byte token, the unknown token */
    ids = enc(t, "a\n\xc3\xa9", 4, 0, 1, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 8);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);
    assert_int_equal(ids[3], 0);
    free(ids);
    /* a user-defined token splits the text even without parse_special, and
     * the text after it gets the leading space */
    ids = enc(t, "x<user>a", 8, 0, 0, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 12);
    assert_int_equal(ids[2], 11);
    assert_int_equal(ids[3], 8);
    free(ids);
    ids = enc(t, "x<user>a", 8, 0, 0, &n);
    s = dec(t, ids, n, 0, &len);
    assert_string_equal(s, "x<user> a");
    free(s);
    free(ids);
    qf_tokenizer_free(t);

    /* add_space_prefix false, add_eos true */
    assert_int_equal(qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", 0, &e), 0);
    assert_int_equal(qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 1, &e), 0);
    t = from_writer(w);
    ids = enc(t, "ab", 2, 1, 1, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 9);
    assert_int_equal(ids[2], 2);
    free(ids);
    qf_tokenizer_free(t);

    /* phi-3: special tokens take the whitespace after them */
    assert_int_equal(qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", 1, &e), 0);
    assert_int_equal(qf_gguf_writer_set_str(w, "general.name", "Phi-3 mini", &e), 0);
    t = from_writer(w);
    ids = enc(t, "<user>   a", 10, 0, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 8);
    free(ids);
    qf_tokenizer_free(t);
    qf_gguf_writer_free(w);
}

static void test_errors(void **state)
{
    static const char *const tokens[] = { "<unk>", "<s>", "</s>", "a" };
    static const char *const dup[] = { "<unk>", "<s>", "a", "a" };
    static const char *const empty[] = { "<unk>", "", "</s>", "a" };
    static const float scores[] = { 0, 0, 0 };
    vspec v = { "llama", NULL, tokens, 4, NULL, NULL, NULL, 0 };
    qf_gguf_writer *w;
    qf_tokenizer *t = NULL;
    qf_err e = { 0 };
    size_t len;
    const char *p;
    (void)state;

    /* no tokenizer at all */
    assert_int_equal(qf_gguf_writer_new(&w, &e), 0);
    assert_int_equal(qf_tokenizer_from_writer(w, "m.gguf", &t, &e), QF_ENOTFOUND);
    assert_null(t);
    assert_non_null(strstr(e.msg, "m.gguf"));
    qf_gguf_writer_free(w);

#define EXPECT(code, substr)                                                                       \
    do {                                                                                           \
        qf_err_clear(&e);                                                                          \
        assert_int_equal(qf_tokenizer_from_writer(w, "m.gguf", &t, &e), code);                    \
        assert_null(t);                                                                            \
        if (!strstr(e.msg, substr))                                                                \
            fail_msg("message \"%s\" lacks \"%s\"", e.msg, substr);                               \
        qf_gguf_writer_free(w);                                                                    \
    } while (0)

    v.model = "bert";
    w = writer(&v);
    EXPECT(QF_EUNSUPPORTED, "\"bert\"");
    v.model = "gpt2";
    v.pre = "gpt-2";
    w = writer(&v);
    EXPECT(QF_EFORMAT, "merges");
    v.pre = "jina-v2-code";
    v.merges = tokens;
    v.n_merges = 1;
    w = writer(&v);
    EXPECT(QF_EUNSUPPORTED, "jina-v2-code");
    v.model = "llama";
    v.pre = NULL;
    v.merges = NULL;
    v.tokens = dup;
    w = writer(&v);
    EXPECT(QF_EFORMAT, "duplicates");
    v.tokens = tokens;
    v.scores = scores;
    v.n = 3; /* written with 3 scores for 3 tokens; tokens then rewritten below */
    w = writer(&v);
    assert_int_equal(qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 4, &e),
                     0);
    EXPECT(QF_EFORMAT, "scores has 3 values for 4 tokens");
    v.scores = NULL;
    v.n = 4;
    w = writer(&v);
    assert_int_equal(qf_gguf_writer_set_str(w, "tokenizer.ggml.tokens", "a", &e), 0);
    EXPECT(QF_EFORMAT, "tokenizer.ggml.tokens is STRING");
    w = writer(&v);
    assert_int_equal(qf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 1, &e), 0);
    assert_int_equal(qf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 4, &e), 0);
    /* eos 4 is out of range: the default (2) stays */
    t = from_writer(w);
    assert_int_equal(qf_tokenizer_eos(t), 2);
    qf_tokenizer_free(t);
    t = NULL;
    qf_gguf_writer_free(w);
    v.tokens = empty;
    w = writer(&v);
    /* an empty token becomes [EMPTY_<id>] */
    t = from_writer(w);
    p = qf_tokenizer_piece(t, 1, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(p, "[EMPTY_1]", 9);
    /* and the default bos (1) is still used */
    assert_int_equal(qf_tokenizer_bos(t), 1);
    qf_tokenizer_free(t);
    qf_gguf_writer_free(w);
#undef EXPECT
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_flags),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_byte_map),
        cmocka_unit_test(test_regex_semantics),
        cmocka_unit_test(test_regex_search_from),
        cmocka_unit_test(test_regex_errors),
        cmocka_unit_test(test_regex_limit),
        cmocka_unit_test(test_pretok_examples),
        cmocka_unit_test(test_pretok_custom_equals_regex),
        cmocka_unit_test(test_pretok_errors),
        cmocka_unit_test(test_stories_golden),
        cmocka_unit_test(test_stories_decode),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_encode_alloc),
        cmocka_unit_test(test_bpe),
        cmocka_unit_test(test_spm_small),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
