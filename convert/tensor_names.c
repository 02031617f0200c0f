/*
 * convert/tensor_names.c - HF <-> GGUF tensor names (see tensor_names.h).
 */
#include "convert/tensor_names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name[2]; /* [HF, GGUF], indexed by `from` below */
} name_pair;

enum { HF = 0, GGUF = 1 };

static const name_pair global_names[] = {
    { { "model.embed_tokens", "token_embd" } },
    { { "model.norm", "output_norm" } },
    { { "lm_head", "output" } },
};

static const name_pair layer_names[] = {
    { { "input_layernorm", "attn_norm" } },
    { { "self_attn.q_proj", "attn_q" } },
    { { "self_attn.k_proj", "attn_k" } },
    { { "self_attn.v_proj", "attn_v" } },
    { { "self_attn.o_proj", "attn_output" } },
    { { "self_attn.q_norm", "attn_q_norm" } },
    { { "self_attn.k_norm", "attn_k_norm" } },
    { { "post_attention_layernorm", "ffn_norm" } },
    { { "mlp.gate_proj", "ffn_gate" } },
    { { "mlp.up_proj", "ffn_up" } },
    { { "mlp.down_proj", "ffn_down" } },
};

static const char *const layer_prefix[2] = { "model.layers.", "blk." };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The entry whose `from` name, followed by ".weight" or ".bias", is s; NULL
 * if none. */
static const name_pair *lookup(const name_pair *tab, size_t n, int from, const char *s)
{
    size_t i;
    for (i = 0; i < n; i++) {
        size_t l = strlen(tab[i].name[from]);
        if (strncmp(s, tab[i].name[from], l) == 0 &&
            (strcmp(s + l, ".weight") == 0 || strcmp(s + l, ".bias") == 0))
            return &tab[i];
    }
    return NULL;
}

static int translate(const char *s, int from, char *out, size_t cap, uint64_t *layer,
                     const char **module)
{
    const int to = !from;
    const size_t pl = strlen(layer_prefix[from]);
    const name_pair *e = lookup(global_names, COUNT(global_names), from, s);

    if (e) {
        snprintf(out, cap, "%s%s", e->name[to], s + strlen(e->name[from]));
        *layer = UINT64_MAX;
        *module = e->name[GGUF];
        return 1;
    }
    if (strncmp(s, layer_prefix[from], pl) == 0 && s[pl] >= '0' && s[pl] <= '9') {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(s + pl, &end, 10);
        if (*end != '.' || errno || n >= UINT64_MAX)
            return 0;
        e = lookup(layer_names, COUNT(layer_names), from, end + 1);
        if (e) {
            snprintf(out, cap, "%s%llu.%s%s", layer_prefix[to], n, e->name[to],
                     end + 1 + strlen(e->name[from]));
            *layer = n;
            *module = e->name[GGUF];
            return 1;
        }
    }
    return 0;
}

int qf_tensor_names_to_gguf(const char *hf, char *out, size_t cap, uint64_t *layer,
                            const char **module)
{
    return translate(hf, HF, out, cap, layer, module);
}

int qf_tensor_names_to_hf(const char *gguf, char *out, size_t cap, uint64_t *layer,
                          const char **module)
{
    return translate(gguf, GGUF, out, cap, layer, module);
}

const char *qf_tensor_names_layer_hf(const char *gguf_module)
{
    size_t i;
    for (i = 0; i < COUNT(layer_names); i++)
        if (strcmp(layer_names[i].name[GGUF], gguf_module) == 0)
            return layer_names[i].name[HF];
    return NULL;
}
