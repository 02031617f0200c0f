/*
 * convert/vocab.c - a model folder's tokenizer as tokenizer.ggml.* keys: the
 * folder logic, gguf-py's SpecialVocab, and the GGUF writing.
 *
 * What llama.cpp b4747's convert_hf_to_gguf.py does for a LLaMA-family
 * folder (LlamaModel.set_vocab), and what we do:
 *
 *   tokenizer.model present  -> _set_vocab_sentencepiece   (vocab_spm.c)
 *   else tokenizer.json, BPE with byte_fallback and a Sequence decoder
 *                            -> _set_vocab_llama_hf        (vocab_bpe.c)
 *   else tokenizer.json, BPE -> _set_vocab_gpt2            (vocab_bpe.c)
 *
 * then SpecialVocab(dir, load_merges = gpt2 path, n_vocab = len(tokens) on
 * the two "llama" paths) adds, in this order:
 *
 *   tokenizer.ggml.merges          gpt2 only: tokenizer.json model.merges
 *                                  (strings, or [a, b] pairs joined with a
 *                                  space after spaces become U+0120), else
 *                                  merges.txt
 *   tokenizer.ggml.<kind>_token_id UINT32, one per kind found, in the order
 *                                  found: first each kind (bos, eos, unk, sep,
 *                                  pad, cls, mask) whose tokenizer_config.json
 *                                  "<kind>_token" content is the content of
 *                                  an entry of tokenizer.json's added_tokens
 *                                  (that entry's id); then, for kinds still
 *                                  unset, config.json "<kind>_token_id". Ids
 *                                  >= the token count are skipped on the
 *                                  llama paths, a negative id is an error.
 *   tokenizer.ggml.add_bos_token   BOOL, tokenizer_config.json add_bos_token
 *   tokenizer.ggml.add_eos_token   BOOL, tokenizer_config.json add_eos_token
 *   tokenizer.chat_template        tokenizer_config.json chat_template: a
 *                                  string, or a list of {name, template}
 *                                  (then tokenizer.chat_template.<name> for
 *                                  each name but "default", the list of names
 *                                  as tokenizer.chat_templates, and the
 *                                  "default" one as tokenizer.chat_template)
 *
 * special_tokens_map.json and generation_config.json are not read by this
 * SpecialVocab (stories260K's golden file confirms it: its unk_token is in
 * both tokenizer_config.json and special_tokens_map.json, yet no
 * unknown_token_id was written, because the folder has no tokenizer.json).
 *
 * One addition from later gguf-py versions: when tokenizer.json has a
 * post_processor (TemplateProcessing or RobertaProcessing), add_bos/add_eos
 * are first taken from it; tokenizer_config.json's flags then override.
 * docs/tokenizers.md lists this and the other deliberate differences.
 */
#include "convert/vocab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/vocab_impl.h"
#include "formats/file.h"

#define SHOW 60 /* at most this many bytes of a hostile string go into a message */

static const char *const SP_NAME[QF_SP_COUNT] = { "bos", "eos", "unk", "sep", "pad", "cls", "mask" };
static const char *const SP_KEY[QF_SP_COUNT] = {
    "tokenizer.ggml.bos_token_id",       "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",   "tokenizer.ggml.seperator_token_id", /* sic (ggml) */
    "tokenizer.ggml.padding_token_id",   "tokenizer.ggml.cls_token_id",
    "tokenizer.ggml.mask_token_id",
};

/* =====================================================================
 * Small helpers
 * ===================================================================== */

cJSON *qf_vocab_json_get(const cJSON *obj, const char *key)
{
    cJSON *it, *found = NULL;

    if (!cJSON_IsObject(obj))
        return NULL;
    for (it = obj->child; it; it = it->next)
        if (it->string && strcmp(it->string, key) == 0)
            found = it;
    return found;
}

int qf_vocab_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(v))
        return 0;
    d = v->valuedouble;
    /* 2^53: every integer up to here is exact in a double */
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
        return 0;
    if ((int64_t)d < lo || (int64_t)d > hi)
        return 0;
    *out = (int64_t)d;
    return 1;
}

int qf_vocab_json_truthy(const cJSON *v)
{
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
        return 0;
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0.0;
    if (cJSON_IsString(v))
        return v->valuestring && v->valuestring[0] != '\0';
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return v->child != NULL;
    return 1;
}

