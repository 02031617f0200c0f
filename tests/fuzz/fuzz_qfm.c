/*
 * tests/fuzz/fuzz_qfm.c - libFuzzer target for the QFM reader.
 *
 * Opens the input with qf_qfm_open_buffer (with the affine type resolver);
 * if it is accepted, reads every metadata pair, the provenance, and every
 * tensor: streamed with its digest check, as a whole, and by a range that
 * crosses frames, so that the sanitizers see any access a validated header
 * could still lead us into. A tensor may fail its digest (the fuzzer changes
 * bytes), but never with an empty message.
 *   make fuzz && build-fuzz/fuzz_qfm -max_len=16384 CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert/qfm_io.h"
#include "formats/qfm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static int eat(void *ctx, const void *p, size_t n)
{
    (void)ctx;
    if (n)
        sink += ((const uint8_t *)p)[n - 1];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_qfm *q = NULL;
    qf_err err = { 0 };
    const qf_gguf_writer *m;
    int64_t i;

    if (qf_qfm_open_buffer(data, size, "fuzz.qfm", qf_qfm_affine_types, NULL, &q, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, "fuzz.qfm: ", 10) != 0)
            abort(); /* every failure carries a message naming the input */
        return 0;
    }
    m = qf_qfm_metadata(q);
    for (i = 0; i < qf_gguf_writer_kv_count(m); i++) {
        qf_gguf_val v;
        uint64_t k;
        if (qf_gguf_writer_kv_value(m, i, &v) != 0)
            abort();
        for (k = 0; k < v.raw_len; k++)
            sink += v.raw[k];
    }
    sink += (uint8_t)qf_qfm_provenance(q)[0];
    for (i = 0; i < qf_qfm_tensor_count(q); i++) {
        const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
        qf_err e = { 0 };
        uint8_t *buf;
        if (!t || t->stored < data || t->stored_size > size || t->stored + t->stored_size > data + size)
            abort();
        if (qf_qfm_stream(q, i, eat, NULL, NULL, &e) != 0 && (e.code == 0 || !e.msg[0]))
            abort();
        if (t->nbytes > (1u << 24))
            continue;
        buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf)
            continue;
        (void)qf_qfm_read_tensor(q, i, buf, t->nbytes, NULL);
        if (t->nbytes > 2)
            (void)qf_qfm_read_range(q, i, 1, t->nbytes - 2, buf, NULL, NULL);
        free(buf);
    }
    qf_qfm_close(q);
    return 0;
}
