/*
 * quantize/imatrix.h - importance matrix (imatrix) reader, and the collector
 * qforge-imatrix fills and writes (at the end of this header).
 *
 * An importance matrix gives, for each weight matrix of a model, one
 * non-negative float per input column: the mean square of the activations
 * that column multiplied during a calibration run. Quantizers use it as
 * per-column weights (quantize/quant.h, `imatrix`). llama.cpp's
 * llama-imatrix writes it; docs/imatrix.md describes both formats.
 *
 * The legacy binary format (llama.cpp up to mid-2025, e.g. b4747), all
 * little-endian, no header and no alignment:
 *
 *   +---------------------------------------------------------------+
 *   | n_entries i32 (>= 1)                                            |
 *   +---------------------------------------------------------------+
 *   | n_entries times:                                                |
 *   |   name_len i32 | name (name_len bytes, no NUL)                  |
 *   |   ncall i32    | n_values i32 (>= 1) | n_values f32             |
 *   +---------------------------------------------------------------+
 *   | optional trailer: last_chunk i32 | len i32 | dataset (len bytes)|
 *   +---------------------------------------------------------------+
 *
 * Stored values are (sum of squared activations / count) * ncall; the
 * weights llama-quantize uses are value / ncall (computed in float, and
 * only when ncall > 0). Entries are in hash-map order; a 3-D (expert)
 * tensor's entry holds n_expert * n_cols values.
 *
 * The newer GGUF format (llama.cpp from mid-2025; a GGUF file, recognised
 * by its magic, with general.type = "imatrix") holds per matrix two F32
 * tensors: "<name>.in_sum2", ne = [n_cols, n_mat], the sums of squared
 * activations, and "<name>.counts", ne = [1, n_mat], how many activations
 * each sum holds. Weights are sum / count (in float), or 1 where count is 0.
 * Keys: imatrix.chunk_count (u32), imatrix.chunk_size (u32),
 * imatrix.datasets (array of strings). The GGUF is checked by
 * formats/gguf.h's reader; a sums tensor needs its counts tensor and the
 * reverse.
 *
 * The reader trusts nothing: every count and length is checked against the
 * bytes left; names must be 1..4095 bytes of UTF-8 without NUL and unique;
 * ncall must be >= 0; values (and GGUF counts) must be finite and >= 0;
 * after the optional trailer no byte may be left.
 */
#ifndef QF_IMATRIX_H
#define QF_IMATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define QF_IMATRIX_MAX_NAME 4095

typedef struct qf_imatrix qf_imatrix;

/* One entry (plain value struct, borrowed from the reader). */
typedef struct qf_imatrix_entry {
    const char *name;      /* tensor name, NUL-terminated ("blk.0.attn_q.weight") */
    int32_t ncall;         /* calls accumulated, as stored (0 for GGUF files) */
    int64_t n_values;      /* number of weights (columns x experts) */
    const float *weights;  /* n_values weights: stored value / ncall (ncall > 0) */
} qf_imatrix_entry;

/*
 * Open and validate the imatrix at `path`. Returns 0 and sets *out (owned
 * by the caller: free with qf_imatrix_close), or QF_EIO / QF_EFORMAT /
 * QF_ETRUNC / QF_ELIMIT / QF_EUNSUPPORTED (a GGUF the GGUF reader refuses)
 * / QF_ENOMEM, with a message naming the file and the entry. The file is not
 * kept open.
 */
int qf_imatrix_open(const char *path, qf_imatrix **out, qf_err *err);

/* Same over a caller's buffer (read during the call only); `name` is used
 * in messages. The entry point for fuzzing. */
int qf_imatrix_open_buffer(const void *buf, uint64_t size, const char *name, qf_imatrix **out,
                           qf_err *err);

/* Free; accepts NULL. */
void qf_imatrix_close(qf_imatrix *im);

/* Entries in file order. _at returns NULL for an index out of range. */
int64_t qf_imatrix_count(const qf_imatrix *im);
const qf_imatrix_entry *qf_imatrix_at(const qf_imatrix *im, int64_t i);

/* Entry for tensor `name`, or NULL if the file has none. */
const qf_imatrix_entry *qf_imatrix_find(const qf_imatrix *im, const char *name);

/*
 * Weights for tensor `name` whose rows have n_per_row columns: returns the
 * entry's weights (borrowed) when it has exactly n_per_row values, NULL
 * when there is no entry. A size mismatch returns NULL and sets *mismatch
 * to 1 (may be NULL), so callers can do what llama-quantize does: fail,
 * except for token_embd.weight, which it quantizes without weights.
 */
