/*
 * formats/safetensors.h - safetensors reader (single file and sharded) and
 * writer.
 *
 * The file:
 *
 *   +-----------+----------------------------+-------------------------+
 *   | N: u64 LE | header: N bytes of UTF-8   | data: tensor bytes,     |
 *   |           | JSON, may end in spaces    | back to back            |
 *   +-----------+----------------------------+-------------------------+
 *
 *   header = { "__metadata__": { "key": "string", ... },        (optional)
 *              "<name>": { "dtype": "F32",
 *                          "shape": [d0, d1, ...],               (row-major)
 *                          "data_offsets": [begin, end] }, ... }
 *
 *   data_offsets are relative to the start of the data section. Like the
 *   reference implementation, the reader requires: N <= 100,000,000 and
 *   8 + N <= file size; a JSON object; string-to-string __metadata__; known
 *   dtypes; shapes of non-negative integers whose element count and byte size
 *   do not overflow; end - begin == elements x dtype size; the tensors, sorted
 *   by offset, are contiguous from 0 with no gap or overlap, and end exactly at
 *   the end of the file; no duplicate names.
 *
 *   A little stricter than the reference, on purpose: the header must start
 *   with '{' and hold only JSON whitespace between tokens; no control bytes
 *   or \u0000 in strings; shape and offset numbers are read exactly from
 *   their text (so 2.0, 2e0, 01 and anything above 2^64-1 are refused, with
 *   no rounding through doubles); a tensor entry has exactly the three keys
 *   above, once each; __metadata__ may be null (read as absent) and its keys
 *   must be unique; the element count over the non-zero dims must fit, even when another dim
 *   is 0.
 *
 * Sharded models: "model.safetensors.index.json" =
 *   { "metadata": {...}, "weight_map": { "<tensor name>": "<shard file>", ... } }
 * Every shard named must exist, every tensor named must be in the shard the
 * map names, and every tensor in a shard must be in the map. Shard names are
 * plain file names in the index's folder (no '/', '\\', "." or ".."). Other
 * keys of the index are ignored.
 *
 * Opening a folder: its model.safetensors.index.json if present; else its
 * one *.safetensors.index.json if there is exactly one (diffusers names
 * them diffusion_pytorch_model...); else its one *.safetensors. Hidden files
 * are ignored; symlinks are followed and shard paths are built from the
 * folder as given, so Hugging Face cache snapshots open as they are.
 *
 * Tensor order, as every consumer sees it: shards sorted by file name, and
 * inside each shard tensors sorted by name (bytewise), which is the order the
 * reference library lists them in.
 */
#ifndef QF_SAFETENSORS_H
#define QF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/file.h" /* QF_OUT_FORCE for qf_st_writer_begin */
#include "formats/types.h"

#define QF_ST_MAX_HEADER 100000000u
#define QF_ST_MAX_DIMS 8

typedef struct qf_st qf_st;

/* One tensor (plain value struct, borrowed from the reader). */
typedef struct qf_st_tensor {
    const char *name;               /* NUL-terminated */
    qf_dtype dtype;
    uint32_t n_dims;                /* 0 for a scalar */
    uint64_t shape[QF_ST_MAX_DIMS]; /* row-major: shape[n_dims-1] moves fastest */
    uint64_t n_elements;            /* 1 for a scalar, 0 if any dim is 0 */
    uint64_t nbytes;
    uint32_t file;                  /* shard index (see qf_st_file_path) */
    uint64_t offset;                /* absolute offset in its shard file */
    const uint8_t *data;            /* the bytes, inside the shard's mapping */
} qf_st_tensor;

/*
 * Open `path`: a .safetensors file, an index (any name ending in ".json"), or a
 * folder (its index.json if there is one, else its single *.safetensors
 * file; several .safetensors without an index is an error naming them).
 * Symlinks are followed (Hugging Face cache snapshots). Returns 0 and sets
 * *out (owned by the caller: qf_st_close), or QF_EIO / QF_EFORMAT /
 * QF_ETRUNC / QF_ELIMIT / QF_ENOTFOUND / QF_ENOMEM with a message naming
 * the file and the tensor.
 */
