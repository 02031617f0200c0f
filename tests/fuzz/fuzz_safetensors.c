/*
 * tests/fuzz/fuzz_safetensors.c - libFuzzer target for the safetensors reader.
 *
 *   make fuzz && build-fuzz/fuzz_safetensors -max_len=4096 CORPUS_DIR
 *
 * Seeds: fixtures/corrupt/st-*.safetensors and any small valid file. On a
 * successful open every tensor's bytes and fields are read, so ASan sees any
 * pointer or size the reader got wrong; on failure the message must be one
 * line starting with the name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.safetensors";
    qf_st *st = NULL;
    qf_err err = { 0 };
    int64_t i, n;
    uint32_t f;

    /* A copy of exactly `size` bytes: ASan then catches a read one past it. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);

    if (qf_st_open_buffer(buf, size, name, &st, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, name, sizeof name - 1) != 0 ||
            strchr(err.msg, '\n') || st != NULL)
            abort();
        free(buf);
        return 0;
    }
    n = qf_st_tensor_count(st);
    for (i = 0; i < n; i++) {
        const qf_st_tensor *t = qf_st_tensor_at(st, i);
        uint64_t k, acc = 0, el = 1;
        uint32_t d;

        if (!t || qf_st_find(st, t->name) != i || t->n_dims > QF_ST_MAX_DIMS)
            abort();
        if (t->data < buf || t->offset > size || t->nbytes > size - t->offset ||
            t->data != buf + t->offset)
            abort();
        for (d = 0; d < t->n_dims; d++)
            el *= t->shape[d];
        if (el != t->n_elements || t->nbytes != t->n_elements * qf_dtype_size(t->dtype))
            abort();
        for (k = 0; k < t->nbytes; k++)
            acc += t->data[k];
        acc += strlen(t->name) + (uint64_t)t->dtype;
        sink += acc;
        qf_st_release_tensor(st, i);
    }
    for (f = 0; f < qf_st_file_count(st); f++) {
        int64_t m = qf_st_meta_count(st, f);
        const char *key, *value;
        for (i = 0; i < m; i++) {
            if (qf_st_meta_at(st, f, i, &key, &value) != 0)
                abort();
            sink += strlen(key) + strlen(value);
            if (qf_st_meta_get(st, key) == NULL)
                abort();
        }
        sink += qf_st_file_size(st, f) + qf_st_header_size(st, f) + strlen(qf_st_file_path(st, f));
    }
    qf_st_close(st);
    free(buf);
    return 0;
}
