/*
 * tests/util_quant_check.c - compare qforge's quantizers with a GGUF that
 * llama-quantize wrote (used by tests/golden/quant-golden.sh).
 *
 *   util_quant_check [-i IMATRIX] SOURCE.gguf QUANTIZED.gguf...
 *
 * For every tensor of each QUANTIZED file, take the tensor of the same name
 * from SOURCE (F32, F16 or BF16; converted to F32 as llama-quantize does),
 * quantize it with qf_quant_rows to the QUANTIZED tensor's type, in rows of
 * ne[0], with the imatrix weights for that tensor name if IMATRIX has them,
 * and compare the bytes. Prints one line per QUANTIZED file:
 *
 *   ok <file> (<n> tensors)
 *   not ok <file>: tensor "<name>" (<type>) row <r> block <b>: first byte differs at <off>
 *
 * Exit status 0 if every file matched, 1 otherwise, 2 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/types.h"
#include "quantize/imatrix.h"
#include "quantize/quant.h"

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Source tensor as F32 (owned by the caller: free). NULL on failure, with
 * a reason in why. */
static float *source_f32(const qf_gguf_tensor *t, char *why, size_t why_len)
{
    qf_dtype dt = qf_dtype_from_ggml_type(t->type);
    if (dt != QF_DTYPE_F32 && dt != QF_DTYPE_F16 && dt != QF_DTYPE_BF16) {
        snprintf(why, why_len, "source tensor \"%s\" has type %s, not F32/F16/BF16", t->name,
                 qf_ggml_type_name(t->type));
        return NULL;
    }
    float *f = malloc((size_t)t->n_elements * sizeof *f);
    if (!f) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    if (qf_dtype_to_f32(dt, t->data, f, (size_t)t->n_elements) != 0) {
        snprintf(why, why_len, "cannot convert \"%s\"", t->name);
        free(f);
        return NULL;
    }
    return f;
}

/* Check one tensor; returns 0 if equal, else 1 with a description. */
static int check_tensor(const qf_gguf *src, const qf_gguf_tensor *q, const qf_imatrix *im,
                        char *why, size_t why_len)
{
    int64_t si = qf_gguf_find_tensor(src, q->name);
    if (si < 0) {
        snprintf(why, why_len, "tensor \"%s\" not in the source", q->name);
        return 1;
    }
    const qf_gguf_tensor *s = qf_gguf_tensor_at(src, si);
    if (s->n_dims != q->n_dims || memcmp(s->ne, q->ne, sizeof s->ne) != 0) {
        snprintf(why, why_len, "tensor \"%s\": shapes differ", q->name);
        return 1;
    }
    const int64_t n_per_row = (int64_t)q->ne[0];
    const int64_t nrows = (int64_t)(q->n_elements / q->ne[0]);
    const float *qw = NULL;
    if (im && q->n_dims >= 2) {
        int mismatch = 0;
        qw = qf_imatrix_weights(im, q->name, n_per_row, &mismatch);
        if (mismatch && strcmp(q->name, "token_embd.weight") != 0) {
            snprintf(why, why_len, "tensor \"%s\": imatrix entry has the wrong size", q->name);
            return 1;
        }
    }
    float *f = source_f32(s, why, why_len);
    if (!f)
        return 1;
    uint8_t *out = malloc((size_t)q->nbytes ? (size_t)q->nbytes : 1);
    if (!out) {
        free(f);
        snprintf(why, why_len, "out of memory");
        return 1;
    }
    int rc = qf_quant_rows(q->type, f, out, nrows, n_per_row, qw);
    free(f);
    if (rc != 0) {
        snprintf(why, why_len, "tensor \"%s\": qf_quant_rows(%s) failed (%d)", q->name,
                 qf_ggml_type_name(q->type), rc);
        free(out);
        return 1;
    }
    int bad = 0;
    for (uint64_t off = 0; off < q->nbytes; off++) {
        if (out[off] != q->data[off]) {
            const qf_ggml_traits *tr = qf_ggml_type_traits(q->type);
            const uint64_t block = off / tr->type_size;
            const uint64_t per_row = (uint64_t)n_per_row / tr->block_size;
            snprintf(why, why_len,
                     "tensor \"%s\" (%s%s) row %llu block %llu: byte %llu of the block is "
                     "0x%02x, llama.cpp wrote 0x%02x",
                     q->name, qf_ggml_type_name(q->type), qw ? ", imatrix" : "",
                     (unsigned long long)(block / per_row), (unsigned long long)(block % per_row),
                     (unsigned long long)(off % tr->type_size), out[off], q->data[off]);
            bad = 1;
            break;
        }
    }
    free(out);
    return bad;
}

int main(int argc, char **argv)
{
    const char *imatrix_path = NULL;
    int argi = 1;
    if (argi + 1 < argc && strcmp(argv[argi], "-i") == 0) {
        imatrix_path = argv[argi + 1];
        argi += 2;
    }
    if (argc - argi < 2) {
        fprintf(stderr, "usage: util_quant_check [-i IMATRIX] SOURCE.gguf QUANTIZED.gguf...\n");
        return 2;
    }
    qf_err err = { 0 };
    qf_gguf *src = NULL;
    qf_imatrix *im = NULL;
    int failed = 0;
    if (qf_gguf_open(argv[argi], &src, &err) != 0) {
        printf("not ok %s: %s\n", base_name(argv[argi]), err.msg);
        return 1;
    }
    if (imatrix_path && qf_imatrix_open(imatrix_path, &im, &err) != 0) {
        printf("not ok %s: %s\n", base_name(imatrix_path), err.msg);
        qf_gguf_close(src);
        return 1;
    }
    for (int a = argi + 1; a < argc; a++) {
        qf_gguf *q = NULL;
        qf_err_clear(&err);
        if (qf_gguf_open(argv[a], &q, &err) != 0) {
            printf("not ok %s: %s\n", base_name(argv[a]), err.msg);
            failed = 1;
            continue;
        }
        char why[512] = "";
        int bad = 0;
        const int64_t nt = qf_gguf_tensor_count(q);
        for (int64_t i = 0; i < nt && !bad; i++)
            bad = check_tensor(src, qf_gguf_tensor_at(q, i), im, why, sizeof why);
        if (bad) {
            printf("not ok %s: %s\n", base_name(argv[a]), why);
            failed = 1;
        } else {
            printf("ok %s (%lld tensors%s)\n", base_name(argv[a]), (long long)nt,
                   im ? ", imatrix" : "");
        }
        qf_gguf_close(q);
    }
    qf_imatrix_close(im);
    qf_gguf_close(src);
    return failed;
}