const char *qf_vocab_show(const char *s, uint64_t len, char *buf, size_t cap)
{
    size_t i, o = 0;

    for (i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == SHOW) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
    }
    buf[o] = '\0';
    return buf;
}

char *qf_vocab_unmark_spaces(const char *s, uint64_t len, uint64_t *out_len)
{
    char *r = malloc((size_t)len + 1);
    uint64_t i, o = 0;

    if (!r)
        return NULL;
    for (i = 0; i < len; i++) {
        if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            r[o++] = ' ';
            i += 2;
        } else {
            r[o++] = s[i];
        }
    }
    r[o] = '\0';
    *out_len = o;
    return r;
}

static int starts(const char *s, uint64_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s, p, n) == 0;
}

static int ends(const char *s, uint64_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s + len - n, p, n) == 0;
}

static int equals(const char *s, uint64_t len, const char *p)
{
    return strlen(p) == len && memcmp(s, p, (size_t)len) == 0;
}

int qf_vocab_looks_special(const char *s, uint64_t len)
{
    /* convert_hf_to_gguf.py's does_token_look_special(): command-r,
     * deepseek-coder and gemma mark some control tokens as not special */
    if (equals(s, len, "<pad>") || equals(s, len, "<mask>") || equals(s, len, "<2mass>") ||
        equals(s, len, "[@BOS@]"))
        return 1;
    if (starts(s, len, "<|") && ends(s, len, "|>"))
        return 1;
    if (starts(s, len, "<\xEF\xBD\x9C") && ends(s, len, "\xEF\xBD\x9C>")) /* <｜ ... ｜> */
        return 1;
    if (starts(s, len, "<unused") && ends(s, len, ">"))
        return 1;
    return 0;
}

/* =====================================================================
 * String -> id map
 * ===================================================================== */

