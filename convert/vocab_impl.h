/*
 * convert/vocab_impl.h - internals shared by convert/vocab*.c. Not part of
 * the public API (convert/vocab.h is); declared here only so the three files
 * can be compiled apart and the SentencePiece parser can be fuzzed alone.
 *
 *   vocab.c       qf_vocab itself, JSON loading, SpecialVocab (special ids,
 *                 add_bos/add_eos, chat template, merges), the GGUF keys
 *   vocab_spm.c   tokenizer.model: the protobuf parser and the "llama" vocab
 *                 of _set_vocab_sentencepiece
 *   vocab_bpe.c   tokenizer.json: the "gpt2" vocab of _set_vocab_gpt2 (with
 *                 the pre-tokenizer table) and the "llama" vocab of
 *                 _set_vocab_llama_hf
 */
#ifndef QF_VOCAB_IMPL_H
#define QF_VOCAB_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "convert/vocab.h"
#include "formats/error.h"
#include "formats/folder.h" /* qf_path_join, qf_path_is_regular */

/* llama.cpp's token types (gguf.TokenType; the INT32 values of token_type). */
enum {
    QF_TOK_NORMAL = 1,
    QF_TOK_UNKNOWN = 2,
    QF_TOK_CONTROL = 3,
    QF_TOK_USER_DEFINED = 4,
    QF_TOK_UNUSED = 5,
    QF_TOK_BYTE = 6,
};

/* Sanity limits for hostile inputs. The largest real vocabularies are a few
 * hundred thousand tokens. */
#define QF_VOCAB_MAX_TOKENS (1u << 24)
#define QF_VOCAB_MAX_FILE ((uint64_t)1 << 30) /* a JSON or .model file */

/* SpecialVocab's token kinds, in gguf-py's order. */
enum {
    QF_SP_BOS,
    QF_SP_EOS,
    QF_SP_UNK,
    QF_SP_SEP,
    QF_SP_PAD,
    QF_SP_CLS,
    QF_SP_MASK,
    QF_SP_COUNT
};

/* One string owned by the vocab (NUL-terminated too, for messages). */
typedef struct qf_vstr {
    char *s;
    uint64_t len;
} qf_vstr;

struct qf_vocab {
    char model[8];        /* "llama" or "gpt2" */
    char pre[32];         /* tokenizer.ggml.pre */
    uint64_t n;           /* tokens */
    qf_vstr *tok;         /* [n] */
    float *score;         /* [n], or NULL when no scores are written (gpt2) */
    int32_t *type;        /* [n], QF_TOK_* */
    uint64_t n_merges;
    qf_vstr *merge;       /* [n_merges] "left right" */

    /* Special ids in the order gguf-py inserts them into its dict. */
    int n_ids;
    int id_kind[QF_SP_COUNT]; /* QF_SP_* */
    uint32_t id_val[QF_SP_COUNT];

    /* add_bos_token / add_eos_token, in insertion order. */
    int n_add;
    int add_kind[2];          /* QF_SP_BOS or QF_SP_EOS */
    int add_val[2];

    /* tokenizer.chat_template (NULL: none), then the named templates. */
    qf_vstr chat;
    uint64_t n_named;
    qf_vstr *named_name;      /* [n_named], filtered to [A-Za-z0-9_] */
    qf_vstr *named_tmpl;      /* [n_named] */
};

/* ---------------------------------------------------------------------
 * vocab.c helpers
 * ------------------------------------------------------------------- */

/*
 * Read and parse a JSON file. Returns 0 and sets *out (owned by the caller:
 * cJSON_Delete), or QF_EIO / QF_EFORMAT / QF_ELIMIT / QF_ENOMEM with a
 * message that starts with `path`. The text must be valid UTF-8 without a
 * \u0000 escape (cJSON would silently cut a string there), and the top level
 * must be a JSON object.
 */
int qf_vocab_json_load(const char *path, cJSON **out, qf_err *err);

/* obj[key] with Python's dict semantics for duplicate keys (the last one
 * wins), case-sensitive; NULL if obj is not an object or the key is absent. */
cJSON *qf_vocab_json_get(const cJSON *obj, const char *key);

/* A JSON number that is an integer within [lo, hi]: 1 and *v set, else 0. */
int qf_vocab_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out);

/* Python truthiness of a JSON value (false for NULL / null / false / 0 /
 * "" / [] / {}). */
int qf_vocab_json_truthy(const cJSON *v);

/* Allocate n tokens (all empty), types (0) and, if with_scores, scores (0).
 * Returns 0 or QF_ENOMEM. */
int qf_vocab_alloc(qf_vocab *v, uint64_t n, int with_scores, qf_err *err);

/* Set token id's text to a copy of s[0..len). Returns 0 or QF_ENOMEM. */
int qf_vocab_set_tok(qf_vocab *v, uint64_t id, const char *s, uint64_t len, qf_err *err);

