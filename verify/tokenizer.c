/*
 * verify/tokenizer.c - text <-> token ids as llama.cpp b4747 computes them
 * (src/llama-vocab.cpp, src/unicode.cpp), from tokenizer.ggml.* metadata.
 *
 *   load      llama_vocab::impl::load: model and pre-tokenizer defaults, the
 *             token list (an empty token becomes "[EMPTY_<id>]", a duplicate
 *             is an error), scores, types as attributes, special ids with
 *             their defaults and range checks, add_* flags, the control
 *             tokens llama.cpp recognises by their text, phi-3's rstrip.
 *   partition tokenizer_st_partition: the text is cut at every occurrence of
 *             a special token (control, user-defined, unknown; longest
 *             first), control and unknown ones only with parse_special.
 *   SPM       llm_tokenizer_spm_session: one symbol per UTF-8 character,
 *             the best-scored adjacent pair merged first (ties: leftmost),
 *             symbols that are no token resegmented or sent as <0xNN>.
 *   BPE       llm_tokenizer_bpe_session: the pre-tokenizer splits the text
 *             into words (verify/regex.c), each word GPT-2 byte-encoded,
 *             then merged by rank (ties: leftmost); LLaMA-3 style
 *             ignore_merges takes a word that is a token whole.
 *   decode    token_to_piece and detokenize, with clean_spaces.
 */
#include "verify/tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/tokenizer_impl.h"

/* llama.cpp's token types (GGUF tokenizer.ggml.token_type) and attributes. */
enum { TT_UNDEFINED = 0, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };
enum {
    A_UNKNOWN = 1 << 0,
    A_UNUSED = 1 << 1,
    A_NORMAL = 1 << 2,
    A_CONTROL = 1 << 3,
    A_USER_DEFINED = 1 << 4,
    A_BYTE = 1 << 5,
    A_LSTRIP = 1 << 7,
    A_RSTRIP = 1 << 8,
};

enum { T_SPM, T_BPE };

typedef struct token {
    const char *text; /* in the tokenizer's arena, NUL-terminated */
    uint32_t len;
    float score;
    uint32_t attr;
} token;

typedef struct merge {
    const char *a, *b;
    uint32_t alen, blen;
    int32_t rank;
} merge;

struct qf_tokenizer {
    int type;
    char model[16];
    char pre[64];
    token *tok;
    int32_t n;
    char *arena;
    int32_t *hash; /* open addressing: token ids by text, -1 empty */
    size_t hcap;

    merge *merges;
    size_t n_merges;
    char *marena;
    int32_t *mhash; /* indexes into merges, -1 empty */
    size_t mcap;

    int32_t bos, eos, eot, eom, unk, sep, pad;
    int add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;

    int32_t *special; /* llama.cpp's cache_special_tokens, longest first */
    size_t n_special;
    int32_t *eog;
    size_t n_eog;

    qf_pretok *pretok;
};

/* =====================================================================
 * Hashing
 * ===================================================================== */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

static int32_t find_token(const qf_tokenizer *t, const char *s, size_t len)
{
    size_t mask = t->hcap - 1, i = (size_t)fnv(s, len, FNV0) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = t->hash[i];
        if (id < 0)
            return -1;
        if (t->tok[id].len == len && !memcmp(t->tok[id].text, s, len))
            return id;
    }
}

static int32_t find_rank(const qf_tokenizer *t, const char *a, size_t alen, const char *b,
                         size_t blen)
{
    size_t mask, i;
    if (!t->mcap)
        return -1;
    mask = t->mcap - 1;
    i = (size_t)fnv(b, blen, fnv(a, alen, FNV0) ^ 0xff) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t k = t->mhash[i];
        const merge *m;
        if (k < 0)
            return -1;
        m = &t->merges[k];
        if (m->alen == alen && m->blen == blen && !memcmp(m->a, a, alen) && !memcmp(m->b, b, blen))
            return m->rank;
    }
}

static size_t pow2_above(size_t n)
{
    size_t c = 16;
    while (c < n * 2)
        c *= 2;
    return c;
}

/* =====================================================================
 * Metadata access: a source, a GGUF reader, or a writer's pairs
 * ===================================================================== */

typedef struct meta {
    int (*find)(const void *ctx, const char *key, qf_gguf_val *v);
    const void *ctx;
    const char *name; /* for messages */
} meta;

static int find_source(const void *ctx, const char *key, qf_gguf_val *v)
{
    int64_t i = qf_source_find_key(ctx, key);
    return i < 0 ? QF_ENOTFOUND : qf_source_kv_value(ctx, i, v);
}

static int find_gguf(const void *ctx, const char *key, qf_gguf_val *v)
{
    int64_t i = qf_gguf_find_key(ctx, key);
    return i < 0 ? QF_ENOTFOUND : qf_gguf_kv_value(ctx, i, v);
}

static int find_writer(const void *ctx, const char *key, qf_gguf_val *v)
{
    int64_t i = qf_gguf_writer_find_key(ctx, key);
    return i < 0 ? QF_ENOTFOUND : qf_gguf_writer_kv_value(ctx, i, v);
}

static int is_int_type(qf_gguf_vtype t)
{
    return t == QF_GGUF_UINT8 || t == QF_GGUF_INT8 || t == QF_GGUF_UINT16 || t == QF_GGUF_INT16 ||
           t == QF_GGUF_UINT32 || t == QF_GGUF_INT32 || t == QF_GGUF_UINT64 ||
           t == QF_GGUF_INT64;
}

/* A string key: 0, QF_ENOTFOUND, or QF_EFORMAT. */
static int meta_str(const meta *m, const char *key, const char **s, uint64_t *len, qf_err *err)
{
    qf_gguf_val v;
    int rc = m->find(m->ctx, key, &v);
    if (rc)
        return rc;
    if (v.type != QF_GGUF_STRING)
        return qf_err_set(err, QF_EFORMAT, "%s: %s is %s, expected STRING", m->name, key,
                          qf_gguf_vtype_name((int)v.type));
    *s = v.str;
    *len = v.str_len;
    return 0;
}

/* A boolean key (BOOL, or an integer as 0/1). */
static int meta_bool(const meta *m, const char *key, int *b, qf_err *err)
{
    qf_gguf_val v;
    int rc = m->find(m->ctx, key, &v);
    if (rc)
        return rc;
    if (v.type != QF_GGUF_BOOL && !is_int_type(v.type))
        return qf_err_set(err, QF_EFORMAT, "%s: %s is %s, expected BOOL", m->name, key,
                          qf_gguf_vtype_name((int)v.type));
    *b = v.u != 0;
    return 0;
}

/* An unsigned integer key. */
static int meta_uint(const meta *m, const char *key, uint64_t *u, qf_err *err)
{
    qf_gguf_val v;
    int rc = m->find(m->ctx, key, &v);
    if (rc)
        return rc;
    if (!is_int_type(v.type) || ((v.type == QF_GGUF_INT8 || v.type == QF_GGUF_INT16 ||
                                  v.type == QF_GGUF_INT32 || v.type == QF_GGUF_INT64) && v.i < 0))
        return qf_err_set(err, QF_EFORMAT, "%s: %s is not an unsigned integer", m->name, key);
    *u = v.u;
    return 0;
}