static uint64_t hash_bytes(const char *s, uint64_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    uint64_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int qf_vmap_reserve(qf_vmap *m, uint64_t n)
{
    uint64_t cap = 16, i, j;
    const char **k;
    uint64_t *kl, *val;

    while (cap < 2 * n + 2)
        cap <<= 1;
    if (cap <= m->cap)
        return 0;
    k = calloc((size_t)cap, sizeof *k);
    kl = calloc((size_t)cap, sizeof *kl);
    val = calloc((size_t)cap, sizeof *val);
    if (!k || !kl || !val) {
        free(k);
        free(kl);
        free(val);
        return QF_ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        if (!m->key[i])
            continue;
        j = hash_bytes(m->key[i], m->klen[i]) & (cap - 1);
        while (k[j])
            j = (j + 1) & (cap - 1);
        k[j] = m->key[i];
        kl[j] = m->klen[i];
        val[j] = m->val[i];
    }
    free(m->key);
    free(m->klen);
    free(m->val);
    m->key = k;
    m->klen = kl;
    m->val = val;
    m->cap = cap;
    return 0;
}

int qf_vmap_put(qf_vmap *m, const char *key, uint64_t klen, uint64_t val, uint64_t *old)
{
    uint64_t j;

    if (2 * (m->n + 1) + 2 > m->cap && qf_vmap_reserve(m, m->n + 1 + m->n / 2) != 0)
        return QF_ENOMEM;
    j = hash_bytes(key, klen) & (m->cap - 1);
    while (m->key[j]) {
        if (m->klen[j] == klen && memcmp(m->key[j], key, (size_t)klen) == 0) {
            if (old)
                *old = m->val[j];
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->key[j] = key;
    m->klen[j] = klen;
    m->val[j] = val;
    m->n++;
    return 1;
}

int qf_vmap_get(const qf_vmap *m, const char *key, uint64_t klen, uint64_t *val)
{
    uint64_t j;

    if (!m->cap)
        return 0;
    j = hash_bytes(key, klen) & (m->cap - 1);
    while (m->key[j]) {
        if (m->klen[j] == klen && memcmp(m->key[j], key, (size_t)klen) == 0) {
            *val = m->val[j];
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void qf_vmap_free(qf_vmap *m)
{
    if (!m)
        return;
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* =====================================================================
 * JSON files
 * ===================================================================== */

/*
 * cJSON turns the escape \u0000 into a NUL that ends the C string, silently
 * cutting a token; Python keeps it. Refuse such text. Returns the offset of
 * the escape, or -1.
 */
static int64_t find_nul_escape(const char *t, uint64_t n)
{
    uint64_t i;
    int in_str = 0;

    for (i = 0; i < n; i++) {
        char c = t[i];
        if (!in_str) {
            if (c == '"')
                in_str = 1;
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (t[i + 1] == 'u' && i + 5 < n && memcmp(t + i + 2, "0000", 4) == 0)
                return (int64_t)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

int qf_vocab_json_load(const char *path, cJSON **out, qf_err *err)
{
    qf_map *m = NULL;
    cJSON *root = NULL;
    const char *text, *end = NULL;
    uint64_t n;
    int64_t at;
    int rc;

    *out = NULL;
    rc = qf_map_open(path, &m, err);
    if (rc)
        return rc;
    text = (const char *)qf_map_data(m);
    n = qf_map_size(m);
    if (n > QF_VOCAB_MAX_FILE) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: %" PRIu64 " bytes is more than a JSON file here may "
                        "hold (%" PRIu64 ")", path, n, QF_VOCAB_MAX_FILE);
        goto done;
    }
    if (n == 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid JSON: the file is empty", path);
        goto done;
    }
    if (!qf_utf8_valid(text, (size_t)n)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid UTF-8", path);
        goto done;
    }
    at = find_nul_escape(text, n);
    if (at >= 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: byte %" PRId64 ": the escape \\u0000 is not "
                        "supported in a string", path, at);
        goto done;
    }
    root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    if (!root) {
        uint64_t pos = end && end >= text && end <= text + n ? (uint64_t)(end - text) : 0;
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid JSON (error near byte %" PRIu64 ")", path,
                        pos);
        goto done;
    }
    while (end && end < text + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end && end < text + n) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid JSON: extra data at byte %" PRIu64, path,
                        (uint64_t)(end - text));
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: the top level is not a JSON object", path);
        goto done;
    }
    *out = root;
    root = NULL;
    rc = 0;
done:
    cJSON_Delete(root);
    qf_map_close(m);
    return rc;
}

/* Load dir/name into *out if it is a file (else *out = NULL, returns 0). */
static int load_optional(const char *dir, const char *name, char **path_out, cJSON **out,
                         qf_err *err)
{
    char *p = qf_path_join(dir, name);

    *out = NULL;
    *path_out = p;
    if (!p)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
    if (!qf_path_is_regular(p))
        return 0;
    return qf_vocab_json_load(p, out, err);
}

/* =====================================================================
 * The vocab object
 * ===================================================================== */

int qf_vocab_alloc(qf_vocab *v, uint64_t n, int with_scores, qf_err *err)
{
    if (n == 0 || n > QF_VOCAB_MAX_TOKENS)
        return qf_err_set(err, QF_ELIMIT, "%" PRIu64 " tokens: a vocabulary must have 1 to %u",
                          n, QF_VOCAB_MAX_TOKENS);
    v->tok = calloc((size_t)n, sizeof *v->tok);
    v->type = calloc((size_t)n, sizeof *v->type);
    v->score = with_scores ? calloc((size_t)n, sizeof *v->score) : NULL;
    if (!v->tok || !v->type || (with_scores && !v->score))
        return qf_err_set(err, QF_ENOMEM, "out of memory for %" PRIu64 " tokens", n);
    v->n = n;
    return 0;
}

int qf_vocab_set_tok(qf_vocab *v, uint64_t id, const char *s, uint64_t len, qf_err *err)
{
    char *c = malloc((size_t)len + 1);

    if (!c)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if (len)
        memcpy(c, s, (size_t)len);
    c[len] = '\0';
    free(v->tok[id].s);
    v->tok[id].s = c;
    v->tok[id].len = len;
    return 0;
}

int qf_vocab_set_pad(qf_vocab *v, uint64_t id, qf_err *err)
{
    char buf[40];
    int k = snprintf(buf, sizeof buf, "[PAD%" PRIu64 "]", id);
    return qf_vocab_set_tok(v, id, buf, (uint64_t)k, err);
}

static void free_strs(qf_vstr *a, uint64_t n)
{
    uint64_t i;

    if (!a)
        return;
    for (i = 0; i < n; i++)
        free(a[i].s);
    free(a);
}

void qf_vocab_free(qf_vocab *v)
{
    if (!v)
        return;
    free_strs(v->tok, v->n);
    free(v->score);
    free(v->type);
    free_strs(v->merge, v->n_merges);
    free(v->chat.s);
    free_strs(v->named_name, v->n_named);
    free_strs(v->named_tmpl, v->n_named);
    free(v);
}

uint64_t qf_vocab_size(const qf_vocab *v)
{
    return v ? v->n : 0;
}

const char *qf_vocab_model(const qf_vocab *v)
{
    return v ? v->model : NULL;
}

/* =====================================================================
 * SpecialVocab
 * ===================================================================== */

/* _set_special_token(kind, value): value from `src` (a file name). */
static int set_special(qf_vocab *v, int kind, const cJSON *val, int limit, const char *src,
                       qf_err *err)
{
    double d;
    int i;

    if (!cJSON_IsNumber(val))
        return 0; /* not an int: ignored, as isinstance(tid, int) does */
    d = val->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
        return 0; /* a fraction (or out of any sane range): not an int */
    if (d < 0)
        return qf_err_set(err, QF_EFORMAT, "%s: invalid value for special token type %s: %"
                          PRId64, src, SP_NAME[kind], (int64_t)d);
    if (limit && (uint64_t)d >= v->n)
        return 0; /* gguf-py warns "out of range" and skips */
    for (i = 0; i < v->n_ids; i++)
        if (v->id_kind[i] == kind)
            return 0;
    if (d > (double)UINT32_MAX)
        return qf_err_set(err, QF_EFORMAT, "%s: special token type %s: id %" PRId64 " does not "
                          "fit in UINT32", src, SP_NAME[kind], (int64_t)d);
    v->id_kind[v->n_ids] = kind;
    v->id_val[v->n_ids] = (uint32_t)d;
    v->n_ids++;
    return 0;
}

static void set_add(qf_vocab *v, int kind, int val)
{
    int i;

    for (i = 0; i < v->n_add; i++) {
        if (v->add_kind[i] == kind) {
            v->add_val[i] = val;
            return;
        }
    }
    v->add_kind[v->n_add] = kind;
    v->add_val[v->n_add] = val;
    v->n_add++;
}

/* The content string of a "<kind>_token" entry: a string or {"content": s}. */
static const char *token_content(const cJSON *e)
{
    if (cJSON_IsString(e))
        return e->valuestring;
    if (cJSON_IsObject(e)) {
        const cJSON *c = qf_vocab_json_get(e, "content");
        if (cJSON_IsString(c))
            return c->valuestring;
    }
    return NULL;
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The SpecialToken id of a TemplateProcessing item, or NULL. */
static const char *template_special(const cJSON *item)
{
    const cJSON *st = qf_vocab_json_get(item, "SpecialToken");
    const cJSON *id = qf_vocab_json_get(st, "id");
    return cJSON_IsString(id) && id->valuestring[0] ? id->valuestring : NULL;
}

/*
 * add_bos/add_eos from tokenizer.json's post_processor, as later gguf-py
 * versions read it (b4747 did not; tokenizer_config.json overrides both).
 */
static void add_from_post_processor(qf_vocab *v, const cJSON *tj, const cJSON *tcfg)
{
    const cJSON *pp = qf_vocab_json_get(tj, "post_processor");
    const cJSON *list, *p;
    const char *bos = token_content(qf_vocab_json_get(tcfg, "bos_token"));
    const char *eos = token_content(qf_vocab_json_get(tcfg, "eos_token"));
    const char *cls = token_content(qf_vocab_json_get(tcfg, "cls_token"));

    if (!cJSON_IsObject(pp))
        return;
    list = qf_vocab_json_get(pp, "processors");
    if (!cJSON_IsArray(list))
        list = NULL;
    for (p = list ? list->child : pp; p; p = list ? p->next : NULL) {
        const cJSON *type = qf_vocab_json_get(p, "type");
        const cJSON *single;
        const char *first, *last;
        int n;

        if (!cJSON_IsString(type))
            continue;
        if (strcmp(type->valuestring, "RobertaProcessing") == 0) {
            set_add(v, QF_SP_BOS, 1);
            set_add(v, QF_SP_EOS, 1);
            continue;
        }
        if (strcmp(type->valuestring, "TemplateProcessing") != 0)
            continue;
        single = qf_vocab_json_get(p, "single");
        n = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
        if (n <= 1)
            continue;
        first = template_special(cJSON_GetArrayItem(single, 0));
        if (first) {
            if (!tcfg)
                bos = first;
            set_add(v, QF_SP_BOS, same(first, bos) || same(first, cls));
        }
        last = template_special(cJSON_GetArrayItem(single, n - 1));
        if (last) {
            if (!tcfg)
                eos = last;
            set_add(v, QF_SP_EOS, same(last, eos));
        }
    }
}

/* Keep only [A-Za-z0-9], one '_' for any other code point (Python iterates
 * characters, not bytes). */
static char *filter_name(const char *s, uint64_t *len)
{
    size_t n = strlen(s), i, o = 0;
    char *r = malloc(n + 1);

    if (!r)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            r[o++] = (char)c;
        else if ((c & 0xC0) != 0x80) /* the first byte of a code point */
            r[o++] = '_';
    }
    r[o] = '\0';
    *len = o;
    return r;
}

static int dup_str(qf_vstr *dst, const char *s, qf_err *err)
{
    size_t n = strlen(s);

    dst->s = malloc(n + 1);
    if (!dst->s)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    memcpy(dst->s, s, n + 1);
    dst->len = n;
    return 0;
}

/* gw.add_chat_template(value), with value a string or a list of choices. */
static int chat_template(qf_vocab *v, const cJSON *ct, const char *src, qf_err *err)
{
    const cJSON *c;
    const char *deflt = NULL;
    int n = 0, rc;

    if (cJSON_IsString(ct))
        return dup_str(&v->chat, ct->valuestring, err);
    if (!cJSON_IsArray(ct))
        return 0; /* gguf-py: "Bad type for chat_template field" - ignored */
    n = cJSON_GetArraySize(ct);
    v->named_name = calloc((size_t)n + 1, sizeof *v->named_name);
    v->named_tmpl = calloc((size_t)n + 1, sizeof *v->named_tmpl);
    if (!v->named_name || !v->named_tmpl)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    for (c = ct->child; c; c = c->next) {
        const cJSON *name = qf_vocab_json_get(c, "name");
        const cJSON *tmpl = qf_vocab_json_get(c, "template");
        uint64_t flen, i;
        char *fname;

        if (!cJSON_IsObject(c))
            return qf_err_set(err, QF_EFORMAT, "%s: chat_template: a list entry is not an "
                              "object", src);
        if (name && !cJSON_IsString(name))
            return qf_err_set(err, QF_EFORMAT, "%s: chat_template: a \"name\" is not a string",
                              src);
        if (!name || !name->valuestring[0] || !tmpl || cJSON_IsNull(tmpl))
            continue;
        if (!cJSON_IsString(tmpl))
            return qf_err_set(err, QF_EFORMAT, "%s: chat_template \"%s\": the template is not a "
                              "string", src, name->valuestring);
        fname = filter_name(name->valuestring, &flen);
        if (!fname)
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        if (strcmp(fname, "default") == 0) {
            free(fname);
            deflt = tmpl->valuestring;
            continue;
        }
        for (i = 0; i < v->n_named; i++) {
            if (strcmp(v->named_name[i].s, fname) == 0) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: chat_template: two templates are named "
                                "\"%s\"", src, fname);
                free(fname);
                return rc;
            }
        }
        v->named_name[v->n_named].s = fname;
        v->named_name[v->n_named].len = flen;
        rc = dup_str(&v->named_tmpl[v->n_named], tmpl->valuestring, err);
        v->n_named++;
        if (rc)
            return rc;
    }
    if (deflt)
        return dup_str(&v->chat, deflt, err);
    return 0;
}

/* One merge "a b" from an [a, b] pair: spaces inside a part become U+0120. */
static int merge_from_pair(qf_vstr *dst, const char *a, const char *b, qf_err *err)
{
    size_t na = strlen(a), nb = strlen(b), i, o = 0;
    char *r = malloc(2 * (na + nb) + 2);

    if (!r)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    for (i = 0; i < na; i++) {
        if (a[i] == ' ') {
            r[o++] = (char)0xC4;
            r[o++] = (char)0xA0;
        } else {
            r[o++] = a[i];
        }
    }
    r[o++] = ' ';
    for (i = 0; i < nb; i++) {
        if (b[i] == ' ') {
            r[o++] = (char)0xC4;
            r[o++] = (char)0xA0;
        } else {
            r[o++] = b[i];
        }
    }
    r[o] = '\0';
    dst->s = r;
    dst->len = o;
    return 0;
}

static int merges_from_json(qf_vocab *v, const cJSON *tj, const char *src, qf_err *err)
{
    const cJSON *merges = qf_vocab_json_get(qf_vocab_json_get(tj, "model"), "merges");
    const cJSON *m;
    uint64_t n, i = 0;
    int pairs, rc;

    if (!cJSON_IsArray(merges) || !merges->child)
        return 0;
    pairs = cJSON_IsArray(merges->child);
    if (!pairs && !cJSON_IsString(merges->child))
        return qf_err_set(err, QF_EFORMAT, "%s: model.merges: unknown format (neither strings nor "
                          "pairs of strings)", src);
    n = (uint64_t)cJSON_GetArraySize(merges);
    v->merge = calloc((size_t)n, sizeof *v->merge);
    if (!v->merge)
        return qf_err_set(err, QF_ENOMEM, "out of memory for %" PRIu64 " merges", n);
    for (m = merges->child; m; m = m->next, i++) {
        if (pairs) {
            const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
            if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(a) ||
                !cJSON_IsString(b))
                return qf_err_set(err, QF_EFORMAT, "%s: model.merges[%" PRIu64 "]: not a pair of "
                                  "strings", src, i);
            rc = merge_from_pair(&v->merge[i], a->valuestring, b->valuestring, err);
        } else {
            if (!cJSON_IsString(m))
                return qf_err_set(err, QF_EFORMAT, "%s: model.merges[%" PRIu64 "]: not a string",
                                  src, i);
            rc = dup_str(&v->merge[i], m->valuestring, err);
        }
        v->n_merges = i + 1;
        if (rc)
            return rc;
    }
    return 0;
}

/* Python's str.isspace() for the ASCII range (merges.txt is byte-level text,
 * whose alphabet has no other whitespace). */
static int is_ws(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* _try_load_merges_txt: one "a b" per line, a first line starting with '#'
 * skipped, blank lines skipped, lines without exactly two fields ignored. */
static int merges_from_txt(qf_vocab *v, const char *dir, qf_err *err)
{
    char *path = qf_path_join(dir, "merges.txt");
    qf_map *m = NULL;
    const char *t;
    uint64_t n, i, lines = 0, line_no = 0, cap = 0;
    int rc = 0;

    if (!path)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if (!qf_path_is_regular(path))
        goto done;
    rc = qf_map_open(path, &m, err);
    if (rc)
        goto done;
    t = (const char *)qf_map_data(m);
    n = qf_map_size(m);
    if (n > QF_VOCAB_MAX_FILE || (n && !qf_utf8_valid(t, (size_t)n))) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %s", path,
                        n > QF_VOCAB_MAX_FILE ? "too large" : "not valid UTF-8");
        goto done;
    }
    for (i = 0; i < n; i++)
        if (t[i] == '\n')
            lines++;
    cap = lines + 1;
    v->merge = calloc((size_t)cap, sizeof *v->merge);
    if (!v->merge) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n;) {
        uint64_t s = i, e, a0, a1, b0, b1;
        char *r;

        while (i < n && t[i] != '\n')
            i++;
        e = i++;
        line_no++;
        while (s < e && is_ws((unsigned char)t[s]))
            s++;
        while (e > s && is_ws((unsigned char)t[e - 1]))
            e--;
        if (line_no == 1 && s < e && t[s] == '#')
            continue;
        if (s == e)
            continue;
        a0 = s;
        a1 = a0;
        while (a1 < e && !is_ws((unsigned char)t[a1]))
            a1++;
        b0 = a1;
        while (b0 < e && is_ws((unsigned char)t[b0]))
            b0++;
        b1 = b0;
        while (b1 < e && !is_ws((unsigned char)t[b1]))
            b1++;
        if (b0 == e || b1 != e)
            continue; /* not exactly two fields: gguf-py warns and skips */
        r = malloc((size_t)(a1 - a0 + b1 - b0 + 2));
        if (!r) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(r, t + a0, (size_t)(a1 - a0));
        r[a1 - a0] = ' ';
        memcpy(r + (a1 - a0) + 1, t + b0, (size_t)(b1 - b0));
        r[a1 - a0 + 1 + b1 - b0] = '\0';
        v->merge[v->n_merges].s = r;
        v->merge[v->n_merges].len = a1 - a0 + 1 + b1 - b0;
        v->n_merges++;
    }
