/*
 * verify/tokenizer.h - text <-> token ids, by llama.cpp's rules, from the
 * tokenizer.ggml.* metadata qforge-convert writes (any model source).
 *
 *   "llama" (SentencePiece): BPE by piece score with byte fallback (<0xNN>),
 *           spaces as U+2581 with a leading one added, add_bos/add_eos flags.
 *   "gpt2"  (byte-level BPE): the pre-tokenizer regexes named by
 *           tokenizer.ggml.pre, the GPT-2 byte-to-unicode map, merges by rank.
 * Special and control tokens in the text are matched first when
 * parse_special is set (llama.cpp's default), as llama-tokenize does.
 */
#ifndef QF_TOKENIZER_H
#define QF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "convert/source.h"
#include "formats/error.h"

typedef struct qf_tokenizer qf_tokenizer;

/* Build from a model's metadata. Returns 0 and sets *out (owned by the
 * caller: qf_tokenizer_free), QF_ENOTFOUND without tokenizer keys, or
 * QF_EUNSUPPORTED for a model/pre qforge does not implement (named). */
int qf_tokenizer_from_source(const qf_source *s, qf_tokenizer **out, qf_err *err);

void qf_tokenizer_free(qf_tokenizer *t); /* accepts NULL */

int64_t qf_tokenizer_n_vocab(const qf_tokenizer *t);
int32_t qf_tokenizer_bos(const qf_tokenizer *t); /* -1 if none */
int32_t qf_tokenizer_eos(const qf_tokenizer *t);

/*
 * Encode len bytes of UTF-8 text. add_special: add BOS/EOS as the model's
 * add_bos_token/add_eos_token say; parse_special: match special-token text.
 * Writes up to cap ids; returns the number of ids the text needs (call again
 * with a larger buffer if it exceeds cap), or a negative code.
 */
int64_t qf_tokenizer_encode(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                            int parse_special, int32_t *ids, int64_t cap, qf_err *err);

/* The piece of token id (borrowed, not NUL-terminated in general), or NULL. */
const char *qf_tokenizer_piece(const qf_tokenizer *t, int32_t id, size_t *len);

/*
 * Decode ids to text into buf (caller's buffer); returns the bytes the text
 * needs (may exceed cap: call again), or a negative code.
 */
int64_t qf_tokenizer_decode(const qf_tokenizer *t, const int32_t *ids, int64_t n, char *buf,
                            size_t cap, qf_err *err);

#endif /* QF_TOKENIZER_H */
