/*
 * tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF reader.
 *
 * Opens the input with qf_gguf_open_buffer; if it is accepted, decodes every
 * pair (walking arrays recursively through qf_gguf_iter), runs the typed
 * getters on every key, and reads every byte of every tensor, so that the
 * sanitizers see any access a validated file could still lead us into.
 *   make fuzz && build-fuzz/fuzz_gguf -max_len=8192 CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk(const qf_gguf_val *v, int depth)
{
    qf_gguf_iter it;
    qf_gguf_val el;
    uint64_t i;
    int rc;

    for (i = 0; i < v->raw_len; i++) /* every byte of the value is in bounds */
        sink += v->raw[i];
    if (v->type == QF_GGUF_STRING && v->str_len)
        sink += (uint8_t)v->str[v->str_len - 1];
    if (v->type != QF_GGUF_ARRAY)
        return;
    if (depth > 16)
        abort(); /* the reader bounds nesting at 8 */
    qf_gguf_iter_init(&it, v);
    i = 0;
    while ((rc = qf_gguf_iter_next(&it, &el)) == 1) {
        walk(&el, depth + 1);
        i++;
    }
    if (rc != 0 || i != v->arr_n)
        abort(); /* a validated array must iterate cleanly to its count */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_gguf *g = NULL;
    qf_err err = { 0 };
    int64_t i;

    if (qf_gguf_open_buffer(data, size, "fuzz.gguf", &g, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, "fuzz.gguf: ", 11) != 0)
            abort(); /* every failure carries a message naming the input */
        return 0;
    }
    for (i = 0; i < qf_gguf_kv_count(g); i++) {
        const char *key = qf_gguf_kv_key(g, i);
        qf_gguf_val v;
        uint64_t u, len;
        int64_t s;
        double f;
        int b;
        const char *str;

        if (qf_gguf_kv_value(g, i, &v) != 0 || qf_gguf_find_key(g, key) != i)
            abort();
        walk(&v, 0);
        (void)qf_gguf_get_uint(g, key, &u, NULL);
        (void)qf_gguf_get_int(g, key, &s, NULL);
        (void)qf_gguf_get_float(g, key, &f, NULL);
        (void)qf_gguf_get_bool(g, key, &b, NULL);
        (void)qf_gguf_get_str(g, key, &str, &len, NULL);
    }
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        uint64_t k;

        if (!t || qf_gguf_find_tensor(g, t->name) != i || t->data < data ||
            t->nbytes > size || t->data + t->nbytes > data + size)
            abort();
        for (k = 0; k < t->nbytes; k++)
            sink += t->data[k];
        qf_gguf_release_tensor(g, i);
    }
    qf_gguf_close(g);
    return 0;
}
