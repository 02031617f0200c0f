/*
 * util_genmodel - write a LLaMA-shaped Hugging Face model folder with
 * deterministic pseudo-random weights, for benchmarks and large-file tests.
 *
 *   util_genmodel OUT_DIR [--preset tinyllama-1.1b|llama3-8b|small] [--layers N] [--hidden N]
 *                 [--ffn N] [--heads N] [--kv-heads N] [--vocab N]
 *                 [--dtype bf16|f16|f32] [--seed N] [--force]
 *                 [--drop NAME] [--extra NAME]   (for error tests)
 *                 [--shards N]   (N files and a model.safetensors.index.json)
 *                 [--arch llama|mistral|qwen2|qwen3]  (qwen2: q/k/v biases;
 *                                 qwen3: q/k norms and head_dim)
 *                 [--tie]         tied embeddings, no lm_head.weight
 *                 [--tie-reverse] tied, only lm_head.weight, __metadata__ alias
 *                 [--rope-llama3] llama3-style rope_scaling in config.json
 *
 * Writes OUT_DIR/config.json and OUT_DIR/model.safetensors. Matrices are
 * N(0, 0.02)-like (a sum of uniforms), norms near 1. The default preset is
 * TinyLlama-1.1B's shape: hidden 2048, ffn 5632, 22 layers, 32 heads,
 * 4 KV heads, vocab 32000 (1.1e9 parameters, 2.2 GB in BF16). llama3-8b is
 * Llama-3-8B's shape: hidden 4096, ffn 14336, 32 layers, 32 heads, 8 KV
 * heads, vocab 128256 (8.0e9 parameters, 16 GB in BF16).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/safetensors.h"
#include "formats/types.h"

typedef struct {
    uint64_t layers, hidden, ffn, heads, kv_heads, vocab, seed;
    qf_dtype dtype;
} shape;

static uint64_t rng_state;

static uint64_t next_u64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Roughly normal: sum of four 16-bit uniforms, centred and scaled. */
static float next_normal(float sigma)
{
    uint64_t r = next_u64();
    float s = (float)(r & 0xFFFF) + (float)((r >> 16) & 0xFFFF) + (float)((r >> 32) & 0xFFFF) +
              (float)(r >> 48);
    return (s - 131070.0f) * (sigma / 37837.0f); /* sd of the sum: 65536 * sqrt(4/12) */
}

static int fill(qf_st_writer *w, qf_dtype dt, uint64_t n, int norm, qf_err *err)
{
    enum { CH = 1 << 16 };
    static float f[CH];
    static uint8_t buf[CH * 4];
    uint64_t done = 0;

    while (done < n) {
        size_t k = n - done > CH ? CH : (size_t)(n - done), i;
        for (i = 0; i < k; i++)
            f[i] = norm ? 1.0f + next_normal(0.1f) : next_normal(0.02f);
        qf_f32_to_dtype(dt, f, buf, k);
        if (qf_st_writer_write(w, buf, k * qf_dtype_size(dt), err) != 0)
            return -1;
        done += k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    shape s = { 22, 2048, 5632, 32, 4, 32000, 1, QF_DTYPE_BF16 };
    const char *out = NULL, *drop = NULL, *extra = NULL, *arch = "llama";
    int tie = 0, tie_reverse = 0, rope3 = 0;
    char path[4096];
    int i, force = 0, rc = 1, shards = 1;
    qf_err err = { 0 };
    qf_st_writer *w = NULL;
    FILE *f;
    uint64_t l, kv_dim;
    struct {
        char name[96];
        uint64_t rows, cols;
        int norm;
    } *t = NULL;
    size_t nt = 0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = NULL;
        if (!strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "--tie")) { tie = 1; continue; }
        if (!strcmp(a, "--tie-reverse")) { tie_reverse = 1; continue; }
        if (!strcmp(a, "--rope-llama3")) { rope3 = 1; continue; }
        if (a[0] != '-') { out = a; continue; }
        if (!v) { fprintf(stderr, "util_genmodel: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--preset")) {
            if (!strcmp(v, "small"))
                s = (shape){ 2, 256, 768, 4, 2, 512, s.seed, s.dtype };
            else if (!strcmp(v, "llama3-8b"))
                s = (shape){ 32, 4096, 14336, 32, 8, 128256, s.seed, s.dtype };
            else if (strcmp(v, "tinyllama-1.1b")) { fprintf(stderr, "util_genmodel: unknown preset\n"); return 2; }
            continue;
        }
        if (!strcmp(a, "--drop")) { drop = v; continue; }
        if (!strcmp(a, "--arch")) { arch = v; continue; }
        if (!strcmp(a, "--shards")) { shards = atoi(v); if (shards < 1) shards = 1; continue; }
        if (!strcmp(a, "--extra")) { extra = v; continue; }
        if (!strcmp(a, "--dtype")) {
            s.dtype = !strcmp(v, "f32") ? QF_DTYPE_F32 : !strcmp(v, "f16") ? QF_DTYPE_F16 : QF_DTYPE_BF16;
            continue;
        }
        if (!strcmp(a, "--layers")) dst = &s.layers;
        else if (!strcmp(a, "--hidden")) dst = &s.hidden;
        else if (!strcmp(a, "--ffn")) dst = &s.ffn;
        else if (!strcmp(a, "--heads")) dst = &s.heads;
        else if (!strcmp(a, "--kv-heads")) dst = &s.kv_heads;
        else if (!strcmp(a, "--vocab")) dst = &s.vocab;
        else if (!strcmp(a, "--seed")) dst = &s.seed;
        if (!dst) { fprintf(stderr, "util_genmodel: unknown option %s\n", a); return 2; }
        *dst = strtoull(v, NULL, 10);
    }
    if (!out || !s.heads || s.hidden % s.heads) {
        fprintf(stderr, "usage: util_genmodel OUT_DIR [options] (see the source)\n");
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "util_genmodel: %s: %s\n", out, strerror(errno));
        return 1;
    }
    rng_state = s.seed;
    kv_dim = s.hidden / s.heads * s.kv_heads;
    t = calloc(4 + 14 * s.layers, sizeof *t);
    if (!t)
        return 1;
