/*
 * convert/quantize_model.h - a model (a GGUF file or a Hugging Face folder,
 * convert/source.h) to a quantized GGUF, written as llama-quantize b4747
 * writes it, streamed in bounded memory.
 *
 * The output, piece by piece:
 *
 *   metadata   the source's pairs in order, then general.quantization_version
 *              = 2 and general.file_type = the mix's ftype (setting a key that
 *              exists moves it to the end, so file_type ends up last); the
 *              split.* keys removed; with an importance matrix, then
 *              quantize.imatrix.file (the path as given), .dataset (if the
 *              file names one), .entries_count (INT32) and .chunks_count
 *              (INT32, if > 0); then the caller's keys (opts.extra_kv).
 *              Strings are cut to 127 bytes as llama.cpp's
 *              override buffers cut them (at a UTF-8 boundary).
 *   order      tensors outside blocks first, sorted by name, then blk.0,
 *              blk.1, ... in numeric order, each block sorted by name
 *              (llama.cpp's weights map order).
 *   types      quantize/mix.h, tensor by tensor; or the caller's per-tensor
 *              types (opts.source_types: a size budget) for every tensor
 *              the mix would quantize.
 *   data       each converted tensor read as F32 rows from the source,
 *              quantized with the importance weights of its name (when the
 *              matrix has an entry of ne[0] x ne[2] values; a mismatch is an
 *              error except for token_embd.weight, which llama.cpp then
 *              quantizes without weights), rows split across threads, each
 *              row checked for NaN/Inf before it is written. Tensors that
 *              keep their type are copied byte for byte.
 *
 * QFM output (qf_quantize_write_qfm): the same metadata, tensors and bytes,
 * in a QFM (formats/qfm.h) whose provenance holds the recipe; exporting it
 * gives back the GGUF qf_quantize_write writes. Only a QFM can hold QFM's
 * affine types (quantize/affine.h, opts.affine): then every tensor the F16
 * mix converts (2-D weights, token_embd and output included; norms and 1-D
 * tensors keep their type) gets the affine type, or int8-ch when its row
 * length is not a multiple of the group (a fallback, as the mixes'), except
 * where --tensor-type, --output-tensor-type or --token-embedding-type name
 * a ggml type; general.file_type is 1 (F16), the type of F16's mix, as no
 * llama.cpp ftype names these types (such a file has no GGUF form).
 *
 * An HF folder is read as its F32 conversion, so folder -> TYPE gives the
 * same bytes as folder -> F32 GGUF -> TYPE. Memory: a chunk of rows per
 * write (about 16 MiB of F32 and its output), whatever the model's size; the
 * source's pages of a tensor are given back once it is written.
 */
#ifndef QF_QUANTIZE_MODEL_H
#define QF_QUANTIZE_MODEL_H

#include <stdint.h>

#include "convert/convert.h" /* qf_progress_fn */
#include "convert/source.h"
#include "formats/error.h"
#include "formats/gguf.h"
#include "formats/qfm.h"

typedef struct qf_quantize_opts {
    int ftype;                        /* the mix (quantize/mix.h); ignored with `affine` */
    int affine;                       /* an affine type code (QF_AFFINE_CODE_BASE + i,
                                       * quantize/affine.h) instead of a mix, or -1; no
                                       * imatrix or source_types with it */
    int threads;                      /* >= 1; the output does not depend on it */
    int pure;                         /* --pure */
    int leave_output_tensor;          /* --leave-output-tensor */
    int allow_requantize;             /* convert already quantized tensors (dequantized first) */
    int output_tensor_type;           /* ggml type for output.weight, or -1 */
    int token_embedding_type;         /* ggml type for token_embd.weight, or -1 */
    const char *const *tensor_types;  /* n_tensor_types "REGEX=TYPE" rules (borrowed) */
    int n_tensor_types;
    const char *imatrix;              /* importance matrix file, or NULL */
    /* Types chosen elsewhere (a size budget, convert/quantize_budget.h): per
     * source tensor index, a ggml type or -1; borrowed, NULL for none. They
     * replace the mix's choice for every tensor the mix would quantize (a
     * type whose block does not divide the row falls back as the mix's do). */
    const int *source_types;
    /* Called once while the metadata is planned, after every other key, to
     * add keys of the caller's (may be NULL). */
    int (*extra_kv)(void *ctx, qf_gguf_writer *w, qf_err *err);
    void *extra_kv_ctx;
} qf_quantize_opts;

/* Defaults: ftype -1 (to be set), affine -1, 1 thread, no options, types -1, no
 * source_types or extra_kv. */
void qf_quantize_opts_init(qf_quantize_opts *o);

/* One planned output tensor (plain value struct, borrowed from the plan). */
typedef struct qf_quantize_tensor {
    const char *name;
    int64_t source_index;  /* index in the source */
    int in_type;           /* ggml type stored in the source (F32 for a folder) */
    int type;              /* ggml type written, or an affine type code (>= QF_AFFINE_CODE_BASE) */
    int wanted;            /* type asked for before a fallback (== type if none) */
    int quantize;          /* 1: converted from F32 rows; 0: copied as stored */
    int fallback;          /* 1: the row length forced another type than `wanted` */
    int llama_fails;       /* 1: llama.cpp b4747 stops on this tensor; F16 written */
    int requantize;        /* 1: the input is quantized and is dequantized first */
    int imatrix;           /* 1: quantized with importance weights */
    int imatrix_missing;   /* 1: an imatrix is used but has no entry for this tensor */
    int budget;            /* 1: the type came from opts.source_types */
    int why;               /* qf_mix_reason */
    const char *pattern;   /* the --tensor-type pattern that chose the type, or NULL */
    uint32_t n_dims;       /* as written (ggml_n_dims: trailing 1s dropped) */
    uint64_t ne[4];
    uint64_t n_elements;
    uint64_t in_bytes;     /* bytes in the source as stored */
    uint64_t out_bytes;    /* bytes written */
} qf_quantize_tensor;

