/*
 * convert/convert.h - Hugging Face model folder -> GGUF, streaming.
 *
 * The conversion is planned first (config.json read, architecture looked up,
 * every input tensor mapped to its GGUF name, type and shape, the metadata
 * and tokenizer gathered), then written: one tensor at a time, in chunks of
 * rows converted on several threads straight from the mapped input into the
 * output, with the input's pages given back behind it. Memory stays a few
 * chunk buffers, whatever the model's size.
 *
 * What is written follows llama.cpp's convert_hf_to_gguf.py, so the same
 * folder gives the same tensors (names, order, types, shapes, bytes) and the
 * same metadata; the few deliberate differences are listed in docs/compat.md.
 *
 *   architectures   LlamaForCausalLM, MistralForCausalLM -> "llama"
 *                   (q/k rows permuted from rotate-half to interleaved RoPE);
 *                   Qwen2ForCausalLM -> "qwen2" (q/k/v biases);
 *                   Qwen3ForCausalLM -> "qwen3" (q/k norms)
 *   tensor order    input order: shards by file name, names sorted within
 *                   each shard, as llama.cpp reads them
 *   tensor types    1-D tensors, norms and biases stay F32; 2-D weights take
 *                   the output type; Q8_0 rows whose length is not a multiple
 *                   of 32 fall back to F16
 */
#ifndef QF_CONVERT_H
#define QF_CONVERT_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/gguf.h"
#include "formats/qfm.h"

/* Output types, as --outtype names them. */
typedef enum qf_outtype {
    QF_OUTTYPE_AUTO = 0, /* F16 source -> f16, BF16 -> bf16, otherwise f16 */
    QF_OUTTYPE_F32,
    QF_OUTTYPE_F16,
    QF_OUTTYPE_BF16,
    QF_OUTTYPE_Q8_0,
} qf_outtype;

/* Parse "f32", "f16", "bf16", "q8_0", "auto" (case-insensitive); -1 if bad. */
int qf_outtype_from_name(const char *name);
const char *qf_outtype_name(qf_outtype t);

typedef struct qf_convert_opts {
    qf_outtype outtype;
    int threads;            /* >= 1 */
    int vocab_only;         /* metadata and tokenizer, no tensors */
    const char *name;       /* general.name override, or NULL */
} qf_convert_opts;

/* Progress: called from the writing thread with bytes of output written so
 * far and the total; may be NULL. */
typedef void (*qf_progress_fn)(void *ctx, uint64_t done, uint64_t total);

typedef struct qf_convert qf_convert;

/* One planned output tensor (plain value struct, borrowed from the plan). */
typedef struct qf_convert_tensor {
    const char *name;     /* GGUF name, e.g. "blk.0.attn_q.weight" */
    const char *source;   /* the input tensor it comes from */
    int type;             /* ggml type id */
    uint32_t n_dims;
    uint64_t ne[4];       /* GGUF order: ne[0] is the row length */
    uint64_t nbytes;
    int fallback;         /* 1 if the output type could not be used (e.g. Q8_0 on 172 columns) */
} qf_convert_tensor;

/*
 * Plan the conversion of the model folder `dir`. Returns 0 and sets *out
 * (owned by the caller: qf_convert_free), or a negative code with a message
 * naming the file and the key or tensor (missing or contradictory config
 * keys, unknown architecture, shapes that disagree with the config, tensors
 * missing or left over, unreadable tokenizer).
 */
int qf_convert_plan(const char *dir, const qf_convert_opts *opts, qf_convert **out, qf_err *err);

/* Free; accepts NULL. */
void qf_convert_free(qf_convert *c);

/* The plan: architecture ("llama"), output type chosen, tensors, file size. */
const char *qf_convert_arch(const qf_convert *c);
qf_outtype qf_convert_outtype(const qf_convert *c);
int64_t qf_convert_tensor_count(const qf_convert *c);
const qf_convert_tensor *qf_convert_tensor_at(const qf_convert *c, int64_t i);
uint64_t qf_convert_file_size(const qf_convert *c);
uint64_t qf_convert_param_count(const qf_convert *c);

/*
 * Write the planned GGUF to `path` (flags as qf_out_open: QF_OUT_FORCE to
 * replace). With `manifest_path` set, also write the qforge-sum manifest of
 * the output, hashed while the data streams out. Returns 0 or a negative
 * code; on failure no output (and no manifest) is left behind.
 */
int qf_convert_write(qf_convert *c, const char *path, int flags, const char *manifest_path,
                     qf_progress_fn progress, void *progress_ctx, qf_err *err);

/*
 * Write the planned model as a QFM (formats/qfm.h) instead: the same
 * metadata and tensor bytes, streamed through the QFM writer (compressed on
 * opts->threads threads), with a provenance naming the folder's files and
 * their SHA-256 (model_dir, may be NULL) and the command line argv[0..argc).
 */
int qf_convert_write_qfm(qf_convert *c, const char *path, int flags, const qf_qfm_opts *opts,
                         const char *model_dir, int argc, char **argv, qf_progress_fn progress,
                         void *progress_ctx, qf_err *err);

/*
 * Rows [row0, row0 + n) of planned tensor i as F32 (dst: n * ne[0] floats),
 * permuted as the output holds them: what an F32 conversion would store.
 * Thread-safe. Returns 0 or QF_EINVAL.
 */
int qf_convert_rows_f32(const qf_convert *c, int64_t i, uint64_t row0, uint64_t n, float *dst);

/* Give back the input pages behind planned tensor i, or behind its rows
 * [row0, row0 + n) (a no-op for permuted q/k tensors, whose rows are read
 * out of order: they go with the whole tensor). */
void qf_convert_release(const qf_convert *c, int64_t i);
void qf_convert_release_rows(const qf_convert *c, int64_t i, uint64_t row0, uint64_t n);

/* The planned metadata (borrowed): every key the GGUF will hold, in order. */
const qf_gguf_writer *qf_convert_metadata(const qf_convert *c);

/*
 * llama3 rope scaling: the dim/2 per-dimension frequency factors llama.cpp's
 * converter stores as rope_freqs.weight, into f (caller's buffer, dim/2
 * floats), from rope_theta and rope_scaling's factor, low_freq_factor,
 * high_freq_factor and original_max_position_embeddings (float32
 * arithmetic, as torch does; low != high).
 */
void qf_convert_llama3_rope_factors(float base, uint64_t dim, double factor, double low, double high,
                                    double orig_ctx, float *f);

#endif /* QF_CONVERT_H */
