/*
 * quantize/mix.h - which ggml type each tensor of a model gets: llama.cpp's
 * named mixes (Q4_K_M, Q3_K_S, ...), decided tensor by tensor exactly as
 * llama-quantize b4747 decides them (llama_tensor_get_type and
 * llama_model_quantize_impl in src/llama-quant.cpp), plus the options that
 * override them.
 *
 * A mix is named by a llama "ftype": the number llama.cpp writes to
 * general.file_type. Each has a default ggml type, and a set of rules that
 * give some tensors more bits:
 *
 *   ftype  name     default   ftype  name     default   ftype  name     default
 *      0   F32      F32         10   Q2_K     Q2_K        16   Q5_K_S   Q5_K
 *      1   F16      F16         11   Q3_K_S   Q3_K        17   Q5_K_M   Q5_K
 *      2   Q4_0     Q4_0        12   Q3_K_M   Q3_K        18   Q6_K     Q6_K
 *      3   Q4_1     Q4_1        13   Q3_K_L   Q3_K        25   IQ4_NL   IQ4_NL
 *      7   Q8_0     Q8_0        14   Q4_K_S   Q4_K        30   IQ4_XS   IQ4_XS
 *      8   Q5_0     Q5_0        15   Q4_K_M   Q4_K        32   BF16     BF16
 *      9   Q5_1     Q5_1
 *   aliases: Q3_K = Q3_K_M, Q4_K = Q4_K_M, Q5_K = Q5_K_M.
 *
 * What happens to one tensor, in this order (qf_mix_choose):
 *   1. Tensors that are never quantized keep their stored type: names not
 *      ending in "weight", 1-D tensors (trailing dims of 1 do not count),
 *      norms ("_norm.weight"), MoE gate inputs, positional and token-type
 *      embeddings, Mamba's ssm_conv1d, RWKV's time_mix_{first,w1,w2,
 *      decay_w1,decay_w2,lerp_fused}, T5's attn_rel_b, and output.weight
 *      under --leave-output-tensor.
 *   2. The mix's default type; unless --pure (or the mix is a plain F32/F16/
 *      BF16 one), the mix's rules for the tensor's kind (the table in mix.c).
 *   3. --tensor-type REGEX=TYPE: the first pattern found in the name wins.
 *   4. --token-embedding-type for token_embd.weight, --output-tensor-type
 *      for output.weight.
 *   5. A type whose block does not divide the row length falls back as
 *      llama.cpp does: Q2_K, Q3_K, IQ4_XS -> IQ4_NL; Q4_K -> Q5_0;
 *      Q5_K -> Q5_1; Q6_K -> Q8_0; and F16 if the fallback does not fit
 *      either. Where llama.cpp stops ("Unsupported tensor size", e.g. Q8_0
 *      on 172 columns) qforge uses F16 and says so (`llama_fails`).
 *   6. A tensor already stored in the chosen type is copied, not converted.
 *
 * Rules that count tensors (attn_v in order; ffn_down by layer) make the
 * choice depend on the tensors seen before: call qf_mix_choose once per
 * tensor, in output order (quantize_model.h gives that order).
 */
#ifndef QF_MIX_H
#define QF_MIX_H

#include <stdint.h>

#include "formats/error.h"

/* llama.cpp's ftype numbers (llama.h), as written to general.file_type. */
typedef enum qf_ftype {
    QF_FTYPE_F32 = 0,
    QF_FTYPE_F16 = 1,
    QF_FTYPE_Q4_0 = 2,
    QF_FTYPE_Q4_1 = 3,
    QF_FTYPE_Q8_0 = 7,
    QF_FTYPE_Q5_0 = 8,
    QF_FTYPE_Q5_1 = 9,
    QF_FTYPE_Q2_K = 10,
    QF_FTYPE_Q3_K_S = 11,
    QF_FTYPE_Q3_K_M = 12,
    QF_FTYPE_Q3_K_L = 13,
    QF_FTYPE_Q4_K_S = 14,
    QF_FTYPE_Q4_K_M = 15,
    QF_FTYPE_Q5_K_S = 16,
    QF_FTYPE_Q5_K_M = 17,
    QF_FTYPE_Q6_K = 18,
    QF_FTYPE_IQ4_NL = 25,
    QF_FTYPE_IQ4_XS = 30,
    QF_FTYPE_BF16 = 32,
} qf_ftype;

/* The ftype for a mix name (case-insensitive; aliases accepted) or for its
 * number written in decimal ("15"); -1 if qforge has no such mix. */
int qf_mix_from_name(const char *name);

/* Canonical name of an ftype ("Q4_K_M"), or NULL if unknown. */
const char *qf_mix_name(int ftype);

/* The mix's default ggml type, or -1 if the ftype is unknown. */
int qf_mix_default_type(int ftype);

/* One line per mix, in llama-quantize's order ("Q4_K_M", ftype, a short
 * description), for --help; i from 0, NULL name at the end. */
const char *qf_mix_list(int i, int *ftype, const char **desc);

