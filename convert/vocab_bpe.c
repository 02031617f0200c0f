/*
 * convert/vocab_bpe.c - Hugging Face tokenizer.json (model type BPE) as the
 * vocab convert_hf_to_gguf.py writes for it.
 *
 * Byte-level BPE (GPT-2 style), _set_vocab_gpt2 / get_vocab_base:
 *   model "gpt2"; tokens = model.vocab plus added_tokens, by id, vocab_size =
 *   config.json's (the caller's n_vocab) or the number of distinct tokens;
 *   ids with no token become "[PAD<id>]" (UNUSED); an added token is
 *   CONTROL if it is special (tokenizer_config.json's added_tokens_decoder
 *   entry for that id and text, else tokenizer.json's flag) or looks special,
 *   else USER_DEFINED with U+2581 turned into spaces; the rest NORMAL. No
 *   scores. tokenizer.ggml.pre: see qf_vocab_choose_pre below.
 *
 * Converted SentencePiece (BPE with byte_fallback and a Sequence decoder),
 *   _set_vocab_llama_hf / gguf-py LlamaHfVocab: model "llama", pre
 *   "default"; the model.vocab ids 0..N-1 first, typed BYTE if the text is
 *   <0xHH>, CONTROL if it is one of transformers' special tokens (the
 *   bos/eos/unk/sep/pad/cls/mask tokens and additional_special_tokens of
 *   tokenizer_config.json, else special_tokens_map.json, else LLaMA's
 *   defaults <s> </s> <unk>), else NORMAL; then the added tokens with ids
 *   >= N, CONTROL if special in that sense, else USER_DEFINED. Every score
 *   is -1000.
 *
 * Where the converter would crash or misplace tokens (ids with gaps above
 * the vocabulary, a config vocab_size larger than the tokenizer on the
 * llama path), we pad with "[PAD<id>]" UNUSED instead; contradictions
 * (one id given to two texts, one text to two ids, ids past vocab_size) are
 * errors naming the file and the token.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/vocab_impl.h"
#include "formats/file.h"



/* =====================================================================
 * Which path
 * ===================================================================== */

static const char *json_type_str(const cJSON *obj)
{
    const cJSON *t = qf_vocab_json_get(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

int qf_vocab_hf_kind(const cJSON *tj, const char *tj_path, qf_err *err)
{
    const cJSON *model = qf_vocab_json_get(tj, "model");
    const char *type = json_type_str(model), *dec;
    int byte_fallback;

    if (!cJSON_IsObject(model))
        return qf_err_set(err, QF_EFORMAT, "%s: no \"model\" object", tj_path);
    if (!type && qf_vocab_json_get(model, "merges"))
        type = "BPE"; /* tokenizers accepts an untagged BPE model */
    if (!type || strcmp(type, "BPE") != 0)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: model type \"%s\" is not supported (only "
                          "BPE)", tj_path, type ? type : "(none)");
    byte_fallback = qf_vocab_json_truthy(qf_vocab_json_get(model, "byte_fallback"));
    if (!byte_fallback)
        return 0;
    dec = json_type_str(qf_vocab_json_get(tj, "decoder"));
    if (!dec || strcmp(dec, "Sequence") != 0)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: a BPE model with byte_fallback but decoder "
                          "\"%s\" is neither byte-level BPE nor a converted SentencePiece model",
                          tj_path, dec ? dec : "(none)");
    return 1;
}

/* =====================================================================
 * model.vocab and added_tokens
 * ===================================================================== */

typedef struct hf_tok {
    const char *s; /* borrowed from the cJSON tree */
    uint64_t len;
    uint64_t id;
    int special;   /* added tokens only */
} hf_tok;

typedef struct hf {
    const char *path;
    hf_tok *voc;   /* model.vocab, document order */
    uint64_t n_voc;
    hf_tok *add;   /* added_tokens, document order */
    uint64_t n_add;
    qf_vmap map;   /* text -> id, model.vocab then added */
    uint64_t n_distinct;
    uint64_t max_id; /* over both */
} hf;

static void hf_free(hf *h)
{
    free(h->voc);
    free(h->add);
    qf_vmap_free(&h->map);
}