#define ADD(r, c, nrm, ...) do { snprintf(t[nt].name, sizeof t[nt].name, __VA_ARGS__); \
        t[nt].rows = (r); t[nt].cols = (c); t[nt].norm = (nrm); nt++; } while (0)
    if (!tie)
        ADD(s.vocab, s.hidden, 0, "lm_head.weight");
    if (!tie_reverse)
        ADD(s.vocab, s.hidden, 0, "model.embed_tokens.weight");
    for (l = 0; l < s.layers; l++) {
        ADD(0, s.hidden, 1, "model.layers.%llu.input_layernorm.weight", (unsigned long long)l);
        ADD(s.hidden, s.ffn, 0, "model.layers.%llu.mlp.down_proj.weight", (unsigned long long)l);
        ADD(s.ffn, s.hidden, 0, "model.layers.%llu.mlp.gate_proj.weight", (unsigned long long)l);
        ADD(s.ffn, s.hidden, 0, "model.layers.%llu.mlp.up_proj.weight", (unsigned long long)l);
        ADD(0, s.hidden, 1, "model.layers.%llu.post_attention_layernorm.weight", (unsigned long long)l);
        ADD(kv_dim, s.hidden, 0, "model.layers.%llu.self_attn.k_proj.weight", (unsigned long long)l);
        ADD(s.hidden, s.hidden, 0, "model.layers.%llu.self_attn.o_proj.weight", (unsigned long long)l);
        ADD(s.hidden, s.hidden, 0, "model.layers.%llu.self_attn.q_proj.weight", (unsigned long long)l);
        ADD(kv_dim, s.hidden, 0, "model.layers.%llu.self_attn.v_proj.weight", (unsigned long long)l);
        if (!strcmp(arch, "qwen2")) {
            ADD(0, s.hidden, 1, "model.layers.%llu.self_attn.q_proj.bias", (unsigned long long)l);
            ADD(0, kv_dim, 1, "model.layers.%llu.self_attn.k_proj.bias", (unsigned long long)l);
            ADD(0, kv_dim, 1, "model.layers.%llu.self_attn.v_proj.bias", (unsigned long long)l);
        }
        if (!strcmp(arch, "qwen3")) {
            ADD(0, s.hidden / s.heads, 1, "model.layers.%llu.self_attn.q_norm.weight", (unsigned long long)l);
            ADD(0, s.hidden / s.heads, 1, "model.layers.%llu.self_attn.k_norm.weight", (unsigned long long)l);
        }
    }
    ADD(0, s.hidden, 1, "model.norm.weight");
    if (extra)
        ADD(0, s.hidden, 1, "%s", extra);
