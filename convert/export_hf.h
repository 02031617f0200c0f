/*
 * convert/export_hf.h - a model back to a Hugging Face folder: the reverse
 * of qforge-convert, from any qf_source (a GGUF of any block type, or a
 * folder read as its F32 conversion).
 *
 * What the folder holds:
 *
 *   model.safetensors          every tensor dequantized to F32, F16 or
 *                              BF16 (one dtype for all, as HF checkpoints
 *                              are), HF names and row-major shapes; above
 *                              the shard cap (HF's default 5 GB, set with
 *                              qf_export_hf_opts.shard_bytes):
 *   model-0000N-of-0000M.safetensors + model.safetensors.index.json
 *                              tensors in source order, a new shard when
 *                              the next tensor would pass the cap
 *   config.json                rebuilt from the GGUF metadata (below)
 *   generation_config.json     bos/eos ids
 *   tokenizer.model            (SentencePiece "llama" vocabularies) the
 *   tokenizer_config.json      ModelProto rebuilt from tokens, scores and
 *   special_tokens_map.json    token types: pieces in id order, trainer_spec
 *                              model_type BPE with byte_fallback when the
 *                              vocabulary has <0xNN> byte tokens and the
 *                              special ids, normalizer_spec "identity"
 *                              without whitespace collapsing (llama.cpp's
 *                              behaviour). Added tokens (user-defined) are
 *                              listed in tokenizer_config.json's
 *                              added_tokens_decoder too.
 *                              GPT-2 style BPE vocabularies ("gpt2") get
 *                              no tokenizer files yet: the folder has
 *                              weights and configs only, and
 *                              QF_EXPORT_REPORT_NO_TOKENIZER is set in
 *                              qf_export_hf_opts.report.
 *
 * Names: token_embd -> model.embed_tokens, output_norm -> model.norm,
 * output -> lm_head, blk.N.<x> -> model.layers.N.<hf x> (the table of
 * convert/convert.c read backwards). No output.weight means tied
 * embeddings: no lm_head, "tie_word_embeddings": true.
 *
 * llama (which Llama and Mistral both convert to): the q/k rows llama.cpp's
 * converter permutes per head (HF rotate-half -> interleaved RoPE) are put
 * back exactly: within each head of hd rows, HF row j comes from GGUF row
 * 2j (j < hd/2) or 2(j - hd/2) + 1. q uses head_count, k head_count_kv.
 * Architectures: llama -> LlamaForCausalLM, qwen2 -> Qwen2ForCausalLM,
 * qwen3 -> Qwen3ForCausalLM; others are QF_EUNSUPPORTED.
 *
 * config.json: architectures, model_type, hidden_size, intermediate_size,
 * num_hidden_layers, num_attention_heads, num_key_value_heads (when the
 * GGUF has head_count_kv), head_dim (when it has key_length),
 * rms_norm_eps, rope_theta, max_position_embeddings, vocab_size (rows of
 * token_embd), hidden_act "silu", the special token ids, torch_dtype,
 * tie_word_embeddings, and rope_scaling: linear and yarn from their keys;
 * llama3 from the rope_freqs.weight tensor the converter generates (the
 * factors are fitted back to factor, low/high_freq_factor and
 * original_max_position_embeddings, and the fit is accepted only if it
 * regenerates every factor bit for bit; otherwise QF_EUNSUPPORTED). Floats
 * are written in the shortest form that reads back as the same F32.
 *
 * The folder appears whole or not at all: everything is written into a
 * temporary folder ".<name>.XXXXXX" next to out_dir, which is renamed to
 * out_dir at the end. An existing out_dir is refused (QF_EEXIST) unless
 * QF_EXPORT_FORCE is given; then it is replaced (the old folder is
 * removed after the swap). The library never prints.
 */
#ifndef QF_EXPORT_HF_H
#define QF_EXPORT_HF_H

#include <stdint.h>

#include "convert/source.h"
#include "formats/error.h"

enum { QF_EXPORT_FORCE = 1 }; /* flags: replace an existing out_dir */

/* Facts about a finished export, for tools to mention (bit set). */
enum { QF_EXPORT_REPORT_NO_TOKENIZER = 1 };

#define QF_EXPORT_DEFAULT_SHARD_BYTES 5000000000ull /* HF's max_shard_size "5GB" */

typedef struct qf_export_hf_opts {
    int dtype;            /* QF_DTYPE_F32, QF_DTYPE_F16 or QF_DTYPE_BF16 (formats/types.h) */
    int flags;            /* QF_EXPORT_FORCE */
    uint64_t shard_bytes; /* tensor bytes per file before sharding; 0: the default */
    int report;           /* out: QF_EXPORT_REPORT_* bits */
} qf_export_hf_opts;

/*
 * Write the HF folder `out_dir` from `src` with tensors in `dtype`
 * (QF_DTYPE_F32 / F16 / BF16). Returns 0, or QF_EINVAL (bad dtype),
 * QF_EEXIST (out_dir exists, no force), QF_EUNSUPPORTED (architecture,
 * tensor name or tensor type it cannot export), QF_EFORMAT (metadata it
 * needs is missing or contradicts the tensors), QF_EIO, QF_ENOMEM; on
 * failure nothing is left behind.
 */
int qf_export_hf(const qf_source *src, const char *out_dir, int dtype, int flags, qf_err *err);

/* Same with options (opts->report is filled on success). */
int qf_export_hf_ex(const qf_source *src, const char *out_dir, qf_export_hf_opts *opts,
                    qf_err *err);

#endif /* QF_EXPORT_HF_H */
