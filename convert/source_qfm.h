/*
 * convert/source_qfm.h - a QFM file as a model source (convert/source.h):
 * tensors read as F32 rows, ggml types dequantized as a GGUF's are, the
 * affine types by quantize/affine.h. Compressed tensors are decoded frame by
 * frame, only the frames the rows need.
 */
#ifndef QF_SOURCE_QFM_H
#define QF_SOURCE_QFM_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/qfm.h"

/* 1 if `path` starts with the QFM magic. */
int qf_source_is_qfm(const char *path);

/*
 * The type qf_source shows for tensor t: its ggml type, or F32 for the
 * affine types (what their dequantized rows are). Stored bytes are exposed
 * (*data) only for raw ggml tensors, which a consumer may copy as they are.
 */
int qf_source_qfm_type(const qf_qfm_tensor *t);
const uint8_t *qf_source_qfm_data(const qf_qfm_tensor *t);
uint64_t qf_source_qfm_nbytes(const qf_qfm_tensor *t);

/* Rows [row0, row0 + n) of tensor i as F32 (dst: n * ne[0] floats).
 * Thread-safe. Returns 0, QF_EINVAL, QF_EUNSUPPORTED, QF_EFORMAT or
 * QF_ENOMEM. */
int qf_source_qfm_rows_f32(const qf_qfm *q, int64_t i, uint64_t row0, uint64_t n, float *dst,
                           qf_err *err);

#endif /* QF_SOURCE_QFM_H */