/* An array key of element type want (or -1 for any); QF_ENOTFOUND. */
static int meta_arr(const meta *m, const char *key, qf_gguf_val *v, qf_err *err)
{
    int rc = m->find(m->ctx, key, v);
    if (rc)
        return rc;
    if (v->type != QF_GGUF_ARRAY)
        return qf_err_set(err, QF_EFORMAT, "%s: %s is %s, expected an array", m->name, key,
                          qf_gguf_vtype_name((int)v->type));
    return 0;
}

/* =====================================================================
 * Pre-tokenizers (llama.cpp b4747's llm_tokenizer_bpe and load())
 * ===================================================================== */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                  \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"    \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"    \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?" \
    "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"      \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK_HANGUL "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
#define RE_PORO " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
/* DeepSeek LLM's cased letters (its tokenizer.json's class, as llama.cpp has it). */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-"   \
    "\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1"    \
    "\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-"       \
    "\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-" \
    "\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4"   \
    "\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-" \
    "\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-"    \
    "\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-"   \
    "\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-"  \
    "\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-"          \
    "\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-"        \
    "\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+"

typedef struct pre_def {
    const char *names; /* space-separated tokenizer.ggml.pre values */
    unsigned flags;
    const char *re[7];
} pre_def;

enum { P_IGNORE_MERGES = 1, P_ADD_BOS = 2, P_NO_CLEAN = 4, P_NO_BOS = 8 };

static const pre_def PRE[] = {
    { "default", 0,
      { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" } },
    { "llama3 llama-v3 llama-bpe falcon3", P_IGNORE_MERGES | P_ADD_BOS, { RE_LLAMA3 } },
    { "dbrx smaug-bpe", 0, { RE_LLAMA3 } },
    { "deepseek-llm", P_NO_CLEAN,
      { "[\r\n]", RE_DEEPSEEK_LETTERS,
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "\\s+$",
        RE_CJK_HANGUL, "\\p{N}+" } },
    { "deepseek-coder", P_NO_CLEAN,
      { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK_HANGUL, "\\p{N}" } },
    { "deepseek-v3", P_NO_CLEAN,
      { "\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
        "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" } },
    { "falcon", 0, { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]" } },
    { "gpt-2 phi-2 mpt olmo jais", 0, { RE_GPT2 } },
    { "starcoder refact codeshell exaone minerva-7b", 0, { "\\p{N}", RE_GPT2 } },
    { "command-r smollm", P_NO_CLEAN, { "\\p{N}", RE_GPT2 } },
    { "qwen2 deepseek-r1-qwen", P_NO_CLEAN, { RE_QWEN2 } },
    { "stablelm2 megrez", 0, { RE_QWEN2 } },
    { "poro-chat", P_NO_CLEAN, { RE_PORO } },
    { "bloom gpt3-finnish", 0, { RE_PORO } },
    { "viking", P_NO_CLEAN, { RE_PORO, "\\p{N}" } },
    { "chatglm-bpe", P_NO_BOS, { RE_LLAMA3 } },
    { "tekken", P_NO_CLEAN | P_IGNORE_MERGES | P_ADD_BOS, { RE_TEKKEN } },
};

static int name_in(const char *list, const char *name, size_t len)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n == len && !memcmp(p, name, len))
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* =====================================================================
 * Loading
 * ===================================================================== */

void qf_tokenizer_free(qf_tokenizer *t)
{
    if (!t)
        return;
    free(t->tok);
    free(t->arena);
    free(t->hash);
    free(t->merges);
    free(t->marena);
    free(t->mhash);
    free(t->special);
    free(t->eog);
    qf_pretok_free(t->pretok);
    free(t);
}

/* The tokens, scores and types. */
static int load_tokens(qf_tokenizer *t, const meta *m, qf_err *err)
{
    qf_gguf_val tv, sv, yv;
    qf_gguf_iter it, si, yi;
    qf_gguf_val e;
    int have_scores = 0, have_types = 0, rc;
    uint64_t bytes = 0, i;
    size_t off = 0;

    rc = meta_arr(m, "tokenizer.ggml.tokens", &tv, err);
    if (rc == QF_ENOTFOUND)
        return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.tokens is missing", m->name);
    if (rc)
        return rc;
    if (tv.arr_type != QF_GGUF_STRING)
        return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.tokens is not an array of strings",
                          m->name);
    if (tv.arr_n == 0 || tv.arr_n > INT32_MAX)
        return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.tokens has %llu tokens", m->name,
                          (unsigned long long)tv.arr_n);
    t->n = (int32_t)tv.arr_n;

    rc = meta_arr(m, "tokenizer.ggml.scores", &sv, err);
    if (rc == 0) {
        if (sv.arr_type != QF_GGUF_FLOAT32 && sv.arr_type != QF_GGUF_INT32)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.scores is not FLOAT32 or INT32",
                              m->name);
        if (sv.arr_n < tv.arr_n)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.scores has %llu values for %llu "
                              "tokens", m->name, (unsigned long long)sv.arr_n,
                              (unsigned long long)tv.arr_n);
        have_scores = 1;
    } else if (rc != QF_ENOTFOUND) {
        return rc;
    }
    rc = meta_arr(m, "tokenizer.ggml.token_type", &yv, err);
    if (rc == 0) {
        if (yv.arr_type != QF_GGUF_INT32)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.token_type is not INT32",
                              m->name);
        if (yv.arr_n < tv.arr_n)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.token_type has %llu values for "
                              "%llu tokens", m->name, (unsigned long long)yv.arr_n,
                              (unsigned long long)tv.arr_n);
        have_types = 1;
    } else if (rc != QF_ENOTFOUND) {
        return rc;
    }

    /* Arena size: every text (or "[EMPTY_<id>]") plus a NUL. */
    qf_gguf_iter_init(&it, &tv);
    for (i = 0; i < tv.arr_n; i++) {
        if (qf_gguf_iter_next(&it, &e) != 1)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.tokens: bad element %llu",
                              m->name, (unsigned long long)i);
        if (e.str_len > UINT32_MAX - 32)
            return qf_err_set(err, QF_ELIMIT, "%s: token %llu is too long", m->name,
                              (unsigned long long)i);
        bytes += (e.str_len ? e.str_len : 24) + 1;
    }
    t->tok = calloc((size_t)t->n, sizeof *t->tok);
    t->arena = malloc((size_t)bytes);
    t->hcap = pow2_above((size_t)t->n);
    t->hash = malloc(t->hcap * sizeof *t->hash);
    if (!t->tok || !t->arena || !t->hash)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    memset(t->hash, 0xff, t->hcap * sizeof *t->hash);

    qf_gguf_iter_init(&it, &tv);
    if (have_scores)
        qf_gguf_iter_init(&si, &sv);
    if (have_types)
        qf_gguf_iter_init(&yi, &yv);
    for (i = 0; i < tv.arr_n; i++) {
        token *k = &t->tok[i];
        size_t mask = t->hcap - 1, h;
        char *dst = t->arena + off;

        qf_gguf_iter_next(&it, &e);
        if (e.str_len == 0)
            k->len = (uint32_t)snprintf(dst, 24, "[EMPTY_%llu]", (unsigned long long)i);
        else {
            memcpy(dst, e.str, (size_t)e.str_len);
            dst[e.str_len] = '\0';
            k->len = (uint32_t)e.str_len;
        }
        k->text = dst;
        off += k->len + 1;

        k->score = 0.0f;
        if (have_scores) {
            qf_gguf_val s;
            if (qf_gguf_iter_next(&si, &s) != 1)
                return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.scores: bad element",
                                  m->name);
            k->score = sv.arr_type == QF_GGUF_FLOAT32 ? (float)s.f : (float)s.i;
        }
        k->attr = A_NORMAL;
        if (have_types) {
            qf_gguf_val y;
            if (qf_gguf_iter_next(&yi, &y) != 1)
                return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.token_type: bad element",
                                  m->name);
            switch (y.i) {
            case TT_UNKNOWN: k->attr = A_UNKNOWN; break;
            case TT_UNUSED: k->attr = A_UNUSED; break;
            case TT_NORMAL: k->attr = A_NORMAL; break;
            case TT_CONTROL: k->attr = A_CONTROL; break;
            case TT_USER_DEFINED: k->attr = A_USER_DEFINED; break;
            case TT_BYTE: k->attr = A_BYTE; break;
            default: k->attr = 0; break; /* UNDEFINED */
            }
        }
        /* duplicate texts: llama.cpp fails the load (an id-count assert) */
        if (find_token(t, k->text, k->len) >= 0)
            return qf_err_set(err, QF_EFORMAT, "%s: token %llu duplicates token %d (\"%.40s\")",
                              m->name, (unsigned long long)i, find_token(t, k->text, k->len),
                              k->text);
        for (h = (size_t)fnv(k->text, k->len, FNV0) & mask; t->hash[h] >= 0; h = (h + 1) & mask)
            ;
        t->hash[h] = (int32_t)i;
    }
    return 0;
}