done:
    qf_map_close(m);
    free(path);
    return rc;
}

/*
 * SpecialVocab(dir, load_merges, n_vocab): everything after the token list.
 * tj, tcfg, cfg may be NULL (file absent). limit: ids must be < v->n.
 */
static int special_vocab(qf_vocab *v, const char *dir, const cJSON *tj, const char *tj_path,
                         const cJSON *tcfg, const char *tcfg_path, const cJSON *cfg,
                         const char *cfg_path, int limit, int load_merges, qf_err *err)
{
    const cJSON *added = tj ? qf_vocab_json_get(tj, "added_tokens") : NULL;
    int k, rc;

    if (tj && load_merges) {
        rc = merges_from_json(v, tj, tj_path, err);
        if (rc)
            return rc;
    }
    if (added && !cJSON_IsArray(added))
        return qf_err_set(err, QF_EFORMAT, "%s: added_tokens is not a list", tj_path);
    if (tj)
        add_from_post_processor(v, tj, tcfg);
    if (tcfg) {
        rc = chat_template(v, qf_vocab_json_get(tcfg, "chat_template"), tcfg_path, err);
        if (rc)
            return rc;
        for (k = 0; k < QF_SP_COUNT; k++) {
            char key[32];
            const cJSON *e, *a;
            const char *content;

            snprintf(key, sizeof key, "add_%s_token", SP_NAME[k]);
            e = qf_vocab_json_get(tcfg, key);
            if (cJSON_IsBool(e) && (k == QF_SP_BOS || k == QF_SP_EOS))
                set_add(v, k, cJSON_IsTrue(e)); /* gguf-py has no handler for the others */
            snprintf(key, sizeof key, "%s_token", SP_NAME[k]);
            content = token_content(qf_vocab_json_get(tcfg, key));
            if (!content || !added)
                continue;
            for (a = added->child; a; a = a->next) {
                if (same(token_content(qf_vocab_json_get(a, "content")), content)) {
                    rc = set_special(v, k, qf_vocab_json_get(a, "id"), limit, tj_path, err);
                    if (rc)
                        return rc;
                    break; /* the first match only */
                }
            }
        }
    }
    if (cfg) {
        for (k = 0; k < QF_SP_COUNT; k++) {
            char key[32];
            snprintf(key, sizeof key, "%s_token_id", SP_NAME[k]);
            rc = set_special(v, k, qf_vocab_json_get(cfg, key), limit, cfg_path, err);
            if (rc)
                return rc;
        }
    }
    if (load_merges && v->n_merges == 0)
        return merges_from_txt(v, dir, err);
    return 0;
}