/* What the rules need to know about the model (plain value struct). */
typedef struct qf_mix_model {
    const char *arch;        /* general.architecture ("llama"); borrowed; may be "" */
    int64_t n_layer;         /* <arch>.block_count (0 if absent) */
    int64_t n_head;          /* <arch>.attention.head_count, layer 0 */
    int64_t n_head_kv;       /* <arch>.attention.head_count_kv, layer 0 (default n_head) */
    int64_t n_expert;        /* <arch>.expert_count (0 if absent) */
    int64_t n_attention_wv;  /* tensors whose name holds attn_v.weight, attn_qkv.weight or
                              * attn_kv_b.weight: count with qf_mix_model_scan */
    int has_output;          /* an "output.weight" tensor exists (else the token embedding
                              * is the output and takes its rules) */
} qf_mix_model;

/* Count tensor `name` into n_attention_wv / has_output (llama.cpp counts
 * every tensor of the file before choosing any type). */
void qf_mix_model_scan(qf_mix_model *m, const char *name);

/* Options (plain value struct). Types are ggml type ids; -1 = not given. */
typedef struct qf_mix_opts {
    int ftype;                 /* the mix */
    int pure;                  /* --pure: no per-tensor rules, the default type everywhere */
    int leave_output_tensor;   /* --leave-output-tensor: output.weight stays as stored */
    int has_imatrix;           /* an importance matrix is used (some rules depend on it) */
    int output_tensor_type;    /* --output-tensor-type, or -1 */
    int token_embedding_type;  /* --token-embedding-type, or -1 */
} qf_mix_opts;

typedef struct qf_mix qf_mix;

/*
 * New chooser for one pass over a model. Returns 0 and sets *out (owned by
 * the caller: qf_mix_free), or QF_EINVAL (unknown ftype, a type qforge cannot
 * write) / QF_ENOMEM. `model` is copied (arch is borrowed).
 */
int qf_mix_new(const qf_mix_opts *opts, const qf_mix_model *model, qf_mix **out, qf_err *err);

/* Free; accepts NULL. */
void qf_mix_free(qf_mix *m);

/*
 * Add a --tensor-type rule "REGEX=TYPE": a POSIX extended regex searched in
 * the tensor name (not anchored), and a ggml type name (case-insensitive;
 * the last '=' separates them). Rules are tried in the order added; the
 * first that matches wins. Returns 0, or QF_EINVAL with a message naming the
 * spec (no '=', empty pattern, bad regex, unknown type or one qforge cannot
 * write), or QF_ENOMEM.
 */
int qf_mix_add_override(qf_mix *m, const char *spec, qf_err *err);

/* Why a tensor got its type (qf_mix_choice.why). */
typedef enum qf_mix_reason {
    QF_MIX_KEPT = 0,       /* never quantized (see the list at the top) */
    QF_MIX_DEFAULT,        /* the mix's default type */
    QF_MIX_RULE,           /* a rule of the mix */
    QF_MIX_PURE,           /* --pure: the default type */
    QF_MIX_OVERRIDE,       /* --tensor-type */
    QF_MIX_OUTPUT_OPT,     /* --output-tensor-type */
    QF_MIX_EMBD_OPT,       /* --token-embedding-type */
} qf_mix_reason;

/* The decision for one tensor (plain value struct). */
typedef struct qf_mix_choice {
    int type;          /* the type the tensor is written in */
    int quantize;      /* 1: converted from F32 rows; 0: copied as stored */
    int wanted;        /* the type asked for before any fallback (== type if none) */
    int fallback;      /* 1: `wanted` could not take the row length */
    int llama_fails;   /* 1: llama.cpp b4747 stops here ("Unsupported tensor size");
                        * qforge wrote F16 instead */
    qf_mix_reason why;
    const char *pattern; /* QF_MIX_OVERRIDE: the regex that matched (borrowed from the
                          * qf_mix: valid while it lives), else NULL */
} qf_mix_choice;

/*
 * Choose the type of the next tensor: name, dims as stored (ne[0] is the row
 * length), and its stored ggml type. Call once per tensor, in output order.
 * Returns 0 and fills *out, or QF_EINVAL (bad arguments).
 */
int qf_mix_choose(qf_mix *m, const char *name, uint32_t n_dims, const uint64_t ne[4],
                  int stored_type, qf_mix_choice *out, qf_err *err);

/* The fallback llama.cpp uses for `type` on a row of `ne0` elements: the type
 * itself if its block divides ne0, else the fallback described at the top
 * (F16 at the end). *llama_fails is set when llama.cpp has no fallback. */
int qf_mix_fallback(int type, uint64_t ne0, int *llama_fails);

/* The layer of a tensor named "blk.<N>...." as llama.cpp reads it
 * (sscanf "blk.%d."), or -1. Output order and MoE rules use it. */
int64_t qf_mix_layer(const char *name);

/* llama.cpp's use_more_bits(i, n): i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
 * (C integer division and remainder). */
int qf_mix_use_more_bits(int64_t i, int64_t n);

#endif /* QF_MIX_H */