/* tokenizer.ggml.merges into the rank table: "a b", split at the first space
 * after the first byte; a line without one is the pair ("", ""); the first
 * rank of a repeated pair wins. */
static int load_merges(qf_tokenizer *t, const meta *m, qf_err *err)
{
    qf_gguf_val mv, e;
    qf_gguf_iter it;
    uint64_t bytes = 0, i;
    size_t off = 0;
    int rc;

    rc = meta_arr(m, "tokenizer.ggml.merges", &mv, err);
    if (rc == QF_ENOTFOUND)
        return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.merges is missing (a gpt2 "
                          "tokenizer needs it)", m->name);
    if (rc)
        return rc;
    if (mv.arr_type != QF_GGUF_STRING)
        return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.merges is not an array of strings",
                          m->name);
    if (mv.arr_n > INT32_MAX)
        return qf_err_set(err, QF_ELIMIT, "%s: too many merges", m->name);
    qf_gguf_iter_init(&it, &mv);
    for (i = 0; i < mv.arr_n; i++) {
        if (qf_gguf_iter_next(&it, &e) != 1)
            return qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.merges: bad element", m->name);
        bytes += e.str_len + 1;
    }
    t->merges = calloc((size_t)(mv.arr_n ? mv.arr_n : 1), sizeof *t->merges);
    t->marena = malloc((size_t)bytes + 1);
    t->mcap = pow2_above((size_t)mv.arr_n);
    t->mhash = malloc(t->mcap * sizeof *t->mhash);
    if (!t->merges || !t->marena || !t->mhash)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    memset(t->mhash, 0xff, t->mcap * sizeof *t->mhash);

    qf_gguf_iter_init(&it, &mv);
    for (i = 0; i < mv.arr_n; i++) {
        merge *g = &t->merges[t->n_merges];
        char *dst = t->marena + off;
        const char *sp;
        size_t mask = t->mcap - 1, h;

        qf_gguf_iter_next(&it, &e);
        memcpy(dst, e.str, (size_t)e.str_len);
        dst[e.str_len] = '\0';
        off += (size_t)e.str_len + 1;
        sp = e.str_len > 1 ? memchr(dst + 1, ' ', (size_t)e.str_len - 1) : NULL;
        if (sp) {
            g->a = dst;
            g->alen = (uint32_t)(sp - dst);
            g->b = sp + 1;
            g->blen = (uint32_t)(e.str_len - g->alen - 1);
        } else {
            g->a = g->b = dst + e.str_len; /* "" */
            g->alen = g->blen = 0;
        }
        g->rank = (int32_t)i;
        if (find_rank(t, g->a, g->alen, g->b, g->blen) >= 0)
            continue; /* emplace keeps the first */
        for (h = (size_t)fnv(g->b, g->blen, fnv(g->a, g->alen, FNV0) ^ 0xff) & mask;
             t->mhash[h] >= 0; h = (h + 1) & mask)
            ;
        t->mhash[h] = (int32_t)t->n_merges++;
    }
    return 0;
}

static void mark_control(qf_tokenizer *t, const char *text)
{
    int32_t id = find_token(t, text, strlen(text));
    if (id >= 0 && !(t->tok[id].attr & A_CONTROL))
        t->tok[id].attr = A_CONTROL; /* b4747 overrides the type */
}

