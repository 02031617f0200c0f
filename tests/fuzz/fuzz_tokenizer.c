/*
 * tests/fuzz/fuzz_tokenizer.c - libFuzzer target for verify/tokenizer.h.
 *
 * The first input byte picks a tokenizer built in memory (a SentencePiece
 * vocabulary with all 256 byte tokens, or a byte-level BPE one under one of
 * several pre-tokenizers, among them those that run the regex matcher) and
 * the encode flags; the rest is the text. Every text must encode (or give
 * QF_ELIMIT from the matcher) and decode. For SentencePiece without special
 * parsing, decode(encode(text)) must give the text back once U+2581 is read
 * as a space on both sides (a space escaped to U+2581 whose bytes end up in
 * byte tokens, next to invalid UTF-8, decodes as those bytes, as in
 * llama.cpp): byte fallback keeps every byte.
 *   make fuzz && build-fuzz/fuzz_tokenizer -max_len=4096 CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "verify/tokenizer.h"
#include "verify/tokenizer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const PRES[] = { "gpt-2", "llama-bpe", "qwen2", "tekken", "default",
                                    "deepseek-llm", "deepseek-v3", "smollm" };
#define N_PRES (sizeof PRES / sizeof PRES[0])

static qf_tokenizer *spm, *bpe[N_PRES];

static qf_tokenizer *make(int is_bpe, const char *pre)
{
    static char store[256][8];
    const char *tok[256 + 8];
    int32_t type[256 + 8];
    float score[256 + 8];
    static const char *const extra_spm[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81",
                                             "\xe2\x96\x81" "a", "ab", "<user>", "a" };
    static const char *const extra_bpe[] = { "\xc4\xa0t", "he", "ll", "hell", "hello", "<|x|>",
                                             "<u>", "\xc4\xa0th" };
    static const char *const merges[] = { "\xc4\xa0 t", "h e", "l l", "he ll", "hell o",
                                          "\xc4\xa0t h" };
    qf_gguf_writer *w = NULL;
    qf_tokenizer *t = NULL;
    int i, n = 0;

    if (qf_gguf_writer_new(&w, NULL))
        abort();
    if (!is_bpe)
        for (i = 0; i < 8; i++) {
            tok[n] = extra_spm[i];
            type[n] = i == 0 ? 2 : i < 3 ? 3 : i == 6 ? 4 : 1;
            score[n++] = -(float)i;
        }
    for (i = 0; i < 256; i++) {
        if (is_bpe) {
            size_t k = qf_unicode_encode(qf_unicode_byte_to_cpt((uint8_t)i), store[i]);
            store[i][k] = '\0';
        } else {
            snprintf(store[i], sizeof store[i], "<0x%02X>", i);
        }
        tok[n] = store[i];
        type[n] = is_bpe ? 1 : 6;
        score[n++] = 0;
    }
    if (is_bpe)
        for (i = 0; i < 8; i++) {
            tok[n] = extra_bpe[i];
            type[n] = i == 5 ? 3 : i == 6 ? 4 : 1;
            score[n++] = 0;
        }
    qf_gguf_writer_set_str(w, "tokenizer.ggml.model", is_bpe ? "gpt2" : "llama", NULL);
    if (pre)
        qf_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, NULL);
    qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, NULL, (uint64_t)n, NULL);
    qf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QF_GGUF_FLOAT32, score, (uint64_t)n, NULL);
    qf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QF_GGUF_INT32, type, (uint64_t)n,
                           NULL);
    if (is_bpe) {
        qf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 6, NULL);
        qf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256 + 5, NULL);
    }
    if (qf_tokenizer_from_writer(w, "fuzz", &t, NULL))
        abort();
    qf_gguf_writer_free(w);
    return t;
}

/* U+2581 -> ' ' in place; returns the new length. */
static size_t space_marks(char *s, size_t len)
{
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        if (i + 2 < len && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            s[o++] = ' ';
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data + 1;
    size_t len = size ? size - 1 : 0, i, o;
    const qf_tokenizer *t;
    int add, parse, which;
    int32_t *ids;
    int64_t n, m;
    char *back, *want;

    if (!spm) {
        spm = make(0, NULL);
        for (i = 0; i < N_PRES; i++)
            bpe[i] = make(1, PRES[i]);
    }
    if (size == 0)
        return 0;
    which = data[0] % (N_PRES + 1);
    add = (data[0] >> 4) & 1;
    parse = (data[0] >> 5) & 1;
    t = which == 0 ? spm : bpe[which - 1];

    n = qf_tokenizer_encode(t, text, len, add, parse, NULL, 0, NULL);
    if (n == QF_ELIMIT)
        return 0;
    if (n < 0)
        abort();
    ids = malloc((size_t)(n + 1) * sizeof *ids);
    if (qf_tokenizer_encode(t, text, len, add, parse, ids, n, NULL) != n)
        abort();
    m = qf_tokenizer_decode_ex(t, ids, n, QF_TOKENIZER_DECODE_SPECIAL, NULL, 0, NULL);
    if (m < 0)
        abort();
    back = malloc((size_t)m + 1);
    if (qf_tokenizer_decode_ex(t, ids, n, QF_TOKENIZER_DECODE_SPECIAL, back, (size_t)m, NULL) !=
        m)
        abort();
    if (which == 0 && !add && !parse && !memmem(text, len, "<user>", 6)) {
        /* ("<user>" is user-defined: matched even without parse_special, and
         * the text after it gets a space; such inputs are skipped) */
        size_t nb = space_marks(back, (size_t)m);
        want = malloc(len + 1);
        memcpy(want, text, len);
        o = space_marks(want, len);
        if (nb != o || memcmp(back, want, o))
            abort();
        free(want);
    }
    free(back);
    free(ids);
    return 0;
}