int qf_st_open(const char *path, qf_st **out, qf_err *err);

/* Same over a caller's buffer (borrowed; must outlive the reader) holding one
 * safetensors file. `name` is used in messages. The entry point for fuzzing. */
int qf_st_open_buffer(const void *buf, uint64_t size, const char *name, qf_st **out,
                      qf_err *err);

/* Free; accepts NULL. */
void qf_st_close(qf_st *st);

/* Tensors in the order described above. */
int64_t qf_st_tensor_count(const qf_st *st);
const qf_st_tensor *qf_st_tensor_at(const qf_st *st, int64_t i); /* NULL if out of range */
int64_t qf_st_find(const qf_st *st, const char *name);            /* index or -1 */

/* Shards: count, path (borrowed), size in bytes, header length N. */
uint32_t qf_st_file_count(const qf_st *st);
const char *qf_st_file_path(const qf_st *st, uint32_t file);
uint64_t qf_st_file_size(const qf_st *st, uint32_t file);
uint64_t qf_st_header_size(const qf_st *st, uint32_t file);

/* Path of the index.json the model was opened through, or NULL. */
const char *qf_st_index_path(const qf_st *st);

/* __metadata__ of one shard, in header order (borrowed, NUL-terminated). */
int64_t qf_st_meta_count(const qf_st *st, uint32_t file);
int qf_st_meta_at(const qf_st *st, uint32_t file, int64_t i, const char **key,
                  const char **value);
/* Value of `key` in any shard's __metadata__ (first shard first), or NULL. */
const char *qf_st_meta_get(const qf_st *st, const char *key);

/* Give back the pages of tensor i once it has been consumed (a no-op over a
 * caller's buffer or for an index out of range). */
void qf_st_release_tensor(const qf_st *st, int64_t i);

/* Same for bytes [off, off + len) of tensor i's data (offsets relative to
 * t->data, clipped to the tensor): for callers streaming a large tensor.
 * Only pages wholly inside the range are given back. */
void qf_st_release_range(const qf_st *st, int64_t i, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------- */

typedef struct qf_st_writer qf_st_writer;

/* Returns 0 and sets *out (owned by the caller: qf_st_writer_free). */
int qf_st_writer_new(qf_st_writer **out, qf_err *err);

/* Free, abandoning any output in progress. Accepts NULL. */
void qf_st_writer_free(qf_st_writer *w);

/* Add a __metadata__ entry (replaces an existing key; written in the order
 * keys were first set). Key and value must be valid UTF-8. QF_EINVAL after
 * begin. */
int qf_st_writer_set_meta(qf_st_writer *w, const char *key, const char *value, qf_err *err);

/* Declare the next tensor; data follows in declaration order. The name must
 * be non-empty, valid UTF-8, unique and not "__metadata__"; n_dims <= 8;
 * shape may be NULL when n_dims is 0. QF_EINVAL for a bad argument or after
 * begin, QF_ELIMIT if the size (or the running data size) overflows. */
int qf_st_writer_add_tensor(qf_st_writer *w, const char *name, qf_dtype dtype, uint32_t n_dims,
                            const uint64_t *shape, qf_err *err);

/* Open the output (atomic; flags as qf_out_open) and write the header:
 * compact JSON, __metadata__ first if set, then the tensors in declaration
 * order with contiguous data_offsets, padded with spaces so that N is a
 * multiple of 8. QF_EEXIST without QF_OUT_FORCE if `path` exists (nothing is
 * written); the writer can then begin again. */
int qf_st_writer_begin(qf_st_writer *w, const char *path, int flags, qf_err *err);

/* Append tensor data (may span tensors). Writing past the declared total is
 * QF_EINVAL and writes nothing. */
int qf_st_writer_write(qf_st_writer *w, const void *data, uint64_t n, qf_err *err);

/* Check every declared byte was supplied and commit. If bytes are missing:
 * QF_EINVAL naming the first incomplete tensor, and the output is abandoned
 * (no file, no temp file). The writer is spent either way: free it. */
int qf_st_writer_finish(qf_st_writer *w, qf_err *err);

#endif /* QF_SAFETENSORS_H */