static int add_eog(qf_tokenizer *t, int32_t id)
{
    size_t i;
    int32_t *p;
    if (id < 0)
        return 0;
    for (i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return 0;
    p = realloc(t->eog, (t->n_eog + 1) * sizeof *p);
    if (!p)
        return QF_ENOMEM;
    t->eog = p;
    t->eog[t->n_eog++] = id;
    return 0;
}

/* Tokens llama.cpp b4747 recognises by their text. */
static const char *const EOT_TEXTS[] = { "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                         "<|endoftext|>", "<EOT>",
                                         "<\uff5cend\u2581of\u2581sentence\uff5c>", NULL };
static const char *const EOG_TEXTS[] = { "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                         "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                         NULL };
static const char *const FIM_TEXTS[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>",
    "<|fim_suffix|>", "<fim-suffix>", "<\uff5cfim\u2581hole\uff5c>", "<SUF>",
    "<|fim_middle|>", "<fim-middle>", "<\uff5cfim\u2581end\uff5c>", "<MID>",
    "<|fim_pad|>", "<fim-pad>", "<PAD>",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
    "<|file_sep|>", NULL
};

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const qf_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tok[x].len != t->tok[y].len)
        return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int build(const meta *m, qf_tokenizer **out, qf_err *err)
{
    qf_tokenizer *t = calloc(1, sizeof *t);
    const char *model = NULL, *pre = NULL, *name = NULL;
    uint64_t model_len = 0, pre_len = 0, name_len = 0, u = 0;
    const pre_def *pd = NULL;
    int rc, b, fim_set = 0;
    size_t i;
    int32_t id;

    *out = NULL;
    if (!t)
        return qf_err_set(err, QF_ENOMEM, "out of memory");

    rc = meta_str(m, "tokenizer.ggml.model", &model, &model_len, err);
    if (rc == QF_ENOTFOUND) {
        rc = qf_err_set(err, QF_ENOTFOUND, "%s: no tokenizer (tokenizer.ggml.model is missing)",
                        m->name);
        goto done;
    }
    if (rc)
        goto done;
    rc = meta_str(m, "tokenizer.ggml.pre", &pre, &pre_len, err);
    if (rc && rc != QF_ENOTFOUND)
        goto done;
    rc = 0;
    if (model_len >= sizeof t->model || pre_len >= sizeof t->pre) {
        rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tokenizer model or pre-tokenizer name too long",
                        m->name);
        goto done;
    }
    memcpy(t->model, model, (size_t)model_len);
    if (pre)
        memcpy(t->pre, pre, (size_t)pre_len);

    if (!strcmp(t->model, "llama")) {
        t->type = T_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0, t->sep = -1, t->pad = -1;
        t->add_space_prefix = 1;
        t->add_bos = 1;
    } else if (!strcmp(t->model, "gpt2")) {
        t->type = T_BPE;
        t->bos = 11, t->eos = 11, t->unk = -1, t->sep = -1, t->pad = -1;
        t->clean_spaces = 1;
        /* an absent pre is llama.cpp's "default" (with a warning) */
        for (i = 0; i < sizeof PRE / sizeof PRE[0] && !pd; i++)
            if (name_in(PRE[i].names, pre ? t->pre : "default", pre ? (size_t)pre_len : 7))
                pd = &PRE[i];
        if (!pd) {
            rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: pre-tokenizer \"%s\" is not supported",
                            m->name, t->pre);
            goto done;
        }
        if (pd->flags & P_IGNORE_MERGES)
            t->ignore_merges = 1;
        if (pd->flags & P_ADD_BOS)
            t->add_bos = 1;
        if (pd->flags & P_NO_CLEAN)
            t->clean_spaces = 0;
        if (pd->flags & P_NO_BOS)
            t->bos = -1;
    } else if (!strcmp(t->model, "no_vocab") || !strcmp(t->model, "none")) {
        rc = qf_err_set(err, QF_ENOTFOUND, "%s: the model has no vocabulary", m->name);
        goto done;
    } else {
        rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tokenizer model \"%s\" is not supported",
                        m->name, t->model);
        goto done;
    }
    t->eot = t->eom = -1;
    rc = meta_bool(m, "tokenizer.ggml.add_space_prefix", &b, err);
    if (rc == 0)
        t->add_space_prefix = b;
    else if (rc != QF_ENOTFOUND)
        goto done;

    if ((rc = load_tokens(t, m, err)) != 0)
        goto done;
    if (t->type == T_BPE && (rc = load_merges(t, m, err)) != 0)
        goto done;
    if (t->type == T_BPE) {
        size_t n = 0;
        while (n < 7 && pd->re[n])
            n++;
        if ((rc = qf_pretok_new(pd->re, n, &t->pretok, err)) != 0)
            goto done;
    }

    /* special ids: defaults out of range are disabled; a key out of range
     * keeps the default */
    {
        static const char *const keys[] = { "tokenizer.ggml.bos_token_id",
                                            "tokenizer.ggml.eos_token_id",
                                            "tokenizer.ggml.eot_token_id",
                                            "tokenizer.ggml.eom_token_id",
                                            "tokenizer.ggml.unknown_token_id",
                                            "tokenizer.ggml.seperator_token_id",
                                            "tokenizer.ggml.padding_token_id" };
        int32_t *ids[] = { &t->bos, &t->eos, &t->eot, &t->eom, &t->unk, &t->sep, &t->pad };
        for (i = 0; i < 7; i++) {
            if (*ids[i] >= t->n)
                *ids[i] = -1;
            rc = meta_uint(m, keys[i], &u, err);
            if (rc == QF_ENOTFOUND)
                continue;
            if (rc)
                goto done;
            if (u < (uint64_t)t->n)
                *ids[i] = (int32_t)u;
        }
        rc = 0;
        /* fim ids given as keys switch off their detection by text */
        {
            static const char *const fim_keys[] = {
                "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
                "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id",
                "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id",
                "tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id",
                "tokenizer.ggml.middle_token_id" };
            qf_gguf_val v;
            for (i = 0; i < sizeof fim_keys / sizeof fim_keys[0]; i++)
                if (m->find(m->ctx, fim_keys[i], &v) == 0)
                    fim_set = 1;
        }
    }
    rc = meta_bool(m, "tokenizer.ggml.add_bos_token", &b, err);
    if (rc == 0)
        t->add_bos = b;
    else if (rc != QF_ENOTFOUND)
        goto done;
    rc = meta_bool(m, "tokenizer.ggml.add_eos_token", &b, err);
    if (rc == 0)
        t->add_eos = b;
    else if (rc != QF_ENOTFOUND)
        goto done;
    rc = 0;
    if (t->add_bos && t->bos < 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.add_bos_token is true, but there is "
                        "no bos token", m->name);
        goto done;
    }
    if (t->add_eos && t->eos < 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: tokenizer.ggml.add_eos_token is true, but there is "
                        "no eos token", m->name);
        goto done;
    }

    /* control tokens recognised by their text (the types llama.cpp
     * overrides, with a warning, when the converter did not mark them) */
    if (t->eot < 0)
        for (i = 0; EOT_TEXTS[i]; i++)
            mark_control(t, EOT_TEXTS[i]);
    if (t->eom < 0)
        mark_control(t, "<|eom_id|>");
    if (!fim_set)
        for (i = 0; FIM_TEXTS[i]; i++)
            mark_control(t, FIM_TEXTS[i]);
    for (i = 0; EOG_TEXTS[i]; i++) {
        id = find_token(t, EOG_TEXTS[i], strlen(EOG_TEXTS[i]));
        if (id >= 0) {
            mark_control(t, EOG_TEXTS[i]);
            if (add_eog(t, id))
                goto nomem;
        }
    }
    if (add_eog(t, t->eos) || add_eog(t, t->eot) || add_eog(t, t->eom))
        goto nomem;

    /* the special-token cache: control, user-defined and unknown tokens,
     * longest first (ties by id; llama.cpp's std::sort leaves them in an
     * unspecified order) */
    for (id = 0; id < t->n; id++)
        if (t->tok[id].attr & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN))
            t->n_special++;
    t->special = malloc((t->n_special ? t->n_special : 1) * sizeof *t->special);
    if (!t->special)
        goto nomem;
    t->n_special = 0;
    for (id = 0; id < t->n; id++)
        if (t->tok[id].attr & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN))
            t->special[t->n_special++] = id;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    /* phi-3: special tokens swallow the whitespace after them */
    if (meta_str(m, "general.name", &name, &name_len, NULL) == 0) {
        char low[256];
        size_t n = name_len < sizeof low - 1 ? (size_t)name_len : sizeof low - 1;
        for (i = 0; i < n; i++)
            low[i] = (char)tolower((unsigned char)name[i]);
        low[n] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            static const char *const off[] = { "<unk>", "<s>", "<|endoftext|>" };
            for (i = 0; i < t->n_special; i++)
                t->tok[t->special[i]].attr |= A_RSTRIP;
            if ((id = find_token(t, "</s>", 4)) >= 0)
                t->tok[id].attr |= A_RSTRIP;
            for (i = 0; i < 3; i++)
                if ((id = find_token(t, off[i], strlen(off[i]))) >= 0)
                    t->tok[id].attr &= ~(uint32_t)A_RSTRIP;
        }
    }
    *out = t;
    t = NULL;
    rc = 0;
    goto done;