static int read_vocab(hf *h, const cJSON *tj, qf_err *err)
{
    const cJSON *vocab = qf_vocab_json_get(qf_vocab_json_get(tj, "model"), "vocab");
    const cJSON *e;
    char sb[64];
    uint64_t n = 0;

    if (!cJSON_IsObject(vocab))
        return qf_err_set(err, QF_EFORMAT, "%s: no model.vocab object", h->path);
    for (e = vocab->child; e; e = e->next)
        n++;
    if (n == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: model.vocab is empty", h->path);
    if (n > QF_VOCAB_MAX_TOKENS)
        return qf_err_set(err, QF_ELIMIT, "%s: model.vocab has %" PRIu64 " tokens, more than %u",
                          h->path, n, QF_VOCAB_MAX_TOKENS);
    h->voc = calloc((size_t)n, sizeof *h->voc);
    if (!h->voc || qf_vmap_reserve(&h->map, n + 64) != 0)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", h->path);
    for (e = vocab->child; e; e = e->next) {
        hf_tok *t = &h->voc[h->n_voc];
        int64_t id;
        uint64_t prev;
        int rc;

        t->s = e->string;
        t->len = strlen(e->string);
        if (!qf_vocab_json_int(e, 0, QF_VOCAB_MAX_TOKENS - 1, &id))
            return qf_err_set(err, QF_EFORMAT, "%s: model.vocab: token \"%s\": the id is not an "
                              "integer in [0, %u)", h->path, qf_vocab_show(t->s, t->len, sb, sizeof sb),
                              QF_VOCAB_MAX_TOKENS);
        t->id = (uint64_t)id;
        rc = qf_vmap_put(&h->map, t->s, t->len, t->id, &prev);
        if (rc < 0)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", h->path);
        if (rc == 0)
            return qf_err_set(err, QF_EFORMAT, "%s: model.vocab: token \"%s\" appears twice",
                              h->path, qf_vocab_show(t->s, t->len, sb, sizeof sb));
        if (t->id > h->max_id)
            h->max_id = t->id;
        h->n_voc++;
    }
    h->n_distinct = h->n_voc;
    return 0;
}

/* tokenizer_config.json's added_tokens_decoder entry for `id`, if its
 * content is `s` (transformers re-registers such a token with these flags). */
static const cJSON *config_added(const cJSON *tcfg, uint64_t id, const char *s)
{
    const cJSON *dec = qf_vocab_json_get(tcfg, "added_tokens_decoder"), *e;
    char key[24];

    snprintf(key, sizeof key, "%" PRIu64, id);
    e = qf_vocab_json_get(dec, key);
    if (!cJSON_IsObject(e))
        return NULL;
    {
        const cJSON *c = qf_vocab_json_get(e, "content");
        if (!cJSON_IsString(c) || strcmp(c->valuestring, s) != 0)
            return NULL;
    }
    return e;
}

static int read_added(hf *h, const cJSON *tj, const cJSON *tcfg, qf_err *err)
{
    const cJSON *added = qf_vocab_json_get(tj, "added_tokens"), *e;
    char sb[64];
    uint64_t n = 0, i = 0;

    if (!added || cJSON_IsNull(added))
        return 0;
    if (!cJSON_IsArray(added))
        return qf_err_set(err, QF_EFORMAT, "%s: added_tokens is not a list", h->path);
    for (e = added->child; e; e = e->next)
        n++;
    if (n > QF_VOCAB_MAX_TOKENS)
        return qf_err_set(err, QF_ELIMIT, "%s: too many added_tokens", h->path);
    h->add = calloc((size_t)n + 1, sizeof *h->add);
    if (!h->add)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", h->path);
    for (e = added->child; e; e = e->next, i++) {
        const cJSON *c = qf_vocab_json_get(e, "content"), *cfg;
        hf_tok *t = &h->add[h->n_add];
        int64_t id;
        uint64_t prev;
        int rc;

        if (!cJSON_IsObject(e) || !cJSON_IsString(c))
            return qf_err_set(err, QF_EFORMAT, "%s: added_tokens[%" PRIu64 "]: no \"content\" "
                              "string", h->path, i);
        t->s = c->valuestring;
        t->len = strlen(t->s);
        if (!qf_vocab_json_int(qf_vocab_json_get(e, "id"), 0, QF_VOCAB_MAX_TOKENS - 1, &id))
            return qf_err_set(err, QF_EFORMAT, "%s: added token \"%s\": the id is not an integer "
                              "in [0, %u)", h->path, qf_vocab_show(t->s, t->len, sb, sizeof sb),
                              QF_VOCAB_MAX_TOKENS);
        t->id = (uint64_t)id;
        cfg = config_added(tcfg, t->id, t->s);
        t->special = qf_vocab_json_truthy(qf_vocab_json_get(cfg ? cfg : e, "special"));
        rc = qf_vmap_put(&h->map, t->s, t->len, t->id, &prev);
        if (rc < 0)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", h->path);
        if (rc == 0 && prev != t->id)
            return qf_err_set(err, QF_EFORMAT, "%s: added token \"%s\" has id %" PRIu64 " but "
                              "the vocabulary gives it id %" PRIu64, h->path,
                              qf_vocab_show(t->s, t->len, sb, sizeof sb), t->id, prev);
        if (rc == 1)
            h->n_distinct++;
        if (t->id > h->max_id)
            h->max_id = t->id;
        h->n_add++;
    }
    return 0;
}

/* Place every token at its id; two different texts for one id are an
 * error. slot[i] = index + 1 into voc (positive) or -(index + 1) into add. */
static int place(hf *h, int64_t *slot, uint64_t size, const char *what, qf_err *err)
{
    char sa[64], sb[64];
    uint64_t i;

    for (i = 0; i < h->n_voc + h->n_add; i++) {
        int is_add = i >= h->n_voc;
        const hf_tok *t = is_add ? &h->add[i - h->n_voc] : &h->voc[i];
        int64_t me = is_add ? -(int64_t)(i - h->n_voc + 1) : (int64_t)(i + 1);

        if (t->id >= size)
            return qf_err_set(err, QF_EFORMAT, "%s: token \"%s\" has id %" PRIu64 ", beyond the "
                              "vocabulary size %" PRIu64 " (%s)", h->path,
                              qf_vocab_show(t->s, t->len, sa, sizeof sa), t->id, size, what);
        if (slot[t->id]) {
            int64_t o = slot[t->id];
            const hf_tok *u = o > 0 ? &h->voc[o - 1] : &h->add[-o - 1];
            if (u->len != t->len || memcmp(u->s, t->s, (size_t)t->len) != 0)
                return qf_err_set(err, QF_EFORMAT, "%s: tokens \"%s\" and \"%s\" both have id "
                                  "%" PRIu64, h->path, qf_vocab_show(u->s, u->len, sa, sizeof sa),
                                  qf_vocab_show(t->s, t->len, sb, sizeof sb), t->id);
            if (o > 0 && is_add)
                slot[t->id] = me; /* an added token shadows its vocab entry */
            continue;
        }
        slot[t->id] = me;
    }
    return 0;
}

/* =====================================================================
 * _set_vocab_gpt2
 * ===================================================================== */

int qf_vocab_load_gpt2(qf_vocab *v, const cJSON *tj, const char *tj_path, const cJSON *tcfg,
                       uint64_t n_vocab, qf_err *err)
{
    hf h;
    int64_t *slot = NULL;
    uint64_t size, i;
    int rc;

    memset(&h, 0, sizeof h);
    h.path = tj_path;
    rc = qf_vocab_choose_pre(tj, tj_path, v->pre, sizeof v->pre, err);
    if (!rc)
        rc = read_vocab(&h, tj, err);
    if (!rc)
        rc = read_added(&h, tj, tcfg, err);
    if (rc)
        goto done;
    /* get_vocab_base: vocab_size = hparams vocab_size or len(tokenizer.vocab) */
    size = n_vocab ? n_vocab : h.n_distinct;
    slot = calloc((size_t)size, sizeof *slot);
    if (!slot) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", tj_path);
        goto done;
    }
    rc = place(&h, slot, size, n_vocab ? "config.json vocab_size" : "the number of tokens", err);
    if (!rc)
        rc = qf_vocab_alloc(v, size, 0, err);
    if (rc)
        goto done;
    memcpy(v->model, "gpt2", 5);
    for (i = 0; i < size; i++) {
        const hf_tok *t;

        if (!slot[i]) {
            rc = qf_vocab_set_pad(v, i, err);
            v->type[i] = QF_TOK_UNUSED;
        } else if (slot[i] > 0) {
            t = &h.voc[slot[i] - 1];
            rc = qf_vocab_set_tok(v, i, t->s, t->len, err);
            v->type[i] = QF_TOK_NORMAL;
        } else {
            t = &h.add[-slot[i] - 1];
            if (t->special || qf_vocab_looks_special(t->s, t->len)) {
                rc = qf_vocab_set_tok(v, i, t->s, t->len, err);
                v->type[i] = QF_TOK_CONTROL;
            } else {
                uint64_t nlen;
                char *u = qf_vocab_unmark_spaces(t->s, t->len, &nlen);
                if (!u) {
                    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                    goto done;
                }
                rc = qf_vocab_set_tok(v, i, u, nlen, err);
                free(u);
                v->type[i] = QF_TOK_USER_DEFINED;
            }
        }
        if (rc)
            goto done;
    }
done:
    free(slot);
    hf_free(&h);
    return rc;
}

