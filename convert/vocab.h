/*
 * convert/vocab.h - a model folder's tokenizer, as GGUF's tokenizer.ggml.*
 * metadata.
 *
 * Sources, in the order llama.cpp's converter prefers them:
 *   tokenizer.model        SentencePiece ModelProto (parsed here, no library):
 *                          pieces, scores, piece types  -> model "llama"
 *   tokenizer.json         Hugging Face tokenizers: byte-level BPE (GPT-2
 *                          style) -> model "gpt2" with merges and a
 *                          tokenizer.ggml.pre chosen from the pre-tokenizer;
 *                          or BPE with byte_fallback and the U+2581
 *                          normalizer (a converted SentencePiece model)
 *                          -> model "llama"
 *   tokenizer_config.json  added tokens, add_bos/add_eos, chat_template
 *   special_tokens_map.json, config.json, generation_config.json
 *                          bos/eos/unk/pad/sep ids
 */
#ifndef QF_VOCAB_H
#define QF_VOCAB_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/gguf.h"

typedef struct qf_vocab qf_vocab;

/*
 * Load the tokenizer of the model folder `dir`. `n_vocab` is the vocabulary
 * size the model's embedding has (config.json vocab_size), or 0 if unknown:
 * a tokenizer with fewer tokens is padded the way llama.cpp's converter pads
 * it, one with more is an error. Returns 0 and sets *out (owned by the
 * caller: qf_vocab_free), QF_ENOTFOUND when the folder has no tokenizer, or
 * QF_EFORMAT / QF_EIO / QF_ENOMEM with a message naming the file and the
 * item.
 */
int qf_vocab_load(const char *dir, uint64_t n_vocab, qf_vocab **out, qf_err *err);

/* Free; accepts NULL. */
void qf_vocab_free(qf_vocab *v);

/* Number of tokens (after padding). */
uint64_t qf_vocab_size(const qf_vocab *v);

/* "llama" or "gpt2": the tokenizer.ggml.model value. */
const char *qf_vocab_model(const qf_vocab *v);

/*
 * Append the tokenizer.ggml.* keys to w, in the order llama.cpp's converter
 * writes them (model, pre, tokens, scores, token_type, merges, special ids,
 * add_bos/add_eos, chat_template). Returns 0 or a negative code.
 */
int qf_vocab_write_gguf(const qf_vocab *v, qf_gguf_writer *w, qf_err *err);

#endif /* QF_VOCAB_H */