nomem:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    qf_tokenizer_free(t);
    return rc;
}

int qf_tokenizer_from_source(const qf_source *s, qf_tokenizer **out, qf_err *err)
{
    meta m = { find_source, s, qf_source_path(s) };
    return build(&m, out, err);
}

int qf_tokenizer_from_gguf(const qf_gguf *g, qf_tokenizer **out, qf_err *err)
{
    meta m = { find_gguf, g, qf_gguf_path(g) };
    return build(&m, out, err);
}

int qf_tokenizer_from_writer(const qf_gguf_writer *w, const char *name, qf_tokenizer **out,
                             qf_err *err)
{
    meta m = { find_writer, w, name ? name : "metadata" };
    return build(&m, out, err);
}

int qf_tokenizer_from_vocab(const qf_vocab *v, const char *name, qf_tokenizer **out, qf_err *err)
{
    qf_gguf_writer *w = NULL;
    int rc;

    if ((rc = qf_gguf_writer_new(&w, err)) == 0 && (rc = qf_vocab_write_gguf(v, w, err)) == 0)
        rc = qf_tokenizer_from_writer(w, name, out, err);
    qf_gguf_writer_free(w);
    return rc;
}

/* =====================================================================
 * Getters
 * ===================================================================== */

int64_t qf_tokenizer_n_vocab(const qf_tokenizer *t) { return t->n; }
int32_t qf_tokenizer_bos(const qf_tokenizer *t) { return t->bos; }
int32_t qf_tokenizer_eos(const qf_tokenizer *t) { return t->eos; }
int qf_tokenizer_add_bos(const qf_tokenizer *t) { return t->add_bos; }
int qf_tokenizer_add_eos(const qf_tokenizer *t) { return t->add_eos; }
const char *qf_tokenizer_model(const qf_tokenizer *t) { return t->model; }
const char *qf_tokenizer_pre(const qf_tokenizer *t) { return t->pre; }

int qf_tokenizer_is_eog(const qf_tokenizer *t, int32_t id)
{
    size_t i;
    for (i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return 1;
    return 0;
}

const char *qf_tokenizer_piece(const qf_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n)
        return NULL;
    if (len)
        *len = t->tok[id].len;
    return t->tok[id].text;
}

/* =====================================================================
 * Growable buffers
 * ===================================================================== */

typedef struct ids {
    int32_t *v;
    size_t n, cap;
} ids;

static int ids_push(ids *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 64;
        int32_t *p = realloc(o->v, c * sizeof *p);
        if (!p)
            return QF_ENOMEM;
        o->v = p;
        o->cap = c;
    }
    o->v[o->n++] = id;
    return 0;
}

typedef struct sbuf {
    char *v;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        char *p;
        while (c < b->n + n + 1)
            c *= 2;
        if (!(p = realloc(b->v, c)))
            return QF_ENOMEM;
        b->v = p;
        b->cap = c;
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = '\0';
    return 0;
}

/* =====================================================================
 * Special-token partition (tokenizer_st_partition)
 * ===================================================================== */

typedef struct frag {
    int32_t token; /* >= 0: a token; -1: raw text [off, off + len) */
    size_t off, len;
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static int frag_push(frags *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap) {
        size_t c = f->cap ? f->cap * 2 : 16;
        frag *p = realloc(f->v, c * sizeof *p);
        if (!p)
            return QF_ENOMEM;
        f->v = p;
        f->cap = c;
    }
    f->v[f->n].token = id;
    f->v[f->n].off = off;
    f->v[f->n].len = len;
    f->n++;
    return 0;
}

static int c_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int partition(const qf_tokenizer *t, const char *text, size_t len, int parse_special,
                     frags *out)
{
    frags a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    size_t s, k;
    int rc = 0;

    if (len && (rc = frag_push(&a, -1, 0, len)) != 0)
        goto done;
    for (s = 0; s < t->n_special; s++) {
        const token *sp = &t->tok[t->special[s]];
        if (!parse_special && (sp->attr & (A_CONTROL | A_UNKNOWN)))
            continue;
        b.n = 0;
        for (k = 0; k < a.n; k++) {
            frag f = a.v[k];
            size_t pos, end;
            if (f.token >= 0) {
                if ((rc = frag_push(&b, f.token, 0, 0)) != 0)
                    goto done;
                continue;
            }
            pos = f.off;
            end = f.off + f.len;
            for (;;) {
                const char *hit = end - pos >= sp->len
                                      ? memmem(text + pos, end - pos, sp->text, sp->len)
                                      : NULL;
                size_t m, llen, r;
                if (!hit) {
                    if (pos < end && (rc = frag_push(&b, -1, pos, end - pos)) != 0)
                        goto done;
                    break;
                }
                m = (size_t)(hit - text);
                llen = m - pos;
                if (sp->attr & A_LSTRIP)
                    while (llen > 0 && c_isspace(text[pos + llen - 1]))
                        llen--;
                if (llen > 0 && (rc = frag_push(&b, -1, pos, llen)) != 0)
                    goto done;
                if ((rc = frag_push(&b, t->special[s], 0, 0)) != 0)
                    goto done;
                r = m + sp->len;
                if (sp->attr & A_RSTRIP)
                    while (r < end && c_isspace(text[r]))
                        r++;
                pos = r;
                if (pos >= end)
                    break;
            }
        }
        {
            frags x = a;
            a = b;
            b = x;
        }
    }
    *out = a;
    a.v = NULL;
done:
    free(a.v);
    free(b.v);
    return rc;
}

/* =====================================================================
 * SPM (llm_tokenizer_spm_session)
 * ===================================================================== */

typedef struct sym {
    int prev, next;
    size_t off, n; /* bytes text[off, off + n) */
} sym;

/*
 * A pair of adjacent symbols that could merge, for both tokenizers' queues:
 * key = the merged token's score (SPM: highest merges first) or minus the
 * merge's rank (BPE: lowest rank first). A double holds every float score
 * and every int32 rank exactly, so the order is the one llama.cpp's two
 * comparators give.
 */
typedef struct bigram {
    int left, right;
    double key;
    size_t size;
} bigram;