const float *qf_imatrix_weights(const qf_imatrix *im, const char *name, int64_t n_per_row,
                                int *mismatch);

/* The chunk count (legacy: the trailer's last_chunk; GGUF:
 * imatrix.chunk_count; -1 if absent) and the (first) dataset name
 * (borrowed, NUL-terminated; NULL if absent). */
int32_t qf_imatrix_last_chunk(const qf_imatrix *im);
const char *qf_imatrix_dataset(const qf_imatrix *im);

/* ---------------------------------------------------------------------
 * Collecting: sums of squared activations, written as llama-imatrix
 * writes them (qforge-imatrix).
 *
 * Per matrix (by name), as llama-imatrix b4747 keeps them: one float sum
 * of x[j]^2 per input column j, added in float in the order the rows come
 * (sum = sum + x*x, the product rounded first); the number of rows summed
 * (every column of a dense matrix sees every row); and ncall, the number
 * of qf_imatrix_acc_add calls (one per product per batch).
 * ------------------------------------------------------------------- */

typedef struct qf_imatrix_acc qf_imatrix_acc;

/* New empty collector. Returns 0 and sets *out (owned by the caller:
 * qf_imatrix_acc_free), or QF_ENOMEM. */
int qf_imatrix_acc_new(qf_imatrix_acc **out, qf_err *err);

void qf_imatrix_acc_free(qf_imatrix_acc *a); /* accepts NULL */

/*
 * Add n_rows rows of n_cols activations (row-major, contiguous, read during
 * the call only) to the entry `name` (1..QF_IMATRIX_MAX_NAME bytes), made
 * on first use. Returns 0, QF_EMISMATCH (the entry has another column
 * count), QF_EFORMAT (a sum is no longer finite, as llama-imatrix stops
 * for), QF_ELIMIT (a count would pass INT32_MAX) or QF_ENOMEM / QF_EINVAL;
 * on failure the entry is left as it was.
 */
int qf_imatrix_acc_add(qf_imatrix_acc *a, const char *name, const float *x, int64_t n_rows,
                       int64_t n_cols, qf_err *err);

/* Entries in the order they were first added. */
int64_t qf_imatrix_acc_count(const qf_imatrix_acc *a);

/* Entry i (plain value struct; pointers borrowed, valid until the next add
 * or free). Returns 0, or QF_EINVAL for an index out of range. */
typedef struct qf_imatrix_sums {
    const char *name;   /* NUL-terminated */
    int64_t n_cols;     /* values in sums */
    const float *sums;  /* (n_cols) sum of x[j]^2 */
    int64_t count;      /* rows summed */
    int32_t ncall;      /* add calls */
} qf_imatrix_sums;
int qf_imatrix_acc_get(const qf_imatrix_acc *a, int64_t i, qf_imatrix_sums *out);

/* File formats qf_imatrix_acc_write writes. */
enum { QF_IMATRIX_FORMAT_DAT = 0, QF_IMATRIX_FORMAT_GGUF = 1 };

/*
 * Write the collected entries to `path` through the atomic writer (flags:
 * QF_OUT_FORCE to replace an existing file, formats/file.h).
 *
 * QF_IMATRIX_FORMAT_DAT, the legacy format above, as llama-imatrix b4747
 * writes it: entries in the order they were first added, each value
 * (sum / (float)count) * (float)ncall in float; the trailer's last_chunk is
 * the largest ncall (llama-imatrix's m_last_call) and its dataset name is
 * `dataset` as given (NULL: empty).
 *
 * QF_IMATRIX_FORMAT_GGUF, the newer format: general.type = "imatrix",
 * imatrix.datasets = [dataset] (omitted for NULL), imatrix.chunk_count =
 * chunk_count, imatrix.chunk_size = chunk_size; per entry, in name order,
 * "<name>.in_sum2" (F32, ne = [n_cols, 1], the sums) and "<name>.counts"
 * (F32, ne = [1, 1], the row count).
 *
 * Returns 0, QF_EINVAL (no entries, or a name too long for a GGUF tensor
 * name), QF_EEXIST, QF_EIO or QF_ENOMEM.
 */
int qf_imatrix_acc_write(const qf_imatrix_acc *a, const char *path, int format, int flags,
                         const char *dataset, uint32_t chunk_count, uint32_t chunk_size,
                         qf_err *err);

#endif /* QF_IMATRIX_H */
