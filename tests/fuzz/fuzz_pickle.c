/*
 * tests/fuzz/fuzz_pickle.c - libFuzzer target for the pickle reader.
 *
 * Reads the input with qf_pkl_read and the checkpoint allow-list
 * (qf_pt_allow_list). On success it walks every object and checks what the
 * header promises: ids in range, strings inside the input, globals listed,
 * one root; on failure the message must be one line starting with the name.
 *
 *   make fuzz && build-fuzz/fuzz_pickle -max_len=4096 CORPUS_DIR
 *
 * Seeds: the data.pkl members of the .pt files in fixtures/pytorch and
 * fixtures/malicious (e.g. `unzip -p x.pt '*data.pkl' > seed`).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"
#include "formats/pytorch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.pkl";
    size_t n_allow;
    const qf_pkl_allow *allow = qf_pt_allow_list(&n_allow);
    qf_pkl_limits lim = { 100000, 100000, 64 };
    qf_pkl *p = NULL;
    qf_err err = { 0 };
    uint32_t id, n, k, g;
    uint8_t *buf = malloc(size ? size : 1); /* exactly `size` bytes: ASan sees overreads */

    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    if (qf_pkl_read(buf, size, name, allow, n_allow, &lim, &p, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, name, sizeof name - 1) != 0 || strchr(err.msg, '\n') ||
            p != NULL)
            abort();
        free(buf);
        return 0;
    }
    n = qf_pkl_count(p);
    if (qf_pkl_root(p) < 1 || qf_pkl_root(p) > n || qf_pkl_protocol(p) > 5)
        abort();
    for (g = 0; g < qf_pkl_global_count(p); g++) {
        const qf_pkl_global *gl = qf_pkl_global_at(p, g);
        if (!gl || gl->count == 0 || gl->offset >= size)
            abort();
        sink += strlen(gl->module) + strlen(gl->name);
    }
    for (id = 1; id <= n; id++) {
        const qf_pkl_obj *o = qf_pkl_get(p, id);
        uint32_t items = 0;

        if (!o || o->offset >= size)
            abort();
        switch (o->kind) {
        case QF_PKL_STR:
        case QF_PKL_BYTES:
            if ((const uint8_t *)o->s < buf || o->len > size ||
                (const uint8_t *)o->s + o->len > buf + size)
                abort();
            for (k = 0; k < o->len; k++)
                sink += (uint8_t)o->s[k];
            break;
        case QF_PKL_TUPLE: case QF_PKL_LIST: case QF_PKL_SET:
            items = o->n;
            break;
        case QF_PKL_DICT:
            items = 2 * o->n;
            if (o->state > n)
                abort();
            break;
        case QF_PKL_GLOBAL:
            if (o->global >= qf_pkl_global_count(p))
                abort();
            break;
        case QF_PKL_CALL:
            if (o->global >= qf_pkl_global_count(p) || o->arg < 1 || o->arg > n ||
                qf_pkl_get(p, o->arg)->kind != QF_PKL_TUPLE)
                abort();
            break;
        case QF_PKL_PERSID:
            if (o->arg < 1 || o->arg > n)
                abort();
            break;
        case QF_PKL_NONE: case QF_PKL_BOOL: case QF_PKL_INT:
            sink += (uint64_t)o->i;
            break;
        case QF_PKL_FLOAT:
            sink += o->f != o->f;
            break;
        default:
            abort();
        }
        for (k = 0; k < items; k++)
            if (o->items[k] < 1 || o->items[k] > n)
                abort();
        sink += strlen(qf_pkl_kind_name(o->kind));
    }
    qf_pkl_free(p);
    free(buf);
    return 0;
}
