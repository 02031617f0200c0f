/*
 * tests/fuzz/fuzz_imatrix.c - libFuzzer target for the imatrix reader, and
 * through it for the quantizers' weighted paths.
 *
 * Opens the input with qf_imatrix_open_buffer (legacy or GGUF); if it is
 * accepted, reads every weight of every entry, looks every entry up by
 * name, and quantizes one synthetic row per entry whose size is a multiple
 * of 32 with its weights (Q4_K or IQ4_NL), so that the sanitizers see any
 * access a validated file could lead to.
 *   make fuzz && build-fuzz/fuzz_imatrix -max_len=4096 CORPUS_DIR
 * Seed: fixtures/quant/imatrix/tiny-llama-256.imatrix.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/imatrix.h"
#include "quantize/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_imatrix *im = NULL;
    if (qf_imatrix_open_buffer(data, size, "fuzz", &im, NULL) != 0) {
        if (im)
            abort(); /* failure must leave *out NULL */
        return 0;
    }
    const int64_t n = qf_imatrix_count(im);
    for (int64_t i = 0; i < n; i++) {
        const qf_imatrix_entry *e = qf_imatrix_at(im, i);
        if (qf_imatrix_find(im, e->name) != e)
            abort();
        for (int64_t k = 0; k < e->n_values; k++)
            sink += e->weights[k];
        if (e->n_values % 32 == 0 && e->n_values <= 4096) {
            float x[4096];
            uint8_t q[4096 * 2];
            for (int64_t k = 0; k < e->n_values; k++)
                x[k] = (float)((k * 7919) % 61) - 30.0f;
            int type = e->n_values % 256 == 0 ? 12 /* Q4_K */ : 20 /* IQ4_NL */;
            if (qf_quant_rows(type, x, q, 1, e->n_values, e->weights) != 0)
                abort();
        }
    }
    if (qf_imatrix_dataset(im))
        sink += (float)strlen(qf_imatrix_dataset(im));
    qf_imatrix_close(im);
    return 0;
}
