/*
 * tests/fuzz/fuzz_vocab_spm.c - libFuzzer target for the SentencePiece
 * tokenizer.model parser (convert/vocab_spm.c, through the internal entry
 * point of convert/vocab_impl.h).
 *
 * If the input is accepted, every piece must lie inside the input, be
 * non-empty, valid UTF-8 and of a known type, and there must be exactly one
 * UNKNOWN piece; every failure must carry a message naming the input.
 *   make fuzz && build-fuzz/fuzz_vocab_spm -max_len=4096 CORPUS_DIR
 * (fixtures/stories260K/tokenizer.model is a good seed.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert/vocab_impl.h"
#include "formats/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_spm_piece *p = NULL;
    qf_err err = { 0 };
    uint64_t n = 0, i, unk = 0;

    if (qf_vocab_spm_parse(data, size, "fuzz.model", &p, &n, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, "fuzz.model: ", 12) != 0 || p)
            abort();
        return 0;
    }
    if (n == 0)
        abort();
    for (i = 0; i < n; i++) {
        const uint8_t *s = (const uint8_t *)p[i].s;
        if (p[i].len == 0 || s < data || p[i].len > size || s + p[i].len > data + size ||
            p[i].type < 1 || p[i].type > 6 || !qf_utf8_valid(p[i].s, (size_t)p[i].len))
            abort();
        sink += s[p[i].len - 1];
        unk += p[i].type == 2;
    }
    if (unk != 1)
        abort();
    free(p);
    return 0;
}