/* Totals over the plan (plain value struct). */
typedef struct qf_quantize_totals {
    int64_t n_tensors, n_quantized, n_copied, n_fallback, n_llama_fails, n_requantized;
    int64_t n_imatrix_used, n_imatrix_missing;
    uint64_t n_elements;
    uint64_t in_bytes;   /* tensor data of the source as stored */
    uint64_t out_bytes;  /* tensor data written, without padding */
    uint64_t file_size;  /* the GGUF file (0 when affine types leave no GGUF form); after
                          * qf_quantize_write_qfm, the QFM file */
} qf_quantize_totals;

typedef struct qf_quantize qf_quantize;

/*
 * Plan the quantization of `src` (borrowed: it must outlive the plan).
 * Reads the imatrix if one is given. Returns 0 and sets *out (owned by the
 * caller: qf_quantize_free), or a negative code with a message naming the
 * file and the tensor: QF_EINVAL (bad options or --tensor-type rules; an
 * already quantized tensor without allow_requantize; an imatrix entry of the
 * wrong size), QF_EUNSUPPORTED (a stored type qforge cannot read), imatrix
 * read errors, QF_ENOMEM.
 */
int qf_quantize_plan(const qf_source *src, const qf_quantize_opts *opts, qf_quantize **out,
                     qf_err *err);

/* Free; accepts NULL. */
void qf_quantize_free(qf_quantize *q);

int64_t qf_quantize_tensor_count(const qf_quantize *q);
const qf_quantize_tensor *qf_quantize_tensor_at(const qf_quantize *q, int64_t i); /* NULL if out of range */
void qf_quantize_get_totals(const qf_quantize *q, qf_quantize_totals *t);

/* The name of a plan's tensor type: a ggml name ("Q4_K") or an affine one
 * ("int4-g64"); "?" for anything else. Static. */
const char *qf_quantize_type_name(int type);

/* 1 if some tensor of the plan gets an affine type (then only
 * qf_quantize_write_qfm can write it), else 0. */
int qf_quantize_has_affine(const qf_quantize *q);

/* The metadata the output will hold, in order (borrowed). */
const qf_gguf_writer *qf_quantize_metadata(const qf_quantize *q);

/* The imatrix in use: entries and chunks (-1 if none or unknown), dataset
 * (borrowed, or NULL). Returns 1 if an imatrix is used, else 0. */
int qf_quantize_imatrix_info(const qf_quantize *q, int64_t *entries, int64_t *chunks,
                             const char **dataset);

/*
 * Write the planned GGUF to `path` (atomic; flags as qf_out_open: QF_OUT_FORCE
 * replaces). With `manifest_path`, also write the llama-gguf-hash style
 * manifest of the output, hashed while the data streams out. `progress` (may
 * be NULL) is called from the calling thread with output bytes written and
 * the total. A plan is written at most once. Returns 0 or a negative code:
 * QF_EINVAL with "tensor "X": row R: ..." for NaN/Inf in the input or a value
 * the output type cannot hold, or for a plan with affine types (QFM only);
 * I/O errors. On failure nothing is left behind.
 */
int qf_quantize_write(qf_quantize *q, const char *path, int flags, const char *manifest_path,
                      qf_progress_fn progress, void *progress_ctx, qf_err *err);

/* How a plan goes into a QFM (plain value struct; pointers borrowed). */
typedef struct qf_quantize_qfm_opts {
    qf_qfm_opts qfm;            /* codec, level, frame size; threads 0: the plan's threads */
    const char *type_name;      /* the recipe's "type" (the TYPE as asked, "Q4_K_M"); NULL:
                                 * the mix's or the affine type's name */
    const char *const *sources; /* input paths hashed into the provenance ("sources"); NULL:
                                 * the source's path */
    int n_sources;
    int argc;                   /* the command line for the provenance (0 / NULL: none) */
    char **argv;
    const char *budget_json;    /* a JSON object for the recipe's "budget" (a size budget's
                                 * summary), or NULL */
} qf_quantize_qfm_opts;

void qf_quantize_qfm_opts_init(qf_quantize_qfm_opts *o); /* zstd, default level, no extras */

/*
 * Write the plan as a QFM at `path` (atomic; flags as qf_out_open): the
 * metadata and tensors qf_quantize_write would write (affine types too),
 * streamed in the same bounded memory, compressed as `o->qfm` says. The
 * provenance holds "sources" (each with its SHA-256), "command_line",
 * "qforge_version", "created" (qf_qfm_set_basic_provenance) and "recipe":
 *
 *   {"type": "Q4_K_M", "ftype": 15,                 the mix (or affine type)
 *    "options": {"pure": true, "tensor_types": ["attn_v=Q8_0"], ...}
 *                                                  only the options given
 *    "imatrix": {"file": "x.dat", "sha256": "...", "entries": 40,
 *                "chunks": 100, "dataset": "..."}  with an imatrix
 *    "budget": {...},                              o->budget_json
 *    "tensors": [{"name": "output.weight", "type": "Q6_K", "from": "F32"},
 *                {"name": "...", "type": "int8-ch", "from": "F32",
 *                 "fallback_from": "int4-g64"}, ...]}   every tensor, in order
 *
 * Progress and failures as qf_quantize_write; at most once per plan.
 */
int qf_quantize_write_qfm(qf_quantize *q, const char *path, int flags,
                          const qf_quantize_qfm_opts *o, qf_progress_fn progress,
                          void *progress_ctx, qf_err *err);

#endif /* QF_QUANTIZE_MODEL_H */