/* =====================================================================
 * Loading a folder
 * ===================================================================== */

int qf_vocab_load(const char *dir, uint64_t n_vocab, qf_vocab **out, qf_err *err)
{
    qf_vocab *v = NULL;
    cJSON *tj = NULL, *tcfg = NULL, *cfg = NULL, *stmap = NULL;
    char *tj_path = NULL, *tcfg_path = NULL, *cfg_path = NULL, *stmap_path = NULL;
    char *model_path = NULL;
    int rc, limit = 1, load_merges = 0, kind;

    if (out)
        *out = NULL;
    if (!dir || !out)
        return qf_err_set(err, QF_EINVAL, "qf_vocab_load: NULL argument");
    if (n_vocab > QF_VOCAB_MAX_TOKENS)
        return qf_err_set(err, QF_ELIMIT, "%s: vocab_size %" PRIu64 " is more than %u", dir,
                          n_vocab, QF_VOCAB_MAX_TOKENS);
    v = calloc(1, sizeof *v);
    model_path = qf_path_join(dir, "tokenizer.model");
    if (!v || !model_path) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    rc = load_optional(dir, "tokenizer_config.json", &tcfg_path, &tcfg, err);
    if (!rc)
        rc = load_optional(dir, "tokenizer.json", &tj_path, &tj, err);
    if (!rc)
        rc = load_optional(dir, "config.json", &cfg_path, &cfg, err);
    if (rc)
        goto done;

    if (qf_path_is_regular(model_path)) {
        rc = qf_vocab_load_spm(v, dir, tcfg, tcfg_path, n_vocab, err);
    } else if (tj) {
        kind = qf_vocab_hf_kind(tj, tj_path, err);
        if (kind < 0) {
            rc = kind;
        } else if (kind == 1) {
            rc = load_optional(dir, "special_tokens_map.json", &stmap_path, &stmap, err);
            if (!rc)
                rc = qf_vocab_load_llama_hf(v, tj, tj_path, tcfg, stmap, n_vocab, err);
        } else {
            limit = 0;
            load_merges = 1;
            rc = qf_vocab_load_gpt2(v, tj, tj_path, tcfg, n_vocab, err);
        }
    } else {
        rc = qf_err_set(err, QF_ENOTFOUND, "%s: no tokenizer.model or tokenizer.json", dir);
    }
    if (rc)
        goto done;
    rc = special_vocab(v, dir, tj, tj_path, tcfg, tcfg_path, cfg, cfg_path, limit, load_merges,
                       err);
    if (rc)
        goto done;
    *out = v;
    v = NULL;
done:
    qf_vocab_free(v);
    cJSON_Delete(tj);
    cJSON_Delete(tcfg);
    cJSON_Delete(cfg);
    cJSON_Delete(stmap);
    free(tj_path);
    free(tcfg_path);
    free(cfg_path);
    free(stmap_path);
    free(model_path);
    return rc;
}