/* =====================================================================
 * _set_vocab_llama_hf
 * ===================================================================== */

/* <0xHH>, as re.fullmatch(br"<0x[0-9A-Fa-f]{2}>") */
static int is_byte_token(const char *s, uint64_t len)
{
    int i;

    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return 0;
    for (i = 3; i < 5; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* transformers' all_special_tokens, as texts: up to 7 named ones plus the
 * additional_special_tokens. Pointers borrowed from the cJSON trees. */
typedef struct specials {
    const char **s;
    uint64_t n, cap;
} specials;

static const char *entry_content(const cJSON *e)
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

static int specials_add(specials *sp, const char *s)
{
    if (!s)
        return 0;
    if (sp->n == sp->cap) {
        uint64_t ncap = sp->cap ? 2 * sp->cap : 16;
        const char **g = realloc((void *)sp->s, (size_t)ncap * sizeof *g);
        if (!g)
            return QF_ENOMEM;
        sp->s = g;
        sp->cap = ncap;
    }
    sp->s[sp->n++] = s;
    return 0;
}

static int specials_has(const specials *sp, const char *s, uint64_t len)
{
    uint64_t i;

    for (i = 0; i < sp->n; i++)
        if (strlen(sp->s[i]) == len && memcmp(sp->s[i], s, (size_t)len) == 0)
            return 1;
    return 0;
}

static int collect_specials(specials *sp, const cJSON *tcfg, const cJSON *stmap)
{
    static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token" };
    static const char *const dflt[] = { "<s>", "</s>", "<unk>", NULL, NULL, NULL, NULL };
    const cJSON *extra, *e;
    size_t k;

    for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *src = qf_vocab_json_get(tcfg, keys[k]);
        const char *s;
        if (!src)
            src = qf_vocab_json_get(stmap, keys[k]);
        s = src ? entry_content(src) : dflt[k];
        if (specials_add(sp, s))
            return QF_ENOMEM;
    }
    extra = qf_vocab_json_get(tcfg, "additional_special_tokens");
    if (!extra)
        extra = qf_vocab_json_get(stmap, "additional_special_tokens");
    if (cJSON_IsArray(extra))
        for (e = extra->child; e; e = e->next)
            if (specials_add(sp, entry_content(e)))
                return QF_ENOMEM;
    return 0;
}

int qf_vocab_load_llama_hf(qf_vocab *v, const cJSON *tj, const char *tj_path, const cJSON *tcfg,
                           const cJSON *stmap, uint64_t n_vocab, qf_err *err)
{
    hf h;
    specials sp = { NULL, 0, 0 };
    int64_t *slot = NULL;
    uint8_t *is_special = NULL;
    uint64_t base, total, size, i;
    char sb[64];
    int rc;

    memset(&h, 0, sizeof h);
    h.path = tj_path;
    rc = read_vocab(&h, tj, err);
    if (!rc)
        rc = read_added(&h, tj, tcfg, err);
    if (rc)
        goto done;
    /* tokenizer.vocab_size = the model's own vocabulary: ids 0..base-1 */
    base = h.n_voc;
    for (i = 0; i < h.n_voc; i++) {
        if (h.voc[i].id >= base) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: model.vocab: token \"%s\" has id %" PRIu64
                            ", but the %" PRIu64 " tokens must have ids 0 to %" PRIu64, tj_path,
                            qf_vocab_show(h.voc[i].s, h.voc[i].len, sb, sizeof sb), h.voc[i].id, base,
                            base - 1);
            goto done;
        }
    }
    total = h.max_id + 1 > base ? h.max_id + 1 : base;
    if (n_vocab && n_vocab < total) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: token id %" PRIu64 " is beyond the model's "
                        "vocab_size %" PRIu64, tj_path, total - 1, n_vocab);
        goto done;
    }
    size = n_vocab ? n_vocab : total;
    slot = calloc((size_t)size, sizeof *slot);
    is_special = calloc((size_t)size, 1);
    if (!slot || !is_special) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", tj_path);
        goto done;
    }
    rc = place(&h, slot, size, "config.json vocab_size", err);
    if (rc)
        goto done;
    /* special_ids: the ids of the special texts in get_vocab() */
    rc = collect_specials(&sp, tcfg, stmap);
    if (rc) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < sp.n; i++) {
        uint64_t id;
        if (qf_vmap_get(&h.map, sp.s[i], strlen(sp.s[i]), &id))
            is_special[id] = 1;
    }
    rc = qf_vocab_alloc(v, size, 1, err);
    if (rc)
        goto done;
    memcpy(v->model, "llama", 6);
    memcpy(v->pre, "default", 8);
    for (i = 0; i < size; i++) {
        const hf_tok *t = NULL;

        v->score[i] = -1000.0f;
        if (slot[i] > 0)
            t = &h.voc[slot[i] - 1];
        else if (slot[i] < 0)
            t = &h.add[-slot[i] - 1];
        if (!t) {
            rc = qf_vocab_set_pad(v, i, err);
            v->type[i] = QF_TOK_UNUSED;
        } else {
            rc = qf_vocab_set_tok(v, i, t->s, t->len, err);
            if (i < base)
                v->type[i] = is_byte_token(t->s, t->len) ? QF_TOK_BYTE
                             : is_special[i]             ? QF_TOK_CONTROL
                                                         : QF_TOK_NORMAL;
            else
                v->type[i] = specials_has(&sp, t->s, t->len) ? QF_TOK_CONTROL
                                                              : QF_TOK_USER_DEFINED;
        }
        if (rc)
            goto done;
    }
