/*
 * verify/model.h - a reference forward pass for LLaMA-family decoders, in
 * F32, from any model source (a GGUF file of any block type, or an HF
 * folder read as its F32 conversion).
 *
 * Architectures (general.architecture):
 *   llama  token embedding, RMSNorm, RoPE in ggml's NORM mode (adjacent
 *          pairs (2i, 2i+1): the converter permuted q/k rows for it),
 *          grouped-query attention, SwiGLU, final RMSNorm, output
 *          (output.weight, or token_embd.weight when tied);
 *          rope_freqs.weight (llama3 scaling) and linear scaling
 *   qwen2  as llama with q/k/v biases and NEOX RoPE (pairs (i, i + n_rot/2))
 *   qwen3  as llama with per-head RMSNorm on q and k before RoPE, NEOX RoPE
 *
 * The three parts are kept apart as in llama2.c's run.c: the configuration
 * (qf_model_config, plain values), the weights (qf_model, read-only once
 * loaded, shareable between run states) and the run state (qf_model_state:
 * KV cache and activations of one sequence).
 *
 * Numerics: matrix products follow verify/gemm.h (same bits on every SIMD
 * path and thread count); norms and softmax sums in double; RoPE angles as
 * PyTorch forms them (float inverse frequencies times float positions),
 * cos/sin in double. A token's logits do not depend on the batch it came in
 * nor on the thread count. A run state can also round as llama.cpp's CPU
 * backend does (QF_NUMERICS_GGML below).
 */
#ifndef QF_MODEL_H
#define QF_MODEL_H

#include <stdint.h>

#include "convert/source.h"
#include "formats/error.h"

enum { QF_ROPE_NORM = 0, QF_ROPE_NEOX = 2 }; /* ggml's rope mode numbers */

/* Hyperparameters, from the <arch>.* metadata (plain value struct). */
typedef struct qf_model_config {
    char arch[16];         /* "llama", "qwen2", "qwen3" */
    int64_t n_layer;       /* <arch>.block_count */
    int64_t dim;           /* <arch>.embedding_length */
    int64_t n_ff;          /* <arch>.feed_forward_length */
    int64_t n_head;        /* <arch>.attention.head_count */
    int64_t n_head_kv;     /* <arch>.attention.head_count_kv (default n_head) */
    int64_t head_dim;      /* <arch>.attention.key_length (default dim / n_head) */
    int64_t n_rot;         /* <arch>.rope.dimension_count (default head_dim) */
    int64_t n_vocab;       /* rows of token_embd.weight */
    int64_t n_ctx_train;   /* <arch>.context_length, 0 if absent */
    float norm_eps;        /* <arch>.attention.layer_norm_rms_epsilon (default 1e-5) */
    float rope_base;       /* <arch>.rope.freq_base (default 10000) */
    float rope_freq_scale; /* 1 / <arch>.rope.scaling.factor for "linear", else 1 */
    int rope_mode;         /* QF_ROPE_NORM or QF_ROPE_NEOX */
    int has_rope_freqs;    /* rope_freqs.weight present (llama3) */
    int has_qkv_bias;      /* attn_{q,k,v}.bias present */
    int has_qk_norm;       /* attn_{q,k}_norm.weight present */
    int tied_output;       /* no output.weight: logits use token_embd */
} qf_model_config;

typedef struct qf_model qf_model;
typedef struct qf_model_state qf_model_state;

/*
 * Read the configuration and every weight of `src`, dequantized to F32 (on
 * up to n_threads threads). The model does not keep `src`: close it when
 * done with its metadata. Returns 0 and sets *out (owned by the caller:
 * qf_model_free), or QF_EUNSUPPORTED (another architecture, a rope scaling
 * qforge does not implement, a block type it cannot dequantize), QF_EFORMAT
 * (a missing key or tensor, a shape that disagrees with the config),
 * QF_ENOMEM; the message names the file and the item.
 */