/* max-heap: higher key first, then smaller left */
static int bigram_before(const bigram *x, const bigram *y)
{
    return x->key > y->key || (x->key == y->key && x->left < y->left);
}

typedef struct bheap {
    bigram *v;
    size_t n, cap;
} bheap;

static int bheap_push(bheap *h, bigram b)
{
    size_t i;
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 64;
        bigram *p = realloc(h->v, c * sizeof *p);
        if (!p)
            return QF_ENOMEM;
        h->v = p;
        h->cap = c;
    }
    i = h->n++;
    while (i > 0 && bigram_before(&b, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = b;
    return 0;
}

static bigram bheap_pop(bheap *h)
{
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bigram_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

/* rev_merge: text of each pushed bigram -> (left, right), last one wins */
typedef struct rmerge {
    size_t off, len;
    int left, right;
    int used;
} rmerge;

typedef struct spm {
    const qf_tokenizer *t;
    const char *text;
    sym *s;
    size_t ns;
    bheap q;
    rmerge *rm;
    size_t rmcap, rmn;
} spm;

static rmerge *rm_slot(spm *p, const char *s, size_t len)
{
    size_t mask = p->rmcap - 1, i = (size_t)fnv(s, len, FNV0) & mask;
    for (;; i = (i + 1) & mask) {
        rmerge *r = &p->rm[i];
        if (!r->used || (r->len == len && !memcmp(p->text + r->off, s, len)))
            return r;
    }
}

static int rm_grow(spm *p)
{
    rmerge *old = p->rm;
    size_t oc = p->rmcap, i;
    p->rmcap = oc ? oc * 2 : 64;
    p->rm = calloc(p->rmcap, sizeof *p->rm);
    if (!p->rm) {
        p->rm = old;
        p->rmcap = oc;
        return QF_ENOMEM;
    }
    for (i = 0; i < oc; i++)
        if (old[i].used)
            *rm_slot(p, p->text + old[i].off, old[i].len) = old[i];
    free(old);
    return 0;
}

static int spm_try_add(spm *p, int left, int right)
{
    const char *s;
    size_t len;
    int32_t id;
    bigram b;
    rmerge *r;

    if (left == -1 || right == -1)
        return 0;
    s = p->text + p->s[left].off;
    len = p->s[left].n + p->s[right].n;
    id = find_token(p->t, s, len);
    if (id < 0)
        return 0;
    b.left = left;
    b.right = right;
    b.key = p->t->tok[id].score;
    b.size = len;
    if (bheap_push(&p->q, b))
        return QF_ENOMEM;
    if ((p->rmn + 1) * 2 > p->rmcap && rm_grow(p))
        return QF_ENOMEM;
    r = rm_slot(p, s, len);
    if (!r->used)
        p->rmn++;
    r->used = 1;
    r->off = p->s[left].off;
    r->len = len;
    r->left = left;
    r->right = right;
    return 0;
}

/* byte_to_token: <0xNN>, else the byte as a one-byte token, else (where
 * llama.cpp would throw) the unknown token. */
static int spm_byte(const qf_tokenizer *t, unsigned char c, ids *o, qf_err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[6] = { '<', '0', 'x', hex[c >> 4], hex[c & 15], '>' };
    int32_t id = find_token(t, buf, 6);
    if (id < 0)
        id = find_token(t, (const char *)&c, 1);
    if (id < 0)
        id = t->unk;
    if (id < 0)
        return qf_err_set(err, QF_EFORMAT, "no token for byte 0x%02X (no <0x%02X>, no unknown "
                          "token)", c, c);
    return ids_push(o, id) ? qf_err_set(err, QF_ENOMEM, "out of memory") : 0;
}

static int spm_resegment(spm *p, int si, ids *o, int depth, qf_err *err)
{
    const sym *y = &p->s[si];
    const char *s = p->text + y->off;
    int32_t id = find_token(p->t, s, y->n);
    rmerge *r;
    size_t j;
    int rc;

    if (id >= 0)
        return ids_push(o, id) ? qf_err_set(err, QF_ENOMEM, "out of memory") : 0;
    r = p->rmcap && depth < 1000 ? rm_slot(p, s, y->n) : NULL;
    if (!r || !r->used) {
        for (j = 0; j < y->n; j++)
            if ((rc = spm_byte(p->t, (unsigned char)s[j], o, err)) != 0)
                return rc;
        return 0;
    }
    {
        int l = r->left, rr = r->right;
        if ((rc = spm_resegment(p, l, o, depth + 1, err)) != 0)
            return rc;
        return spm_resegment(p, rr, o, depth + 1, err);
    }
}

static int spm_tokenize(const qf_tokenizer *t, const char *text, size_t len, ids *o, qf_err *err)
{
    spm p;
    size_t off = 0;
    int rc = 0, i;

    memset(&p, 0, sizeof p);
    p.t = t;
    p.text = text;
    if (len == 0)
        return 0;
    if (len > INT32_MAX / 2)
        return qf_err_set(err, QF_ELIMIT, "text too long (%zu bytes)", len);
    p.s = malloc(len * sizeof *p.s);
    if (!p.s)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    while (off < len) {
        sym *y = &p.s[p.ns];
        size_t n = qf_unicode_len_utf8((unsigned char)text[off]);
        y->off = off;
        y->n = n < len - off ? n : len - off;
        off += y->n;
        y->prev = (int)p.ns - 1;
        y->next = off == len ? -1 : (int)p.ns + 1;
        p.ns++;
    }
    for (i = 1; i < (int)p.ns; i++)
        if ((rc = spm_try_add(&p, i - 1, i)) != 0)
            goto oom;
    while (p.q.n) {
        bigram b = bheap_pop(&p.q);
        sym *l = &p.s[b.left], *r = &p.s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            p.s[r->next].prev = b.left;
        if ((rc = spm_try_add(&p, l->prev, b.left)) != 0 ||
            (rc = spm_try_add(&p, b.left, l->next)) != 0)
            goto oom;
    }
    for (i = 0; i != -1; i = p.s[i].next)
        if ((rc = spm_resegment(&p, i, o, 0, err)) != 0)
            goto done;
    goto done;
oom:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    free(p.s);
    free(p.q.v);
    free(p.rm);
    return rc;
}

/* =====================================================================
 * BPE (llm_tokenizer_bpe_session)
 * ===================================================================== */

static int bpe_add(const qf_tokenizer *t, const char *w, const sym *s, bheap *q, int left,
                   int right)
{
    bigram b;
    int32_t rank;
    if (left == -1 || right == -1)
        return 0;
    rank = find_rank(t, w + s[left].off, s[left].n, w + s[right].off, s[right].n);
    if (rank < 0)
        return 0;
    b.key = -(double)rank;
    b.left = left;
    b.right = right;
    b.size = s[left].n + s[right].n;
    return bheap_push(q, b);
}

/* One pre-tokenized, byte-encoded word. */
static int bpe_word(const qf_tokenizer *t, const char *w, size_t len, sym *s, bheap *q, ids *o,
                    qf_err *err)
{
    size_t off = 0, ns = 0;
    int i;

    q->n = 0;
    if (len == 0)
        return 0;
    if (t->ignore_merges && find_token(t, w, len) >= 0) {
        s[0].off = 0;
        s[0].n = len;
        s[0].prev = s[0].next = -1;
        ns = 1;
    } else {
        while (off < len) {
            size_t n = qf_unicode_len_utf8((unsigned char)w[off]);
            s[ns].off = off;
            s[ns].n = n < len - off ? n : len - off;
            off += s[ns].n;
            s[ns].prev = (int)ns - 1;
            s[ns].next = off == len ? -1 : (int)ns + 1;
            ns++;
        }
    }
    for (i = 1; i < (int)ns; i++)
        if (bpe_add(t, w, s, q, i - 1, i))
            return qf_err_set(err, QF_ENOMEM, "out of memory");
    while (q->n) {
        bigram b = bheap_pop(q);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        if (bpe_add(t, w, s, q, l->prev, b.left) || bpe_add(t, w, s, q, b.left, l->next))
            return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    for (i = 0; i < (int)ns; i++) {
        int32_t id;
        size_t j;
        if (s[i].n == 0)
            continue;
        id = find_token(t, w + s[i].off, s[i].n);
        if (id >= 0) {
            if (ids_push(o, id))
                return qf_err_set(err, QF_ENOMEM, "out of memory");
            continue;
        }
        /* each byte of the encoded symbol as a one-byte token, if any */
        for (j = 0; j < s[i].n; j++) {
            id = find_token(t, w + s[i].off + j, 1);
            if (id >= 0 && ids_push(o, id))
                return qf_err_set(err, QF_ENOMEM, "out of memory");
        }
    }
    return 0;
}

static int bpe_tokenize(const qf_tokenizer *t, const char *text, size_t len, ids *o, qf_err *err)
{
    uint32_t *cp = NULL;
    size_t *wl = NULL, nw = 0, ncp, w, start = 0, maxw = 0;
    char *enc = NULL;
    sym *s = NULL;
    bheap q = { NULL, 0, 0 };
    int rc = 0;

    if (len == 0)
        return 0;
    if (!(cp = malloc(len * sizeof *cp)))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    ncp = qf_unicode_decode(text, len, cp);
    if ((rc = qf_pretok_split(t->pretok, cp, ncp, &wl, &nw, err)) != 0)
        goto done;
    for (w = 0; w < nw; w++)
        if (wl[w] > maxw)
            maxw = wl[w];
    /* a code point is at most 4 bytes, each byte at most 2 encoded */
    enc = malloc(maxw * 8 + 1);
    s = malloc((maxw * 8 + 1) * sizeof *s);
    if (!enc || !s) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (w = 0; w < nw; w++) {
        size_t k, n = 0;
        for (k = start; k < start + wl[w]; k++) {
            char u8[4];
            size_t nb = qf_unicode_encode(cp[k], u8), j;
            for (j = 0; j < nb; j++)
                n += qf_unicode_encode(qf_unicode_byte_to_cpt((uint8_t)u8[j]), enc + n);
        }
        start += wl[w];
        if ((rc = bpe_word(t, enc, n, s, &q, o, err)) != 0)
            goto done;
    }
done:
    free(cp);
    free(wl);
    free(enc);
    free(s);
    free(q.v);
    return rc;
}

/* =====================================================================
 * Encode
 * ===================================================================== */

static int encode_ids(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                      int parse_special, ids *o, qf_err *err)
{
    frags f = { NULL, 0, 0 };
    size_t k;
    int rc;

    if ((rc = partition(t, text, len, parse_special, &f)) != 0)
        return qf_err_set(err, rc, "out of memory");
    if (t->type == T_SPM) {
        int prev_special = 1;
        sbuf b = { NULL, 0, 0 };
        if (add_special && t->add_bos && ids_push(o, t->bos))
            goto nomem;
        for (k = 0; k < f.n && !rc; k++) {
            if (f.v[k].token >= 0) {
                if (ids_push(o, f.v[k].token))
                    goto nomem;
                prev_special = 1;
                continue;
            }
            /* " " + the text (when the previous fragment was special), every
             * space as U+2581 */
            b.n = 0;
            if (t->add_space_prefix && prev_special && sb_put(&b, "\xe2\x96\x81", 3))
                goto nomem;
            {
                const char *s = text + f.v[k].off, *e = s + f.v[k].len, *sp;
                while (s < e) {
                    sp = memchr(s, ' ', (size_t)(e - s));
                    if (!sp)
                        sp = e;
                    if (sb_put(&b, s, (size_t)(sp - s)))
                        goto nomem;
                    if (sp < e && sb_put(&b, "\xe2\x96\x81", 3))
                        goto nomem;
                    s = sp < e ? sp + 1 : e;
                }
            }
            rc = spm_tokenize(t, b.v, b.n, o, err);
            prev_special = 0;
        }
        if (!rc && add_special && t->add_eos && ids_push(o, t->eos))
            goto nomem;
        free(b.v);
        free(f.v);
        return rc;
nomem:
        free(b.v);
        free(f.v);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    if (add_special && t->add_bos && ids_push(o, t->bos)) {
        free(f.v);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    for (k = 0; k < f.n && !rc; k++) {
        if (f.v[k].token >= 0)
            rc = ids_push(o, f.v[k].token) ? qf_err_set(err, QF_ENOMEM, "out of memory") : 0;
        else
            rc = bpe_tokenize(t, text + f.v[k].off, f.v[k].len, o, err);
    }
    if (!rc && add_special && t->add_eos && ids_push(o, t->eos))
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
    free(f.v);
    return rc;
}

int64_t qf_tokenizer_encode(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                            int parse_special, int32_t *out, int64_t cap, qf_err *err)
{
    ids o = { NULL, 0, 0 };
    int rc;
    int64_t n;

    if (!t || (!text && len) || cap < 0 || (cap > 0 && !out))
        return qf_err_set(err, QF_EINVAL, "qf_tokenizer_encode: bad arguments");
    rc = encode_ids(t, text, len, add_special, parse_special, &o, err);
    if (rc) {
        free(o.v);
        return rc;
    }
    n = (int64_t)o.n;
    if (cap > 0 && o.n)
        memcpy(out, o.v, (size_t)(n < cap ? n : cap) * sizeof *out);
    free(o.v);
    return n;
}

int qf_tokenizer_encode_alloc(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                              int parse_special, int32_t **out, int64_t *n, qf_err *err)
{
    ids o = { NULL, 0, 0 };
    int rc;

    if (!out || !n)
        return qf_err_set(err, QF_EINVAL, "qf_tokenizer_encode_alloc: bad arguments");
    *out = NULL;
    *n = 0;
    if (!t || (!text && len))
        return qf_err_set(err, QF_EINVAL, "qf_tokenizer_encode_alloc: bad arguments");
    rc = encode_ids(t, text, len, add_special, parse_special, &o, err);
    if (rc == 0 && !o.v && !(o.v = malloc(sizeof *o.v)))
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
    if (rc) {
        free(o.v);
        return rc;
    }
    *out = o.v;
    *n = (int64_t)o.n;
    return 0;
}

/* =====================================================================
 * Decode
 * ===================================================================== */

/* token_to_byte: strtol of the two characters after "<0x" */
static unsigned char token_byte(const token *k)
{
    char h[3] = { 0, 0, 0 };
    char *end;
    long v;
    if (k->len >= 5) {
        h[0] = k->text[3];
        h[1] = k->text[4];
    }
    v = strtol(h, &end, 16);
    return (unsigned char)v;
}

/* Append token id's text as llama.cpp's token_to_piece renders it (lstrip:
 * leading spaces to drop, at most). */
static int render(const qf_tokenizer *t, int32_t id, int special, int lstrip, sbuf *o)
{
    const token *k;
    size_t start = o->n, i;
    uint32_t attr;

    if (id < 0 || id >= t->n)
        return 0;
    k = &t->tok[id];
    attr = k->attr;
    if (!special && (attr & (A_UNKNOWN | A_CONTROL)))
        return 0;
    if (attr & (A_UNKNOWN | A_CONTROL | A_USER_DEFINED)) {
        if (sb_put(o, k->text, k->len))
            return QF_ENOMEM;
    } else if (attr & A_NORMAL) {
        if (t->type == T_SPM) {
            const char *s = k->text, *e = s + k->len;
            while (s < e) {
                const char *m = s;
                while (m + 2 < e && !(m[0] == '\xe2' && m[1] == '\x96' && m[2] == '\x81'))
                    m++;
                if (m + 2 >= e) {
                    if (sb_put(o, s, (size_t)(e - s)))
                        return QF_ENOMEM;
                    break;
                }
                if (sb_put(o, s, (size_t)(m - s)) || sb_put(o, " ", 1))
                    return QF_ENOMEM;
                s = m + 3;
            }
        } else {
            /* GPT-2 characters back to bytes */
            uint32_t *cp = malloc((k->len ? k->len : 1) * sizeof *cp);
            size_t n;
            if (!cp)
                return QF_ENOMEM;
            n = qf_unicode_decode(k->text, k->len, cp);
            for (i = 0; i < n; i++) {
                int b = qf_unicode_cpt_to_byte(cp[i]);
                unsigned char c = (unsigned char)b;
                if (b >= 0) {
                    if (sb_put(o, &c, 1)) {
                        free(cp);
                        return QF_ENOMEM;
                    }
                } else {
                    /* llama_decode_text's marker for a character outside the map */
                    char u8[4], hx[9];
                    size_t nb = qf_unicode_encode(cp[i], u8), j;
                    int bad = sb_put(o, "[UNK_BYTE_0x", 12);
                    for (j = 0; j < nb && !bad; j++) {
                        snprintf(hx, sizeof hx, "%02x", (unsigned char)u8[j]);
                        bad = sb_put(o, hx, 2);
                    }
                    if (bad || sb_put(o, k->text, k->len) || sb_put(o, "]", 1)) {
                        free(cp);
                        return QF_ENOMEM;
                    }
                }
            }
            free(cp);
        }
    } else if (attr & A_BYTE) {
        unsigned char c = token_byte(k);
        if (sb_put(o, &c, 1))
            return QF_ENOMEM;
    }
    /* skip up to lstrip leading spaces */
    for (i = 0; (int)i < lstrip && start < o->n && o->v[start] == ' '; i++) {
        memmove(o->v + start, o->v + start + 1, o->n - start - 1);
        o->n--;
        o->v[o->n] = '\0';
    }
    return 0;
}

/* detokenize's clean_up_tokenization_spaces passes */
static size_t clean_spaces(char *text, size_t total)
{
    size_t i, t1, t2, t3;

    t1 = total;
    total = total ? 1 : 0;
    for (i = 1; i < t1; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            total--;
        text[total++] = x;
    }
    t2 = total;
    total = total ? 1 : 0;
    for (i = 1; i < t2; i++) {
        char x = text[i];
        if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    t3 = total;
    total = total ? 1 : 0;
    for (i = 1; i < t3; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm')
                total--;
            else if (i + 2 < t3) {
                char x2 = text[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e'))
                    total--;
            }
        }
        text[total++] = x;
    }
    return total;
}

static int64_t finish(sbuf *b, char *buf, size_t cap)
{
    int64_t n = (int64_t)b->n;
    if (cap > 0 && buf) {
        size_t c = b->n < cap ? b->n : cap;
        memcpy(buf, b->v ? b->v : "", c);
    }
    free(b->v);
    return n;
}

int64_t qf_tokenizer_decode_ex(const qf_tokenizer *t, const int32_t *tokens, int64_t n,
                               unsigned flags, char *buf, size_t cap, qf_err *err)
{
    sbuf b = { NULL, 0, 0 };
    int remove_space, special = (flags & QF_TOKENIZER_DECODE_SPECIAL) != 0;
    int64_t i;

    if (!t || n < 0 || (n > 0 && !tokens) || (cap > 0 && !buf))
        return qf_err_set(err, QF_EINVAL, "qf_tokenizer_decode: bad arguments");
    remove_space = t->add_space_prefix;
    if ((flags & QF_TOKENIZER_DECODE_REMOVE_SPECIAL) && t->add_bos && n > 0 &&
        tokens[0] == t->bos) {
        remove_space = 0;
        n--;
        tokens++;
    }
    if ((flags & QF_TOKENIZER_DECODE_REMOVE_SPECIAL) && t->add_eos && n > 0 &&
        tokens[n - 1] == t->eos)
        n--;
    if (sb_put(&b, "", 0))
        goto nomem;
    for (i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= t->n) {
            free(b.v);
            return qf_err_set(err, QF_EINVAL, "token id %d is not in the vocabulary (%d tokens)",
                              tokens[i], t->n);
        }
        if (render(t, tokens[i], special, remove_space, &b))
            goto nomem;
        remove_space = 0;
    }
    if (t->clean_spaces)
        b.n = clean_spaces(b.v, b.n);
    return finish(&b, buf, cap);
nomem:
    free(b.v);
    return qf_err_set(err, QF_ENOMEM, "out of memory");
}

int64_t qf_tokenizer_decode(const qf_tokenizer *t, const int32_t *tokens, int64_t n, char *buf,
                            size_t cap, qf_err *err)
{
    return qf_tokenizer_decode_ex(t, tokens, n, 0, buf, cap, err);
}

int64_t qf_tokenizer_token_to_piece(const qf_tokenizer *t, int32_t id, int special, char *buf,
                                    size_t cap, qf_err *err)
{
    sbuf b = { NULL, 0, 0 };

    if (!t || id < 0 || id >= t->n || (cap > 0 && !buf))
        return qf_err_set(err, QF_EINVAL, "token id %d is not in the vocabulary", id);
    if (sb_put(&b, "", 0) || render(t, id, special, 0, &b)) {
        free(b.v);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    return finish(&b, buf, cap);
}