done:
    free((void *)sp.s);
    free(slot);
    free(is_special);
    hf_free(&h);
    return rc;
}

/* =====================================================================
 * tokenizer.ggml.pre
 * =====================================================================
 *
 * llama.cpp's converter names the pre-tokenizer by hashing the token ids
 * the Hugging Face tokenizer gives for a test text. We cannot run that
 * tokenizer, so we read its definition instead: the pre_tokenizer is
 * flattened into steps, each written as a string, and the list is looked
 * up in the table below. Regexes are compared as text, after turning raw
 * CR, LF and TAB characters into the escapes \r \n \t. docs/tokenizers.md
 * gives the same table with the regexes llama.cpp runs for each name.
 *
 *   ByteLevel, use_regex true (the default)  -> "ByteLevel(regex)"
 *   ByteLevel, use_regex false               -> "ByteLevel"
 *   Digits, individual_digits true           -> "Digits(individual)"
 *   Digits, individual_digits false          -> "Digits"
 *   Punctuation, behavior B                  -> "Punctuation(B)"
 *   Split, Regex R, behavior Isolated        -> "Split:R"
 *   Split, anything else                     -> "Split(<behavior>[,invert]):<R or 'S'>"
 *   any other type T                         -> "T"
 *   Sequence                                 -> its members, in order
 *
 * The normalizer must be absent, NFC, or an empty Sequence (llama.cpp runs
 * no normalizer for BPE vocabularies). Anything not in the table is an
 * error that names the steps: a wrong tokenizer.ggml.pre silently
 * mis-tokenizes, as llama.cpp's own converter also refuses unknown hashes.
 */

