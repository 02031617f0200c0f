/*
 * tests/fuzz/fuzz_pytorch.c - libFuzzer target for the zip and checkpoint
 * readers (qf_pt_open_buffer).
 *
 * Before opening, the harness recomputes the CRC-32 of every stored member
 * it can find, so that mutations of data.pkl reach the pickle reader and
 * the tensor checks instead of stopping at the CRC. On success every tensor
 * is checked against what the header promises (zero-copy data inside the
 * input, sizes, the name index, the qf_st_tensor mirror) and every byte is
 * read; on failure the message must be one line starting with the name.
 *
 *   make fuzz && build-fuzz/fuzz_pytorch -max_len=8192 CORPUS_DIR
 *
 * Seeds: the .pt files in fixtures/pytorch and fixtures/malicious, the .bin
 * files in fixtures/pytorch/sharded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/pytorch.h"
#include "formats/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void fix_crcs(uint8_t *buf, size_t n)
{
    qf_zip *z = NULL;
    int64_t i;

    if (qf_zip_open_buffer(buf, n, "fix", &z, NULL) != 0)
        return;
    for (i = 0; i < qf_zip_count(z); i++) {
        const qf_zip_entry *e = qf_zip_entry_at(z, i);
        const uint8_t *p;
        uint64_t len;
        uint32_t crc;
        if (qf_zip_stored_data(z, i, &p, &len, NULL) != 0)
            continue;
        crc = qf_zip_crc32(0, p, (size_t)len);
        qf_put32(buf + e->central_offset + 16, crc);
        if (!(e->flags & 8))
            qf_put32(buf + e->header_offset + 14, crc);
    }
    qf_zip_close(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.pt";
    qf_pt *pt = NULL;
    qf_err err = { 0 };
    int64_t i, n;
    uint8_t *buf = malloc(size ? size : 1);

    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    fix_crcs(buf, size);
    if (qf_pt_open_buffer(buf, size, name, &pt, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, name, sizeof name - 1) != 0 || strchr(err.msg, '\n') ||
            pt != NULL)
            abort();
        free(buf);
        return 0;
    }
    n = qf_pt_tensor_count(pt);
    for (i = 0; i < n; i++) {
        const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);
        const qf_st_tensor *s = qf_pt_tensor_st(pt, i);
        uint64_t k, acc = 0, el = 1;
        uint32_t d;

        if (!t || !s || qf_pt_find(pt, t->name) != i || t->n_dims > QF_PT_MAX_DIMS || !t->name[0])
            abort();
        for (d = 0; d < t->n_dims; d++)
            el *= t->shape[d];
        if (el != t->n_elements || t->nbytes != t->n_elements * qf_dtype_size(t->dtype))
            abort();
        if (!t->materialized && (t->data < buf || t->offset > size || t->nbytes > size - t->offset ||
                                 t->data != buf + t->offset))
            abort();
        if (t->same_as >= i || (t->same_as >= 0 && qf_pt_tensor_at(pt, t->same_as)->data != t->data))
            abort();
        if (s->data != t->data || s->nbytes != t->nbytes || strcmp(s->name, t->name) != 0)
            abort();
        for (k = 0; k < t->nbytes; k++)
            acc += t->data[k];
        sink += acc + strlen(t->storage);
        qf_pt_release_tensor(pt, i);
    }
    for (i = 0; i < qf_pt_global_count(pt); i++)
        sink += qf_pt_global_at(pt, i)->count;
    sink += strlen(qf_pt_file_root(pt, 0)) + strlen(qf_pt_file_dict_path(pt, 0)) +
            (uint64_t)qf_pt_file_version(pt, 0) + qf_pt_file_skipped(pt, 0);
    if (qf_pt_verify(pt, &err) != 0 && strchr(err.msg, '\n'))
        abort();
    qf_pt_close(pt);
    free(buf);
    return 0;
}
