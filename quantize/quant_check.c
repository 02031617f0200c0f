/*
 * quantize/quant_check.c - qf_quant_check_rows: are the bytes about to be
 * written free of NaN and infinity? (ggml_validate_row_data)
 *
 * For the block types only the half-precision scales can be non-finite (the
 * quants are small integers); their offsets come from the block layouts in
 * quant_impl.h.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quantize/quant.h"
#include "quantize/quant_impl.h"

typedef struct scale_layout {
    int type;
    size_t block_bytes;
    int n;            /* half-precision scales per block: 1 or 2 */
    size_t off[2];    /* their byte offsets */
} scale_layout;

static const scale_layout LAYOUTS[] = {
    { QF_GGML_Q4_0, sizeof(qf_block_q4_0), 1, { offsetof(qf_block_q4_0, d), 0 } },
    { QF_GGML_Q4_1, sizeof(qf_block_q4_1), 2, { offsetof(qf_block_q4_1, d), offsetof(qf_block_q4_1, m) } },
    { QF_GGML_Q5_0, sizeof(qf_block_q5_0), 1, { offsetof(qf_block_q5_0, d), 0 } },
    { QF_GGML_Q5_1, sizeof(qf_block_q5_1), 2, { offsetof(qf_block_q5_1, d), offsetof(qf_block_q5_1, m) } },
    { QF_GGML_Q8_0, sizeof(qf_block_q8_0), 1, { offsetof(qf_block_q8_0, d), 0 } },
    { QF_GGML_Q2_K, sizeof(qf_block_q2_k), 2, { offsetof(qf_block_q2_k, d), offsetof(qf_block_q2_k, dmin) } },
    { QF_GGML_Q3_K, sizeof(qf_block_q3_k), 1, { offsetof(qf_block_q3_k, d), 0 } },
    { QF_GGML_Q4_K, sizeof(qf_block_q4_k), 2, { offsetof(qf_block_q4_k, d), offsetof(qf_block_q4_k, dmin) } },
    { QF_GGML_Q5_K, sizeof(qf_block_q5_k), 2, { offsetof(qf_block_q5_k, d), offsetof(qf_block_q5_k, dmin) } },
    { QF_GGML_Q6_K, sizeof(qf_block_q6_k), 1, { offsetof(qf_block_q6_k, d), 0 } },
    { QF_GGML_IQ4_NL, sizeof(qf_block_iq4_nl), 1, { offsetof(qf_block_iq4_nl, d), 0 } },
    { QF_GGML_IQ4_XS, sizeof(qf_block_iq4_xs), 1, { offsetof(qf_block_iq4_xs, d), 0 } },
};

static int half_ok(const uint8_t *p) { return ((p[0] | p[1] << 8) & 0x7c00) != 0x7c00; }
static int bf16_ok(const uint8_t *p) { return ((p[0] | p[1] << 8) & 0x7f80) != 0x7f80; }

int64_t qf_quant_check_rows(int type, const void *data, int64_t nrows, int64_t n_per_row)
{
    const uint8_t *p = data;
    int64_t r, j;

    if (type == QF_GGML_F32 || type == QF_GGML_F16 || type == QF_GGML_BF16) {
        size_t es = type == QF_GGML_F32 ? 4 : 2;
        for (r = 0; r < nrows; r++)
            for (j = 0; j < n_per_row; j++) {
                const uint8_t *e = p + ((size_t)r * (size_t)n_per_row + (size_t)j) * es;
                float f;
                int ok;
                if (type == QF_GGML_F32) {
                    memcpy(&f, e, 4);
                    ok = isfinite(f);
                } else {
                    ok = type == QF_GGML_F16 ? half_ok(e) : bf16_ok(e);
                }
                if (!ok)
                    return r;
            }
        return -1;
    }
    for (size_t t = 0; t < sizeof LAYOUTS / sizeof LAYOUTS[0]; t++) {
        const scale_layout *l = &LAYOUTS[t];
        const qf_ggml_traits *tr;
        int64_t nb;
        if (l->type != type)
            continue;
        tr = qf_ggml_type_traits(type);
        nb = n_per_row / (int64_t)tr->block_size;
        for (r = 0; r < nrows; r++)
            for (j = 0; j < nb; j++) {
                const uint8_t *b = p + ((size_t)r * (size_t)nb + (size_t)j) * l->block_bytes;
                if (!half_ok(b + l->off[0]) || (l->n > 1 && !half_ok(b + l->off[1])))
                    return r;
            }
        return -1;
    }
    return -2;
}
