/*
 * convert/source_qfm.c - QFM as a model source.
 */
#include "convert/source_qfm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/types.h"
#include "quantize/affine.h"
#include "quantize/quant.h"

int qf_source_is_qfm(const char *path)
{
    unsigned char head[4];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, head, sizeof head);
    close(fd);
    return n == 4 && qf_qfm_sniff(head, 4);
}

int qf_source_qfm_type(const qf_qfm_tensor *t) { return t->ggml_type >= 0 ? t->ggml_type : QF_GGML_F32; }

const uint8_t *qf_source_qfm_data(const qf_qfm_tensor *t) { return t->ggml_type >= 0 ? t->data : NULL; }

uint64_t qf_source_qfm_nbytes(const qf_qfm_tensor *t)
{
    return t->ggml_type >= 0 ? t->nbytes : t->n_elements * sizeof(float);
}

int qf_source_qfm_rows_f32(const qf_qfm *q, int64_t i, uint64_t row0, uint64_t n, float *dst,
                           qf_err *err)
{
    const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
    uint64_t row_bytes = 0;
    qf_affine a;
    uint8_t *buf = NULL;
    const uint8_t *src;
    int rc = 0;

    if (!t || row0 > t->n_rows || n > t->n_rows - row0)
        return qf_err_set(err, QF_EINVAL, "%s: tensor %lld: rows out of range", qf_qfm_path(q), (long long)i);
    if (t->ggml_type >= 0) {
        if (qf_ggml_row_size(t->ggml_type, t->ne[0], &row_bytes) != 0)
            return qf_err_set(err, QF_EINVAL, "%s: tensor \"%s\": bad row", qf_qfm_path(q), t->name);
        if (qf_dtype_from_ggml_type(t->ggml_type) == QF_DTYPE_INVALID && !qf_quant_can_dequantize(t->ggml_type))
            return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot read type %s", qf_qfm_path(q),
                              t->name, t->type_name);
    } else {
        if (qf_affine_parse(t->type_name, &a) != 0 || (row_bytes = qf_affine_row_size(a, (int64_t)t->ne[0])) == 0)
            return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": cannot read type %s", qf_qfm_path(q),
                              t->name, t->type_name);
    }
    if (n == 0)
        return 0;
    if (t->codec == QF_QFM_RAW) {
        src = t->data + row0 * row_bytes;
    } else {
        if (!(buf = malloc((size_t)(n * row_bytes))))
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        if ((rc = qf_qfm_read_range(q, i, row0 * row_bytes, n * row_bytes, buf, NULL, err)) != 0)
            goto done;
        src = buf;
    }
    if (t->ggml_type < 0)
        rc = qf_affine_dequantize(a, src, dst, (int64_t)n, (int64_t)t->ne[0]);
    else if (qf_dtype_from_ggml_type(t->ggml_type) != QF_DTYPE_INVALID)
        rc = qf_dtype_to_f32(qf_dtype_from_ggml_type(t->ggml_type), src, dst, (size_t)(n * t->ne[0]));
    else
        rc = qf_quant_dequantize(t->ggml_type, src, dst, (int64_t)(n * t->ne[0]));
    if (rc)
        rc = qf_err_set(err, rc, "%s: tensor \"%s\": cannot read rows", qf_qfm_path(q), t->name);
done:
    free(buf);
    return rc;
}
