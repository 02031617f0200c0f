/*
 * convert/tensor_names.h - tensor names in the two conventions: Hugging Face
 * module names and llama.cpp's GGUF names, one table read both ways (by
 * qforge-convert, HF -> GGUF, and by the Hugging Face export, GGUF -> HF).
 *
 *   model.embed_tokens.weight                  token_embd.weight
 *   model.norm.weight                          output_norm.weight
 *   lm_head.weight                             output.weight
 *   model.layers.N.<hf module>.{weight,bias}   blk.N.<gguf module>.{weight,bias}
 *
 * with the per-layer modules input_layernorm = attn_norm,
 * self_attn.{q,k,v,o}_proj = attn_{q,k,v,output}, self_attn.{q,k}_norm =
 * attn_{q,k}_norm, post_attention_layernorm = ffn_norm,
 * mlp.{gate,up,down}_proj = ffn_{gate,up,down}. A layer number is decimal
 * digits only (no sign, no space) below UINT64_MAX.
 */
#ifndef QF_CONVERT_TENSOR_NAMES_H
#define QF_CONVERT_TENSOR_NAMES_H

#include <stddef.h>
#include <stdint.h>

/*
 * HF name -> GGUF name into out (caller's buffer, truncated to cap). Returns
 * 1 with *layer (N, or UINT64_MAX for a tensor outside the layers) and
 * *module (the GGUF module, "attn_q" or "token_embd"; static), or 0 if the
 * name is not in the table.
 */
int qf_tensor_names_to_gguf(const char *hf, char *out, size_t cap, uint64_t *layer,
                            const char **module);

/* The same from a GGUF name to its HF name. */
int qf_tensor_names_to_hf(const char *gguf, char *out, size_t cap, uint64_t *layer,
                          const char **module);

/* The HF module of a per-layer GGUF module ("attn_q" -> "self_attn.q_proj"),
 * or NULL; static. */
const char *qf_tensor_names_layer_hf(const char *gguf_module);

#endif /* QF_CONVERT_TENSOR_NAMES_H */