/* Set token id to "[PAD<id>]". */
int qf_vocab_set_pad(qf_vocab *v, uint64_t id, qf_err *err);

/* A copy of s[0..len) with every U+2581 replaced by a space (the converter's
 * "pre-normalize user-defined spaces"). Owned by the caller; NULL if out of
 * memory. *out_len gets the new length. */
char *qf_vocab_unmark_spaces(const char *s, uint64_t len, uint64_t *out_len);

/* A printable copy of a hostile string for a message: at most 60 bytes,
 * control characters and quotes replaced by '?'. Returns buf. */
const char *qf_vocab_show(const char *s, uint64_t len, char *buf, size_t cap);

/* The converter's does_token_look_special(). */
int qf_vocab_looks_special(const char *s, uint64_t len);

/* ---------------------------------------------------------------------
 * String -> id hash map (open addressing; keys are borrowed)
 * ------------------------------------------------------------------- */

typedef struct qf_vmap {
    const char **key;
    uint64_t *klen;
    uint64_t *val;
    uint64_t cap; /* power of two, or 0 */
    uint64_t n;
} qf_vmap;

/* Returns 0 or QF_ENOMEM. A zeroed qf_vmap is a valid empty map. */
int qf_vmap_reserve(qf_vmap *m, uint64_t n);
/* Insert key -> val. Returns 1 if inserted, 0 if the key was present (then
 * *old gets its value, may be NULL), or QF_ENOMEM. */
int qf_vmap_put(qf_vmap *m, const char *key, uint64_t klen, uint64_t val, uint64_t *old);
/* 1 and *val set if present, else 0. */
int qf_vmap_get(const qf_vmap *m, const char *key, uint64_t klen, uint64_t *val);
void qf_vmap_free(qf_vmap *m);

/* ---------------------------------------------------------------------
 * vocab_spm.c
 * ------------------------------------------------------------------- */

/* One SentencePiece (borrowed from the parsed buffer). */
typedef struct qf_spm_piece {
    const char *s; /* not NUL-terminated */
    uint64_t len;
    float score;   /* 0 when absent */
    int type;      /* SentencePiece type 1..6 (NORMAL when absent) */
} qf_spm_piece;

/*
 * Parse a SentencePiece ModelProto held in buf[0..size). `name` is used in
 * messages. Returns 0 and sets *pieces (owned by the caller: free()) and *n
 * (>= 1), or QF_ETRUNC / QF_EFORMAT / QF_ELIMIT / QF_ENOMEM. The pieces
 * point into buf. Each piece is checked: non-empty, valid UTF-8, a known
 * type, not a duplicate of an earlier piece.
 */
int qf_vocab_spm_parse(const uint8_t *buf, uint64_t size, const char *name,
                       qf_spm_piece **pieces, uint64_t *n, qf_err *err);

/* _create_vocab_sentencepiece: fill v from dir/tokenizer.model, then
 * added_tokens.json and tokenizer_config.json's added_tokens_decoder. */
int qf_vocab_load_spm(qf_vocab *v, const char *dir, const cJSON *tcfg, const char *tcfg_path,
                      uint64_t n_vocab, qf_err *err);

/* ---------------------------------------------------------------------
 * vocab_bpe.c
 * ------------------------------------------------------------------- */

/* Which converter path a parsed tokenizer.json takes: 1 for
 * _set_vocab_llama_hf (BPE with byte_fallback and a Sequence decoder), 0 for
 * _set_vocab_gpt2 (BPE without byte_fallback), or QF_EUNSUPPORTED with the
 * message set. */
int qf_vocab_hf_kind(const cJSON *tj, const char *tj_path, qf_err *err);

/* _set_vocab_gpt2 / get_vocab_base: tokens, types and tokenizer.ggml.pre. */
int qf_vocab_load_gpt2(qf_vocab *v, const cJSON *tj, const char *tj_path, const cJSON *tcfg,
                       uint64_t n_vocab, qf_err *err);

/* _set_vocab_llama_hf (LlamaHfVocab): tokens, scores, types. stmap is
 * special_tokens_map.json (may be NULL). */
int qf_vocab_load_llama_hf(qf_vocab *v, const cJSON *tj, const char *tj_path, const cJSON *tcfg,
                           const cJSON *stmap, uint64_t n_vocab, qf_err *err);

/*
 * Choose tokenizer.ggml.pre from a tokenizer.json's normalizer and
 * pre_tokenizer (see docs/tokenizers.md). Writes the name into
 * pre[0..cap). Returns 0 or QF_EUNSUPPORTED naming what was not recognized.
 */
int qf_vocab_choose_pre(const cJSON *tj, const char *tj_path, char *pre, size_t cap,
                        qf_err *err);

#endif /* QF_VOCAB_IMPL_H */
