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
 * docs/tokenizers.md ("Run time") lists the pre-tokenizers and the few
 * places where llama.cpp has no defined answer and we chose one.
 *
 * A tokenizer does not change once built: encode and decode may run on
 * several threads at once.
 */
#ifndef QF_TOKENIZER_H
#define QF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "convert/source.h"
#include "convert/vocab.h"
#include "formats/error.h"
#include "formats/gguf.h"

typedef struct qf_tokenizer qf_tokenizer;

/* Build from a model's metadata. Returns 0 and sets *out (owned by the
 * caller: qf_tokenizer_free), QF_ENOTFOUND without tokenizer keys, or
 * QF_EUNSUPPORTED for a model/pre qforge does not implement (named). */
int qf_tokenizer_from_source(const qf_source *s, qf_tokenizer **out, qf_err *err);

void qf_tokenizer_free(qf_tokenizer *t); /* accepts NULL */

/* The same from other holders of tokenizer.ggml.* keys (all borrowed only
 * during the call; the tokenizer copies what it keeps): a GGUF reader, the
 * pairs of a GGUF writer (`name` is used in messages), or a model folder's
 * tokenizer as convert/vocab.h reads it (a folder of tokenizer files alone,
 * without config.json or weights). */
int qf_tokenizer_from_gguf(const qf_gguf *g, qf_tokenizer **out, qf_err *err);
int qf_tokenizer_from_writer(const qf_gguf_writer *w, const char *name, qf_tokenizer **out,
                             qf_err *err);
int qf_tokenizer_from_vocab(const qf_vocab *v, const char *name, qf_tokenizer **out,
                            qf_err *err);

int64_t qf_tokenizer_n_vocab(const qf_tokenizer *t);
int32_t qf_tokenizer_bos(const qf_tokenizer *t); /* -1 if none */
int32_t qf_tokenizer_eos(const qf_tokenizer *t);
/* Whether encode's add_special adds BOS / EOS (the model's flags, with
 * llama.cpp's defaults). */
int qf_tokenizer_add_bos(const qf_tokenizer *t);
int qf_tokenizer_add_eos(const qf_tokenizer *t);
/* 1 for a token that ends generation (eos, eot, eom, and the texts
 * llama.cpp b4747 treats so: <|endoftext|>, <|im_end|>, <|eot_id|>, ...). */
int qf_tokenizer_is_eog(const qf_tokenizer *t, int32_t id);
/* tokenizer.ggml.model ("llama", "gpt2") and .pre ("" if absent); borrowed. */
const char *qf_tokenizer_model(const qf_tokenizer *t);
const char *qf_tokenizer_pre(const qf_tokenizer *t);

/*
 * Encode len bytes of UTF-8 text. add_special: add BOS/EOS as the model's
 * add_bos_token/add_eos_token say; parse_special: match special-token text.
 * Writes up to cap ids; returns the number of ids the text needs (call again
 * with a larger buffer if it exceeds cap), or a negative code.
 */
int64_t qf_tokenizer_encode(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                            int parse_special, int32_t *ids, int64_t cap, qf_err *err);

/*
 * The same into an array of the right size: on success returns 0, *ids
 * (owned by the caller: free; never NULL, even for no ids) and *n. On failure
 * returns a negative code with *ids NULL and *n 0.
 */
int qf_tokenizer_encode_alloc(const qf_tokenizer *t, const char *text, size_t len, int add_special,
                              int parse_special, int32_t **ids, int64_t *n, qf_err *err);

/* The piece of token id (borrowed, not NUL-terminated in general), or NULL. */
const char *qf_tokenizer_piece(const qf_tokenizer *t, int32_t id, size_t *len);

/*
 * Decode ids to text into buf (caller's buffer); returns the bytes the text
 * needs (may exceed cap: call again), or a negative code (QF_EINVAL for an id
 * outside the vocabulary). Not NUL-terminated.
 *
 * This is llama.cpp's llama_detokenize(remove_special = false,
 * unparse_special = false): control and unknown tokens (BOS, EOS, ...) give
 * nothing; byte tokens their byte; SentencePiece pieces U+2581 as spaces,
 * with one leading space of the first token dropped (add_space_prefix);
 * byte-level BPE pieces through the GPT-2 map; then, for the pre-tokenizers
 * that keep clean_up_tokenization_spaces (gpt-2, llama-bpe, ...), " ." " ,"
 * " !" " ?" lose their space and so do " 's" " 'm" " 're" " 've".
 */
int64_t qf_tokenizer_decode(const qf_tokenizer *t, const int32_t *ids, int64_t n, char *buf,
                            size_t cap, qf_err *err);

/* Flags for qf_tokenizer_decode_ex. */
enum {
    QF_TOKENIZER_DECODE_SPECIAL = 1,        /* render control/unknown tokens' text */
    QF_TOKENIZER_DECODE_REMOVE_SPECIAL = 2, /* drop a leading BOS / trailing EOS the model adds */
};
int64_t qf_tokenizer_decode_ex(const qf_tokenizer *t, const int32_t *ids, int64_t n,
                               unsigned flags, char *buf, size_t cap, qf_err *err);

/*
 * The text one token stands for (llama.cpp's token_to_piece, as
 * common_token_to_piece calls it): what decode would give for it alone,
 * without dropping a leading space; control and unknown tokens give their
 * text only when `special` is set. Same return convention as decode. For
 * streaming generated text.
 */
int64_t qf_tokenizer_token_to_piece(const qf_tokenizer *t, int32_t id, int special, char *buf,
                                    size_t cap, qf_err *err);

#endif /* QF_TOKENIZER_H */