int qf_model_load(const qf_source *src, int n_threads, qf_model **out, qf_err *err);

void qf_model_free(qf_model *m); /* accepts NULL */

/* The configuration (borrowed). */
const qf_model_config *qf_model_get_config(const qf_model *m);

/* F32 bytes the weights take. */
uint64_t qf_model_weight_bytes(const qf_model *m);

/*
 * How products and attention round (a property of the run, not of the
 * weights):
 *   QF_NUMERICS_F32   everything in F32: what the weights alone cost; this
 *                     is what agrees with a PyTorch float32 forward pass.
 *   QF_NUMERICS_GGML  also round what llama.cpp's CPU backend rounds: each
 *                     product's input quantized to the weight type's dot
 *                     partner (Q8_0, Q8_1, Q8_K, F16, BF16), an F16 KV cache,
 *                     F16 queries and softmax weights in attention. The
 *                     figures then match llama-perplexity's (see model.c).
 */
enum { QF_NUMERICS_F32 = 0, QF_NUMERICS_GGML = 1 };

/*
 * A run state for sequences of up to n_ctx tokens, evaluated n_batch
 * tokens per matrix product (n_batch is clamped to [1, n_ctx]), on
 * n_threads threads, with the given numerics. Returns 0 and sets *out
 * (owned by the caller: qf_model_state_free), QF_EINVAL or QF_ENOMEM.
 */
int qf_model_state_new(const qf_model *m, int64_t n_ctx, int64_t n_batch, int n_threads,
                       int numerics, qf_model_state **out, qf_err *err);

void qf_model_state_free(qf_model_state *s); /* accepts NULL */

/* Forget the sequence (empty KV cache, next token at position 0). */
void qf_model_state_reset(qf_model_state *s);

/* Tokens in the KV cache (the position of the next token). */
int64_t qf_model_state_pos(const qf_model_state *s);

/*
 * Append n tokens to the sequence and run them. Logits of tokens
 * [out_first, n) are written to logits (caller's buffer of
 * (n - out_first) * n_vocab floats, row-major); out_first = n asks for none.
 * Returns 0, QF_EINVAL (a token id outside the vocabulary, out_first outside
 * [0, n], or the sequence would pass n_ctx) or QF_ENOMEM.
 */
int qf_model_eval(const qf_model *m, qf_model_state *s, const int32_t *tokens, int64_t n,
                  int64_t out_first, float *logits, qf_err *err);

/*
 * Watching the matrix products (what llama-imatrix collects; see
 * tools/qforge-imatrix.c). Once set, fn is called before each product
 * y = W x of the forward pass with:
 *   name      W's tensor name as in the GGUF: "blk.3.attn_q.weight", ...,
 *             and "output.weight" for the logits ("token_embd.weight" when
 *             the model is tied);
 *   x         the input, n_tokens rows of n_in floats, row-major and
 *             contiguous (borrowed for the call only). These are the F32
 *             values the forward pass holds, before the rounding of
 *             QF_NUMERICS_GGML: the tensor llama.cpp's eval callback sees as
 *             the product's src1.
 * attn_q, attn_k and attn_v take the same input: fn is called once for each
 * name. The products of a batch come in forward order (per layer q, k, v,
 * attn_output, ffn_gate, ffn_up, ffn_down; the output last, and only for the
 * tokens whose logits were asked for), one call per product per batch of up
 * to n_batch tokens, on the thread that called qf_model_eval. A non-zero
 * return (a negative QF_E* code, with its message in err, qf_model_eval's
 * record) stops the evaluation, and qf_model_eval returns that code. fn = NULL removes the observer; without one the
 * forward pass does no extra work.
 */
typedef int (*qf_model_observer)(void *user, const char *name, const float *x, int64_t n_tokens,
                                 int64_t n_in, qf_err *err);

void qf_model_state_set_observer(qf_model_state *s, qf_model_observer fn, void *user);

#endif /* QF_MODEL_H */