#define GPT2_BYTELEVEL "ByteLevel(regex)"
#define RE_LLAMA3                                                                                  \
    "Split:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "              \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "Split:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                   \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "Split:[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"     \
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK_HANGUL "Split:[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"

#define MAX_STEPS 16

typedef struct pre_entry {
    const char *name;
    int ignore_merges;          /* 0 any, 1 model.ignore_merges must be true, 2 must be false */
    const char *steps[8];       /* NULL-terminated; a step ending in "\x01" is a prefix */
} pre_entry;

static const pre_entry PRE_TABLE[] = {
    { "gpt-2", 0, { GPT2_BYTELEVEL } },
    { "smollm", 0, { "Digits(individual)", GPT2_BYTELEVEL } },
    { "llama-bpe", 1, { RE_LLAMA3, "ByteLevel" } },
    { "smaug-bpe", 2, { RE_LLAMA3, "ByteLevel" } },
    { "qwen2", 0, { RE_QWEN2, "ByteLevel" } },
    { "tekken", 0, { RE_TEKKEN, "ByteLevel" } },
    { "falcon", 0,
      { "Punctuation(Contiguous)", GPT2_BYTELEVEL, "Digits", "Split:[0-9][0-9][0-9]" } },
    { "deepseek-coder", 0,
      { "Split:[\\r\\n]", "Split:\\s?\\p{L}+", "Split:\\s?\\p{P}+", RE_CJK_HANGUL,
        "Split:\\p{N}", "ByteLevel" } },
    { "deepseek-llm", 0,
      { "Split:[\\r\\n]", "Split:\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\x01",
        "Split:\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
        "Split:\\s+$", RE_CJK_HANGUL, "Split:\\p{N}+", "ByteLevel" } },
    { "deepseek-v3", 0,
      { "Split:\\p{N}{1,3}", "Split:[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "Split:[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
        "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "ByteLevel" } },
};

typedef struct steps {
    char *s[MAX_STEPS];
    int n;
} steps;

static void steps_free(steps *st)
{
    int i;

    for (i = 0; i < st->n; i++)
        free(st->s[i]);
    st->n = 0;
}

/* Append "<prefix><text>" with raw CR/LF/TAB in text turned into escapes. */
static int steps_add(steps *st, const char *prefix, const char *text, const char *path,
                     qf_err *err)
{
    size_t np = strlen(prefix), nt = text ? strlen(text) : 0, i, o;
    char *r;

    if (st->n == MAX_STEPS)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: pre_tokenizer: more than %d steps", path,
                          MAX_STEPS);
    r = malloc(np + 2 * nt + 1);
    if (!r)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    memcpy(r, prefix, np);
    o = np;
    for (i = 0; i < nt; i++) {
        char c = text[i];
        if (c == '\r' || c == '\n' || c == '\t') {
            r[o++] = '\\';
            r[o++] = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
        } else {
            r[o++] = c;
        }
    }
    r[o] = '\0';
    st->s[st->n++] = r;
    return 0;
}

static int flatten(const cJSON *pt, steps *st, int depth, const char *path, qf_err *err)
{
    const char *type = json_type_str(pt);
    char buf[96];

    if (!type)
        return qf_err_set(err, QF_EFORMAT, "%s: pre_tokenizer: an entry has no \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = qf_vocab_json_get(pt, "pretokenizers"), *e;
        if (depth >= 4)
            return qf_err_set(err, QF_EUNSUPPORTED, "%s: pre_tokenizer: Sequence nested too "
                              "deep", path);
        if (!cJSON_IsArray(list))
            return qf_err_set(err, QF_EFORMAT, "%s: pre_tokenizer: a Sequence without a "
                              "\"pretokenizers\" list", path);
        for (e = list->child; e; e = e->next) {
            int rc = flatten(e, st, depth + 1, path, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        const cJSON *re = qf_vocab_json_get(pt, "use_regex");
        int use = !re || cJSON_IsNull(re) ? 1 : qf_vocab_json_truthy(re);
        return steps_add(st, use ? GPT2_BYTELEVEL : "ByteLevel", NULL, path, err);
    }
    if (strcmp(type, "Digits") == 0)
        return steps_add(st, qf_vocab_json_truthy(qf_vocab_json_get(pt, "individual_digits"))
                                 ? "Digits(individual)" : "Digits", NULL, path, err);
    if (strcmp(type, "Punctuation") == 0) {
        const cJSON *b = qf_vocab_json_get(pt, "behavior");
        snprintf(buf, sizeof buf, "Punctuation(%.40s)",
                 cJSON_IsString(b) ? b->valuestring : "Isolated");
        return steps_add(st, buf, NULL, path, err);
    }
    if (strcmp(type, "Split") == 0) {
        const cJSON *pat = qf_vocab_json_get(pt, "pattern");
        const cJSON *re = qf_vocab_json_get(pat, "Regex");
        const cJSON *str = qf_vocab_json_get(pat, "String");
        const cJSON *b = qf_vocab_json_get(pt, "behavior");
        int invert = qf_vocab_json_truthy(qf_vocab_json_get(pt, "invert"));
        const char *beh = cJSON_IsString(b) ? b->valuestring : "(none)";

        if (!cJSON_IsString(re) && !cJSON_IsString(str))
            return qf_err_set(err, QF_EFORMAT, "%s: pre_tokenizer: a Split without a Regex or "
                              "String pattern", path);
        if (cJSON_IsString(re) && strcmp(beh, "Isolated") == 0 && !invert)
            return steps_add(st, "Split:", re->valuestring, path, err);
        snprintf(buf, sizeof buf, "Split(%.40s%s):%s", beh, invert ? ",invert" : "",
                 cJSON_IsString(re) ? "" : "'");
        return steps_add(st, buf, cJSON_IsString(re) ? re->valuestring : str->valuestring, path,
                         err);
    }
    return steps_add(st, type, NULL, path, err);
}

static int step_matches(const char *want, const char *got)
{
    size_t n = strlen(want);

    if (n && want[n - 1] == '\x01')
        return strncmp(want, got, n - 1) == 0;
    return strcmp(want, got) == 0;
}

static int normalizer_ok(const cJSON *norm)
{
    const char *type;

    if (!norm || cJSON_IsNull(norm))
        return 1;
    type = json_type_str(norm);
    if (!type)
        return 0;
    if (strcmp(type, "NFC") == 0)
        return 1;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = qf_vocab_json_get(norm, "normalizers"), *e;
        if (!cJSON_IsArray(list))
            return 0;
        for (e = list->child; e; e = e->next)
            if (!normalizer_ok(e))
                return 0;
        return 1;
    }
    return 0;
}

int qf_vocab_choose_pre(const cJSON *tj, const char *tj_path, char *pre, size_t cap,
                        qf_err *err)
{
    const cJSON *pt = qf_vocab_json_get(tj, "pre_tokenizer");
    const cJSON *norm = qf_vocab_json_get(tj, "normalizer");
    int ignore_merges =
        qf_vocab_json_truthy(qf_vocab_json_get(qf_vocab_json_get(tj, "model"), "ignore_merges"));
    steps st;
    size_t k;
    int rc, i;
    char msg[320];
    size_t o = 0;

    st.n = 0;
    if (!normalizer_ok(norm)) {
        const char *t = json_type_str(norm);
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: normalizer \"%s\" is not supported for a "
                          "byte-level BPE tokenizer (llama.cpp applies none; see "
                          "docs/tokenizers.md)", tj_path, t ? t : "?");
    }
    if (!pt || cJSON_IsNull(pt))
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: no pre_tokenizer: cannot choose "
                          "tokenizer.ggml.pre (see docs/tokenizers.md)", tj_path);
    rc = flatten(pt, &st, 0, tj_path, err);
    if (rc)
        goto done;
    for (k = 0; k < sizeof PRE_TABLE / sizeof PRE_TABLE[0]; k++) {
        const pre_entry *e = &PRE_TABLE[k];
        int n = 0;

        while (n < 8 && e->steps[n])
            n++;
        if (n != st.n)
            continue;
        if ((e->ignore_merges == 1 && !ignore_merges) || (e->ignore_merges == 2 && ignore_merges))
            continue;
        for (i = 0; i < n; i++)
            if (!step_matches(e->steps[i], st.s[i]))
                break;
        if (i == n) {
            snprintf(pre, cap, "%s", e->name);
            rc = 0;
            goto done;
        }
    }
    /* not found: name the steps, each cut short */
    msg[0] = '\0';
    for (i = 0; i < st.n && o + 8 < sizeof msg; i++) {
        int w = snprintf(msg + o, sizeof msg - o, "%s\"%.70s%s\"", i ? ", " : "", st.s[i],
                         strlen(st.s[i]) > 70 ? "..." : "");
        if (w < 0)
            break;
        o += (size_t)w < sizeof msg - o ? (size_t)w : sizeof msg - o - 1;
    }
    rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: pre_tokenizer [%s] matches no llama.cpp "
                    "pre-tokenizer known to qforge (docs/tokenizers.md lists them)", tj_path, msg);
done:
    steps_free(&st);
    return rc;
}