/* =====================================================================
 * Writing
 * ===================================================================== */

static int set_strs(qf_gguf_writer *w, const char *key, const qf_vstr *a, uint64_t n, qf_err *err)
{
    const char **p = malloc((size_t)(n ? n : 1) * sizeof *p);
    uint64_t *l = malloc((size_t)(n ? n : 1) * sizeof *l);
    uint64_t i;
    int rc;

    if (!p || !l) {
        free(p);
        free(l);
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key);
    }
    for (i = 0; i < n; i++) {
        p[i] = a[i].s ? a[i].s : "";
        l[i] = a[i].s ? a[i].len : 0;
    }
    rc = qf_gguf_writer_set_arr_str(w, key, p, l, n, err);
    free(p);
    free(l);
    return rc;
}

int qf_vocab_write_gguf(const qf_vocab *v, qf_gguf_writer *w, qf_err *err)
{
    char key[96];
    int rc, i;
    uint64_t k;

    if (!v || !w)
        return qf_err_set(err, QF_EINVAL, "qf_vocab_write_gguf: NULL argument");
    rc = qf_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model, err);
    if (!rc)
        rc = qf_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre, err);
    if (!rc)
        rc = set_strs(w, "tokenizer.ggml.tokens", v->tok, v->n, err);
    if (!rc && v->score)
        rc = qf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QF_GGUF_FLOAT32, v->score, v->n,
                                    err);
    if (!rc)
        rc = qf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QF_GGUF_INT32, v->type, v->n,
                                    err);
    if (!rc && v->n_merges)
        rc = set_strs(w, "tokenizer.ggml.merges", v->merge, v->n_merges, err);
    for (i = 0; !rc && i < v->n_ids; i++)
        rc = qf_gguf_writer_set_u32(w, SP_KEY[v->id_kind[i]], v->id_val[i], err);
    for (i = 0; !rc && i < v->n_add; i++) {
        snprintf(key, sizeof key, "tokenizer.ggml.add_%s_token", SP_NAME[v->add_kind[i]]);
        rc = qf_gguf_writer_set_bool(w, key, v->add_val[i], err);
    }
    for (k = 0; !rc && k < v->n_named; k++) {
        char *nk = malloc(v->named_name[k].len + 32);
        if (!nk)
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        sprintf(nk, "tokenizer.chat_template.%s", v->named_name[k].s);
        rc = qf_gguf_writer_set_strn(w, nk, v->named_tmpl[k].s, v->named_tmpl[k].len, err);
        free(nk);
    }
    if (!rc && v->n_named)
        rc = set_strs(w, "tokenizer.chat_templates", v->named_name, v->n_named, err);
    if (!rc && v->chat.s)
        rc = qf_gguf_writer_set_strn(w, "tokenizer.chat_template", v->chat.s, v->chat.len, err);
    return rc;
}
