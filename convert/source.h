/*
 * convert/source.h - a model to read from, whatever holds it: a GGUF file,
 * or a Hugging Face folder (read through the converter, exactly as its F32
 * GGUF would be). Every consumer that takes "a model" (quantize, verify,
 * export) reads metadata as GGUF key/value pairs and tensors as F32 rows.
 *
 * Tensors keep the GGUF view: names ("blk.0.attn_q.weight"), ggml order of
 * dims (ne[0] is the row length), and the stored type (an HF folder shows
 * F32, since that is what its F32 conversion holds).
 */
#ifndef QF_SOURCE_H
#define QF_SOURCE_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/gguf.h"

typedef struct qf_source qf_source;

/* One tensor (plain value struct, borrowed from the source). */
typedef struct qf_source_tensor {
    const char *name;
    int type;               /* ggml type id as stored */
    uint32_t n_dims;
    uint64_t ne[4];         /* ne[0] = row length; unused dims are 1 */
    uint64_t n_rows;        /* ne[1] * ne[2] * ne[3] */
    uint64_t nbytes;        /* stored bytes */
    const uint8_t *data;    /* stored bytes when the source maps them as stored, else NULL */
} qf_source_tensor;

/*
 * Open `path`: a .gguf file, a .qfm file (compressed tensors are decoded as
 * their rows are read; affine tensors show as F32), a model folder (as
 * qforge-convert reads it), or such a folder in an archive
 * (formats/archive.h, default limits, temp folder in $TMPDIR or /tmp,
 * removed by qf_source_close).
 * Returns 0 and
 * sets *out (owned by the caller: qf_source_close), or a negative code with a
 * message naming the file.
 */
int qf_source_open(const char *path, qf_source **out, qf_err *err);

void qf_source_close(qf_source *s); /* accepts NULL */

/* "gguf", "qfm" or "folder". */
const char *qf_source_kind(const qf_source *s);
const char *qf_source_path(const qf_source *s);

/* Metadata, in order (values borrowed). */
int64_t qf_source_kv_count(const qf_source *s);
const char *qf_source_kv_key(const qf_source *s, int64_t i);
int qf_source_kv_value(const qf_source *s, int64_t i, qf_gguf_val *v);
int64_t qf_source_find_key(const qf_source *s, const char *key);
/* Typed look-ups, as qf_gguf_get_*: 0, QF_ENOTFOUND (err untouched) or
 * QF_EFORMAT (wrong type). */
int qf_source_get_uint(const qf_source *s, const char *key, uint64_t *v, qf_err *err);
int qf_source_get_float(const qf_source *s, const char *key, double *v, qf_err *err);
int qf_source_get_str(const qf_source *s, const char *key, const char **str, uint64_t *len,
                      qf_err *err);

/* Copy every pair, in order, into w. */
int qf_source_copy_kvs(const qf_source *s, qf_gguf_writer *w, qf_err *err);

/* Tensors, in file order. */
int64_t qf_source_tensor_count(const qf_source *s);
const qf_source_tensor *qf_source_tensor_at(const qf_source *s, int64_t i);
int64_t qf_source_find_tensor(const qf_source *s, const char *name);

/*
 * Rows [row0, row0 + n) of tensor i as F32 into dst (n * ne[0] floats):
 * converted, dequantized or permuted as needed. Safe to call from several
 * threads at once. Returns 0, QF_EINVAL (bad range) or QF_EUNSUPPORTED (a
 * stored type qforge cannot dequantize).
 */
int qf_source_rows_f32(const qf_source *s, int64_t i, uint64_t row0, uint64_t n, float *dst,
                       qf_err *err);

/*
 * Bytes [off, off + n) of tensor i as stored (its ggml type's encoding) into
 * dst: for tensors whose `data` is NULL because they are compressed (QFM).
 * Thread-safe. Returns 0, QF_EINVAL (range) or QF_EUNSUPPORTED (a folder,
 * or a QFM tensor shown as F32).
 */
int qf_source_read_bytes(const qf_source *s, int64_t i, uint64_t off, uint64_t n, void *dst,
                         qf_err *err);

/* Give back the input pages of tensor i once it is consumed. */
void qf_source_release(const qf_source *s, int64_t i);

/* Same for the pages behind rows [row0, row0 + n) of tensor i, for callers
 * streaming a large tensor in chunks (rows whose input is not laid out in
 * order, such as permuted q/k rows of a folder, are released with the
 * whole tensor). */
void qf_source_release_rows(const qf_source *s, int64_t i, uint64_t row0, uint64_t n);

#endif /* QF_SOURCE_H */