#undef ADD
    if (drop) {
        size_t k, o = 0;
        for (k = 0; k < nt; k++)
            if (strcmp(t[k].name, drop) != 0)
                t[o++] = t[k];
        nt = o;
    }

    snprintf(path, sizeof path, "%s/config.json", out);
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "util_genmodel: %s: %s\n", path, strerror(errno));
        goto done;
    }
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
            !strcmp(arch, "qwen2") ? "Qwen2ForCausalLM" : !strcmp(arch, "qwen3") ? "Qwen3ForCausalLM"
            : !strcmp(arch, "mistral") ? "MistralForCausalLM" : "LlamaForCausalLM", arch);
    if (!strcmp(arch, "qwen3"))
        fprintf(f, "  \"head_dim\": %llu,\n", (unsigned long long)(s.hidden / s.heads));
    if (rope3)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                   "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192},\n");
    fprintf(f,
            "  \"hidden_size\": %llu,\n  \"intermediate_size\": %llu,\n"
            "  \"num_hidden_layers\": %llu,\n  \"num_attention_heads\": %llu,\n"
            "  \"num_key_value_heads\": %llu,\n  \"vocab_size\": %llu,\n"
            "  \"max_position_embeddings\": 2048,\n  \"rms_norm_eps\": 1e-05,\n"
            "  \"rope_theta\": 10000.0,\n  \"tie_word_embeddings\": %s,\n"
            "  \"torch_dtype\": \"%s\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
            (unsigned long long)s.hidden, (unsigned long long)s.ffn,
            (unsigned long long)s.layers, (unsigned long long)s.heads,
            (unsigned long long)s.kv_heads, (unsigned long long)s.vocab,
            tie || tie_reverse ? "true" : "false", s.dtype == QF_DTYPE_F32 ? "float32" : s.dtype == QF_DTYPE_F16 ? "float16" : "bfloat16");
    fclose(f);

    {
        /* shards: consecutive tensors, about equal bytes each; an index when > 1 */
        uint64_t total = 0, per, acc = 0;
        size_t first = 0, k;
        int shard = 0;
        FILE *ix = NULL;
        for (k = 0; k < nt; k++)
            total += (t[k].norm ? t[k].cols : t[k].rows * t[k].cols) * qf_dtype_size(s.dtype);
        per = total / (uint64_t)shards + 1;
        if (shards > 1) {
            snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
            ix = fopen(path, "w");
            if (!ix) {
                fprintf(stderr, "util_genmodel: %s: %s\n", path, strerror(errno));
                goto done;
            }
            fprintf(ix, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {", (unsigned long long)total);
        }
        for (k = 0; k <= nt; k++) {
            uint64_t bytes = k < nt ? (t[k].norm ? t[k].cols : t[k].rows * t[k].cols) * qf_dtype_size(s.dtype) : 0;
            size_t m;
            if (k < nt && (acc == 0 || acc + bytes <= per || shard == shards - 1)) {
                acc += bytes;
                continue;
            }
            /* write tensors [first, k) as one shard */
            if (shards > 1)
                snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", out, shard + 1, shards);
            else
                snprintf(path, sizeof path, "%s/model.safetensors", out);
            if (qf_st_writer_new(&w, &err) || qf_st_writer_set_meta(w, "format", "pt", &err))
                goto fail;
            if (tie_reverse && shard == 0 &&
                qf_st_writer_set_meta(w, "model.embed_tokens.weight", "lm_head.weight", &err))
                goto fail;
            for (m = first; m < k; m++) {
                uint64_t shp[2] = { t[m].rows, t[m].cols };
                if (t[m].norm)
                    shp[0] = t[m].cols;
                if (qf_st_writer_add_tensor(w, t[m].name, s.dtype, t[m].norm ? 1 : 2, shp, &err))
                    goto fail;
                if (ix)
                    fprintf(ix, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", m ? "," : "", t[m].name, shard + 1, shards);
            }
            if (qf_st_writer_begin(w, path, force ? 1 : 0, &err))
                goto fail;
            for (m = first; m < k; m++)
                if (fill(w, s.dtype, t[m].norm ? t[m].cols : t[m].rows * t[m].cols, t[m].norm, &err))
                    goto fail;
            if (qf_st_writer_finish(w, &err))
                goto fail;
            qf_st_writer_free(w);
            w = NULL;
            shard++;
            first = k;
            acc = bytes;
        }
        if (ix) {
            fprintf(ix, "\n  }\n}\n");
            fclose(ix);
        }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "util_genmodel: %s\n", err.msg);
done:
    qf_st_writer_free(w);
    free(t);
    return rc;
}
