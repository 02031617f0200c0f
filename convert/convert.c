/*
 * convert/convert.c - Hugging Face folder -> GGUF (see convert.h).
 */
#include "convert/convert.h"

#include "convert/qfm_io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "convert/naming.h"
#include "convert/tensor_names.h"
#include "convert/vocab.h"
#include "formats/file.h"
#include "formats/folder.h"
#include "formats/gguf.h"
#include "formats/hash.h"
#include "formats/parallel.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "formats/types.h"
#include "quantize/quant.h"

/* =====================================================================
 * Architectures: adding one is one entry here (and, if its tensors have
 * other names, entries in the name table of convert/tensor_names.c).
 * ===================================================================== */

enum {
    ARCH_PERMUTE_QK = 1, /* q/k rows: HF rotate-half -> ggml interleaved RoPE */
    ARCH_LLAMA_KEYS = 2, /* writes <arch>.vocab_size and rope.dimension_count */
    ARCH_ROPE_YARN = 4,  /* writes YaRN rope scaling keys (Qwen2 family) */
};

typedef struct {
    const char *hf;   /* config.json "architectures"[0] */
    const char *gguf; /* general.architecture */
    unsigned flags;
} arch_entry;

static const arch_entry archs[] = {
    { "LlamaForCausalLM", "llama", ARCH_PERMUTE_QK | ARCH_LLAMA_KEYS },
    { "MistralForCausalLM", "llama", ARCH_PERMUTE_QK | ARCH_LLAMA_KEYS },
    { "Qwen2ForCausalLM", "qwen2", ARCH_ROPE_YARN },
    { "Qwen3ForCausalLM", "qwen3", ARCH_ROPE_YARN },
};

/* Input tensors that carry nothing a GGUF needs. */
static int skipped_name(const char *n)
{
    static const char *const suffixes[] = { ".rotary_emb.inv_freq", ".attention.masked_bias",
                                            ".attention.bias" };
    size_t i, len = strlen(n);
    for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len >= sl && strcmp(n + len - sl, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

/* =====================================================================
 * Plan
 * ===================================================================== */

typedef struct {
    uint64_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx, head_dim;
    int has_ff, has_ctx, has_head_kv, has_head_dim, has_theta, has_rms, has_norm_eps;
    double theta, rms_eps, norm_eps;
    int tied;
    /* rope scaling */
    int rope_linear;
    double rope_factor;
    int rope_llama3;
    double r3_factor, r3_low, r3_high, r3_orig_ctx;
    int rope_yarn;
    double yarn_factor;
    uint64_t yarn_orig_ctx;
} hparams;

typedef struct {
    qf_convert_tensor t;   /* what the plan shows */
    char name[QF_GGUF_MAX_NAME];
    int64_t src;           /* input tensor index, or -1 for generated (rope_freqs) */
    int permute_heads;     /* > 0: permute rows in groups of this many heads */
    float *generated;      /* data of a generated tensor */
} out_tensor;

struct qf_convert {
    char *dir;
    qf_weights *st;      /* the weight files: safetensors or PyTorch */
    const arch_entry *arch;
    hparams hp;
    qf_outtype outtype;
    qf_convert_opts opts;
    qf_vocab *vocab;
    qf_names names;
    out_tensor *t;
    int64_t nt;
    uint64_t n_params;
    qf_gguf_writer *w;     /* metadata and tensor table, ready to begin */
};

int qf_outtype_from_name(const char *name)
{
    static const char *const names[] = { "auto", "f32", "f16", "bf16", "q8_0" };
    int i;
    for (i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *qf_outtype_name(qf_outtype t)
{
    static const char *const names[] = { "auto", "f32", "f16", "bf16", "q8_0" };
    return (unsigned)t < 5 ? names[t] : "?";
}

void qf_convert_free(qf_convert *c)
{
    int64_t i;
    if (!c)
        return;
    for (i = 0; i < c->nt; i++)
        free(c->t[i].generated);
    free(c->t);
    qf_weights_close(c->st);
    qf_vocab_free(c->vocab);
    qf_names_free(&c->names);
    qf_gguf_writer_free(c->w);
    free(c->dir);
    free(c);
}

const char *qf_convert_arch(const qf_convert *c) { return c->arch->gguf; }
qf_outtype qf_convert_outtype(const qf_convert *c) { return c->outtype; }
int64_t qf_convert_tensor_count(const qf_convert *c) { return c->nt; }
uint64_t qf_convert_param_count(const qf_convert *c) { return c->n_params; }

const qf_convert_tensor *qf_convert_tensor_at(const qf_convert *c, int64_t i)
{
    return (i >= 0 && i < c->nt) ? &c->t[i].t : NULL;
}

uint64_t qf_convert_file_size(const qf_convert *c) { return qf_gguf_writer_file_size(c->w); }

/* ---- config.json --------------------------------------------------------- */

/* Read a whole small file (config, tokenizer config) into a NUL-ended buffer. */
static int read_text(const char *path, char **out, qf_err *err)
{
    qf_map *m = NULL;
    int rc = qf_map_open(path, &m, err);
    char *buf;
    if (rc)
        return rc;
    if (qf_map_size(m) > (64u << 20)) {
        qf_map_close(m);
        return qf_err_set(err, QF_ELIMIT, "%s: larger than 64 MiB", path);
    }
    buf = malloc((size_t)qf_map_size(m) + 1);
    if (!buf) {
        qf_map_close(m);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    if (qf_map_size(m))
        memcpy(buf, qf_map_data(m), (size_t)qf_map_size(m));
    buf[qf_map_size(m)] = '\0';
    qf_map_close(m);
    *out = buf;
    return 0;
}

/* The first present key of `keys` holding a non-negative integer. Returns 1
 * found, 0 absent, or a negative code (present but not such a number). */
static int get_uint(const cJSON *cfg, const char *path, const char *const *keys, uint64_t *v,
                    qf_err *err)
{
    for (; *keys; keys++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, *keys);
        double d;
        if (!it || cJSON_IsNull(it))
            continue;
        d = it->valuedouble;
        if (!cJSON_IsNumber(it) || d < 0 || d != floor(d) || d > 9007199254740992.0)
            return qf_err_set(err, QF_EFORMAT, "%s: \"%s\" must be a non-negative integer", path,
                              *keys);
        *v = (uint64_t)d;
        return 1;
    }
    return 0;
}

static int get_num(const cJSON *cfg, const char *path, const char *key, double *v, qf_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsNumber(it))
        return qf_err_set(err, QF_EFORMAT, "%s: \"%s\" must be a number", path, key);
    *v = it->valuedouble;
    return 1;
}

static int need_uint(const cJSON *cfg, const char *path, const char *const *keys, uint64_t *v,
                     qf_err *err)
{
    int rc = get_uint(cfg, path, keys, v, err);
    if (rc == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: missing \"%s\"", path, keys[0]);
    if (rc < 0)
        return rc;
    if (*v == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: \"%s\" is 0", path, keys[0]);
    return 0;
}

static int read_config(qf_convert *c, char **name_or_path, qf_err *err)
{
    static const char *const k_layer[] = { "num_hidden_layers", "n_layers", "n_layer", NULL };
    static const char *const k_embd[] = { "hidden_size", "n_embd", NULL };
    static const char *const k_ff[] = { "intermediate_size", "n_inner", NULL };
    static const char *const k_head[] = { "num_attention_heads", "n_head", NULL };
    static const char *const k_kv[] = { "num_key_value_heads", NULL };
    static const char *const k_vocab[] = { "vocab_size", NULL };
    static const char *const k_ctx[] = { "max_position_embeddings", "n_ctx", NULL };
    static const char *const k_hd[] = { "head_dim", NULL };
    char *path = qf_path_join(c->dir, "config.json"), *text = NULL;
    cJSON *cfg = NULL;
    const cJSON *archs_j, *a, *it;
    hparams *hp = &c->hp;
    size_t i;
    int rc = 0;

    if (!path)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if ((rc = read_text(path, &text, err)) != 0)
        goto done;
    cfg = cJSON_Parse(text);
    if (!cfg || !cJSON_IsObject(cfg)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not a JSON object", path);
        goto done;
    }
    archs_j = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    a = cJSON_IsArray(archs_j) ? cJSON_GetArrayItem(archs_j, 0) : NULL;
    if (!cJSON_IsString(a)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: missing \"architectures\"", path);
        goto done;
    }
    for (i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].hf, a->valuestring) == 0)
            c->arch = &archs[i];
    if (!c->arch) {
        char list[512] = "";
        for (i = 0; i < sizeof archs / sizeof archs[0]; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, archs[i].hf, sizeof list - strlen(list) - 1);
        }
        rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: architecture \"%s\" is not supported (supported: %s)",
                        path, a->valuestring, list);
        goto done;
    }
    if ((rc = need_uint(cfg, path, k_layer, &hp->n_layer, err)) ||
        (rc = need_uint(cfg, path, k_embd, &hp->n_embd, err)) ||
        (rc = need_uint(cfg, path, k_head, &hp->n_head, err)) ||
        (rc = need_uint(cfg, path, k_vocab, &hp->n_vocab, err)))
        goto done;
    if ((rc = get_uint(cfg, path, k_ff, &hp->n_ff, err)) < 0 ||
        (hp->has_ff = rc, rc = get_uint(cfg, path, k_ctx, &hp->n_ctx, err)) < 0 ||
        (hp->has_ctx = rc, rc = get_uint(cfg, path, k_kv, &hp->n_head_kv, err)) < 0 ||
        (hp->has_head_kv = rc, rc = get_uint(cfg, path, k_hd, &hp->head_dim, err)) < 0)
        goto done;
    hp->has_head_dim = rc;
    if ((rc = get_num(cfg, path, "rope_theta", &hp->theta, err)) < 0)
        goto done;
    hp->has_theta = rc;
    if ((rc = get_num(cfg, path, "rms_norm_eps", &hp->rms_eps, err)) < 0)
        goto done;
    hp->has_rms = rc;
    rc = 0;
    if (hp->has_head_kv && (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)) {
        rc = qf_err_set(err, QF_EFORMAT,
                        "%s: \"num_attention_heads\" (%" PRIu64 ") is not a multiple of \"num_key_value_heads\" (%" PRIu64 ")",
                        path, hp->n_head, hp->n_head_kv);
        goto done;
    }
    if (!hp->has_head_dim && hp->n_embd % hp->n_head != 0) {
        rc = qf_err_set(err, QF_EFORMAT,
                        "%s: \"hidden_size\" (%" PRIu64 ") is not a multiple of \"num_attention_heads\" (%" PRIu64 ")",
                        path, hp->n_embd, hp->n_head);
        goto done;
    }
    it = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tied = cJSON_IsTrue(it);
    it = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (cJSON_IsObject(it)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "rope_type");
        const cJSON *ty2 = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "factor");
        if (cJSON_IsString(ty) && strcasecmp(ty->valuestring, "llama3") == 0) {
            const cJSON *lo = cJSON_GetObjectItemCaseSensitive(it, "low_freq_factor");
            const cJSON *hi = cJSON_GetObjectItemCaseSensitive(it, "high_freq_factor");
            const cJSON *oc = cJSON_GetObjectItemCaseSensitive(it, "original_max_position_embeddings");
            hp->rope_llama3 = 1;
            hp->r3_factor = cJSON_IsNumber(f) ? f->valuedouble : 8.0;
            hp->r3_low = cJSON_IsNumber(lo) ? lo->valuedouble : 1.0;
            hp->r3_high = cJSON_IsNumber(hi) ? hi->valuedouble : 4.0;
            hp->r3_orig_ctx = cJSON_IsNumber(oc) ? oc->valuedouble : 8192.0;
            if (hp->r3_low == hp->r3_high) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: rope_scaling: low_freq_factor equals high_freq_factor", path);
                goto done;
            }
        } else if (cJSON_IsNumber(f) && cJSON_IsString(ty2) && strcmp(ty2->valuestring, "linear") == 0) {
            hp->rope_linear = 1;
            hp->rope_factor = f->valuedouble;
        } else if (cJSON_IsNumber(f) && cJSON_IsString(ty2) && strcmp(ty2->valuestring, "yarn") == 0) {
            const cJSON *oc = cJSON_GetObjectItemCaseSensitive(it, "original_max_position_embeddings");
            if (!cJSON_IsNumber(oc) || oc->valuedouble < 1) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: rope_scaling: yarn needs \"original_max_position_embeddings\"", path);
                goto done;
            }
            hp->rope_yarn = 1;
            hp->yarn_factor = f->valuedouble;
            hp->yarn_orig_ctx = (uint64_t)oc->valuedouble;
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(cfg, "_name_or_path");
    if (cJSON_IsString(it) && *it->valuestring)
        *name_or_path = strdup(it->valuestring);
done:
    cJSON_Delete(cfg);
    free(text);
    if (rc)
        qf_err_prefix(err, path);
    free(path);
    return rc;
}

/* ---- tensor mapping -------------------------------------------------------- */

/* Map an input name to its GGUF name (convert/tensor_names.h). Returns 1
 * mapped, 0 not ours, or -1 for a layer number outside the model. */
static int map_name(const char *hf, uint64_t n_layer, char *out, size_t cap, uint64_t *layer,
                    const char **module)
{
    if (!qf_tensor_names_to_gguf(hf, out, cap, layer, module))
        return 0;
    return *layer != UINT64_MAX && *layer >= n_layer ? -1 : 1;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The shape (row-major, HF order) the config says tensor `gguf` must have;
 * returns the number of dims, or 0 if the config does not decide it. */
static int expected_shape(const qf_convert *c, const char *gguf, uint64_t *shape)
{
    const hparams *hp = &c->hp;
    uint64_t hd = hp->has_head_dim ? hp->head_dim : hp->n_embd / hp->n_head;
    uint64_t kv = hp->has_head_kv ? hp->n_head_kv : hp->n_head;
    const char *dot = strchr(gguf, '.');
    const char *kind = gguf;
    int bias = ends_with(gguf, ".bias");

    if (strncmp(gguf, "blk.", 4) == 0 && dot)
        kind = strchr(dot + 1, '.') + 1;
#define IS(k) (strncmp(kind, k ".", strlen(k) + 1) == 0)
    if (IS("token_embd") || IS("output")) {
        if (bias)
            return 0;
        shape[0] = hp->n_vocab;
        shape[1] = hp->n_embd;
        return 2;
    }
    if (IS("output_norm") || IS("attn_norm") || IS("ffn_norm")) {
        shape[0] = hp->n_embd;
        return 1;
    }
    if (IS("attn_q_norm") || IS("attn_k_norm")) {
        shape[0] = hd;
        return 1;
    }
    if (IS("attn_q") || IS("attn_k") || IS("attn_v")) {
        shape[0] = (IS("attn_q") ? hp->n_head : kv) * hd;
        shape[1] = hp->n_embd;
        return bias ? 1 : 2;
    }
    if (IS("attn_output")) {
        shape[0] = hp->n_embd;
        shape[1] = hp->n_head * hd;
        return bias ? 1 : 2;
    }
    if (hp->has_ff && (IS("ffn_gate") || IS("ffn_up"))) {
        shape[0] = hp->n_ff;
        shape[1] = hp->n_embd;
        return bias ? 1 : 2;
    }
    if (hp->has_ff && IS("ffn_down")) {
        shape[0] = hp->n_embd;
        shape[1] = hp->n_ff;
        return bias ? 1 : 2;
    }
#undef IS
    return 0;
}

/* ggml type for an output tensor, as llama.cpp's converter picks it. */
static int pick_type(const qf_convert *c, const char *gguf, uint32_t n_dims, uint64_t row,
                     int *fallback)
{
    *fallback = 0;
    if (n_dims <= 1 || ends_with(gguf, "_norm.weight") || !ends_with(gguf, ".weight"))
        return QF_GGML_F32;
    switch (c->outtype) {
    case QF_OUTTYPE_F32: return QF_GGML_F32;
    case QF_OUTTYPE_BF16: return QF_GGML_BF16;
    case QF_OUTTYPE_Q8_0:
        if (row % 32 != 0) {
            *fallback = 1;
            return QF_GGML_F16;
        }
        return QF_GGML_Q8_0;
    default: return QF_GGML_F16;
    }
}

void qf_convert_llama3_rope_factors(float base, uint64_t dim, double factor, double low, double high,
                                    double orig_ctx, float *f)
{
    uint64_t n = dim / 2, i;
    double low_wl = orig_ctx / low, high_wl = orig_ctx / high;

    for (i = 0; i < n; i++) {
        float freq = 1.0f / powf(base, (float)(2 * i) / (float)dim);
        float wavelen = (float)(2.0 * M_PI) / freq;
        if ((double)wavelen < high_wl) {
            f[i] = 1.0f;
        } else if ((double)wavelen > low_wl) {
            f[i] = (float)factor;
        } else {
            float smooth = ((float)orig_ctx / wavelen - (float)low) / ((float)high - (float)low);
            f[i] = 1.0f / ((1.0f - smooth) / (float)factor + smooth);
        }
    }
}

/* The model's rope_freqs.weight (owned by the caller: free), or NULL. */
static float *llama3_rope_factors(const hparams *hp, uint64_t dim)
{
    float *f = malloc((dim / 2 ? dim / 2 : 1) * sizeof *f);
    if (f)
        qf_convert_llama3_rope_factors(hp->has_theta ? (float)hp->theta : 10000.0f, dim, hp->r3_factor,
                                       hp->r3_low, hp->r3_high, hp->r3_orig_ctx, f);
    return f;
}

static int add_out(qf_convert *c, const char *name, int64_t src, int permute, uint32_t n_dims,
                   const uint64_t *hf_shape, qf_err *err)
{
    out_tensor *o;
    uint32_t d;
    int fb;

    o = &c->t[c->nt];
    memset(o, 0, sizeof *o);
    if (strlen(name) >= sizeof o->name)
        return qf_err_set(err, QF_EINVAL, "tensor name \"%s\" too long for GGUF", name);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->src = src;
    o->permute_heads = permute;
    o->t.name = o->name;
    o->t.n_dims = n_dims ? n_dims : 1;
    for (d = 0; d < 4; d++)
        o->t.ne[d] = 1;
    for (d = 0; d < n_dims; d++)
        o->t.ne[d] = hf_shape[n_dims - 1 - d]; /* GGUF order is reversed */
    o->t.type = pick_type(c, name, n_dims, o->t.ne[0], &fb);
    o->t.fallback = fb;
    if (qf_ggml_row_size(o->t.type, o->t.ne[0], &o->t.nbytes) != 0)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": bad row length", name);
    o->t.nbytes *= o->t.ne[1] * o->t.ne[2] * o->t.ne[3];
    c->nt++;
    return 0;
}

/* The model id naming keys come from: an HF cache snapshot folder
 * (".../models--org--name/snapshots/<hash>") gives "org/name"; otherwise
 * the folder's own name. */
static char *model_id_from_dir(const char *dir)
{
    char real[PATH_MAX], *base, *snap;
    size_t len;

    if (!realpath(dir, real))
        snprintf(real, sizeof real, "%s", dir);
    len = strlen(real);
    while (len > 1 && real[len - 1] == '/')
        real[--len] = '\0';
    base = strrchr(real, '/');
    base = base ? base + 1 : real;
    snap = strstr(real, "/snapshots/");
    if (snap && strchr(snap + 11, '/') == NULL) {
        char *models, *p, *q;
        *snap = '\0';
        models = strrchr(real, '/');
        models = models ? models + 1 : real;
        if (strncmp(models, "models--", 8) == 0 && (p = strstr(models + 8, "--"))) {
            char *id = malloc(strlen(models) + 1);
            if (!id)
                return NULL;
            memcpy(id, models + 8, (size_t)(p - (models + 8)));
            q = id + (p - (models + 8));
            *q++ = '/';
            strcpy(q, p + 2);
            return id;
        }
    }
    return strdup(base);
}

static int build_metadata(qf_convert *c, const char *name_or_path, qf_err *err)
{
    const hparams *hp = &c->hp;
    qf_gguf_writer *w = c->w;
    const char *a = c->arch->gguf;
    char key[128], size[32];
    char *id = NULL;
    int rc = 0;
    uint64_t hd = hp->has_head_dim ? hp->head_dim : hp->n_embd / hp->n_head;
    static const uint32_t file_types[] = { 1, 0, 1, 32, 7 }; /* by qf_outtype */

#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    if (c->opts.name)
        c->names.name = strdup(c->opts.name);
    if (name_or_path) {
        int slashes = 0;
        for (const char *p = name_or_path; *p; p++)
            slashes += *p == '/';
        if (slashes <= 1 && (rc = qf_names_from_id(&c->names, name_or_path, c->n_params)))
            goto nomem;
    }
    id = model_id_from_dir(c->dir);
    if (!id || (rc = qf_names_from_id(&c->names, id, c->n_params)))
        goto nomem;
    if (!c->names.size_label && c->n_params > 0) {
        qf_names_size_label(c->n_params, size, sizeof size);
        c->names.size_label = strdup(size);
    }
    if ((rc = qf_gguf_writer_set_str(w, "general.architecture", a, err)) ||
        (rc = qf_gguf_writer_set_str(w, "general.type", "model", err)))
        goto done;
    if (c->names.name && (rc = qf_gguf_writer_set_str(w, "general.name", c->names.name, err)))
        goto done;
    if (c->names.version && (rc = qf_gguf_writer_set_str(w, "general.version", c->names.version, err)))
        goto done;
    if (c->names.organization &&
        (rc = qf_gguf_writer_set_str(w, "general.organization", c->names.organization, err)))
        goto done;
    if (c->names.finetune && (rc = qf_gguf_writer_set_str(w, "general.finetune", c->names.finetune, err)))
        goto done;
    if (c->names.basename && (rc = qf_gguf_writer_set_str(w, "general.basename", c->names.basename, err)))
        goto done;
    if (c->names.size_label &&
        (rc = qf_gguf_writer_set_str(w, "general.size_label", c->names.size_label, err)))
        goto done;

    if ((rc = qf_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)hp->n_layer, err)))
        goto done;
    if (hp->has_ctx && (rc = qf_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx, err)))
        goto done;
    if ((rc = qf_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd, err)))
        goto done;
    if (hp->has_ff && (rc = qf_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff, err)))
        goto done;
    if ((rc = qf_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_head, err)))
        goto done;
    if (hp->has_head_kv &&
        (rc = qf_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv, err)))
        goto done;
    if (hp->has_theta && (rc = qf_gguf_writer_set_f32(w, KEY("rope.freq_base"), (float)hp->theta, err)))
        goto done;
    if (hp->has_rms &&
        (rc = qf_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)hp->rms_eps, err)))
        goto done;
    if (hp->has_head_dim &&
        ((rc = qf_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)hp->head_dim, err)) ||
         (rc = qf_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)hp->head_dim, err))))
        goto done;
    if ((rc = qf_gguf_writer_set_u32(w, "general.file_type", file_types[c->outtype], err)))
        goto done;
    if (c->arch->flags & ARCH_LLAMA_KEYS) {
        if ((rc = qf_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)hp->n_vocab, err)) ||
            (rc = qf_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hd, err)))
            goto done;
        if (hp->rope_linear &&
            ((rc = qf_gguf_writer_set_str(w, KEY("rope.scaling.type"), "linear", err)) ||
             (rc = qf_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), (float)hp->rope_factor, err))))
            goto done;
    }
    if ((c->arch->flags & ARCH_ROPE_YARN) && hp->rope_yarn &&
        ((rc = qf_gguf_writer_set_str(w, KEY("rope.scaling.type"), "yarn", err)) ||
         (rc = qf_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), (float)hp->yarn_factor, err)) ||
         (rc = qf_gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->yarn_orig_ctx, err))))
        goto done;
    if (c->vocab && (rc = qf_vocab_write_gguf(c->vocab, w, err)))
        goto done;
    rc = qf_gguf_writer_set_u32(w, "general.quantization_version", 2, err);
    goto done;
#undef KEY
nomem:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    free(id);
    return rc;
}

int qf_convert_plan(const char *dir, const qf_convert_opts *opts, qf_convert **out, qf_err *err)
{
    qf_convert *c = calloc(1, sizeof *c);
    char *name_or_path = NULL, *leftover = NULL;
    int64_t i, n_in, embd_src = -1, lm_src = -1;
    uint8_t *used = NULL;
    int rc = 0;
    struct stat sb;

    *out = NULL;
    if (!c)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    c->opts = *opts;
    if (c->opts.threads < 1)
        c->opts.threads = 1;
    if (stat(dir, &sb) != 0) {
        rc = qf_err_set(err, QF_EIO, "%s: %s", dir, strerror(errno));
        goto done;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rc = qf_err_set(err, QF_EINVAL, "%s: not a folder (MODEL is a model folder with config.json)", dir);
        goto done;
    }
    if (!(c->dir = strdup(dir))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = read_config(c, &name_or_path, err)) != 0)
        goto done;
    if ((rc = qf_weights_open(dir, &c->st, err)) != 0)
        goto done;
    n_in = qf_weights_count(c->st);

    /* output type "auto": the dtype of the first 2-D tensor */
    c->outtype = opts->outtype;
    if (c->outtype == QF_OUTTYPE_AUTO) {
        c->outtype = QF_OUTTYPE_F16;
        for (i = 0; i < n_in; i++) {
            const qf_st_tensor *t = qf_weights_at(c->st, i);
            if (t->n_dims == 2) {
                if (t->dtype == QF_DTYPE_BF16)
                    c->outtype = QF_OUTTYPE_BF16;
                break;
            }
        }
    }

    /* Tied embeddings stored the other way round: only lm_head.weight, with
     * __metadata__ naming model.embed_tokens.weight as its alias (what
     * safetensors' save_model writes for shared tensors). */
    embd_src = qf_weights_find(c->st, "model.embed_tokens.weight");
    lm_src = qf_weights_find(c->st, "lm_head.weight");
    if (embd_src < 0 && lm_src >= 0) {
        const char *alias = qf_weights_meta_get(c->st, "model.embed_tokens.weight");
        if ((alias && strcmp(alias, "lm_head.weight") == 0) || c->hp.tied)
            c->hp.tied = 2; /* lm_head stands for both */
    }

    if (!opts->vocab_only) {
        c->t = calloc((size_t)n_in + 2, sizeof *c->t);
        used = calloc((size_t)n_in + 1, 1);
        if (!c->t || !used) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        if (c->hp.rope_llama3) {
            uint64_t hd = c->hp.has_head_dim ? c->hp.head_dim : c->hp.n_embd / c->hp.n_head;
            uint64_t shp = hd / 2;
            if ((rc = add_out(c, "rope_freqs.weight", -1, 0, 1, &shp, err)) != 0)
                goto done;
            c->t[0].generated = llama3_rope_factors(&c->hp, hd);
            if (!c->t[0].generated) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
        }
        for (i = 0; i < n_in; i++) {
            const qf_st_tensor *t = qf_weights_at(c->st, i);
            char gname[QF_GGUF_MAX_NAME + 32];
            uint64_t layer, want[2] = { 0, 0 };
            const char *module = NULL;
            int m, permute = 0, nd;
            if (skipped_name(t->name)) {
                used[i] = 1;
                continue;
            }
            m = map_name(t->name, c->hp.n_layer, gname, sizeof gname, &layer, &module);
            if (m < 0) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": layer beyond \"num_hidden_layers\" = %" PRIu64,
                                qf_weights_file_path(c->st, t->file), t->name, c->hp.n_layer);
                goto done;
            }
            if (m == 0)
                continue; /* reported below as left over */
            used[i] = 1;
            if (c->hp.tied == 2 && i == lm_src)
                snprintf(gname, sizeof gname, "token_embd.weight");
            if (t->dtype != QF_DTYPE_F32 && t->dtype != QF_DTYPE_F16 && t->dtype != QF_DTYPE_BF16 &&
                t->dtype != QF_DTYPE_F64) {
                rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": dtype %s is not a float type",
                                qf_weights_file_path(c->st, t->file), t->name, qf_dtype_name(t->dtype));
                goto done;
            }
            nd = expected_shape(c, gname, want);
            if (nd > 0 && ((uint32_t)nd != t->n_dims || want[0] != t->shape[0] ||
                           (nd == 2 && want[1] != t->shape[1]))) {
                char got[64], exp[64];
                snprintf(got, sizeof got, t->n_dims == 1 ? "[%" PRIu64 "]" : "[%" PRIu64 ", %" PRIu64 "]",
                         t->shape[0], t->n_dims > 1 ? t->shape[1] : 0);
                snprintf(exp, sizeof exp, nd == 1 ? "[%" PRIu64 "]" : "[%" PRIu64 ", %" PRIu64 "]", want[0],
                         nd > 1 ? want[1] : 0);
                rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": shape %s does not match config.json (%s)",
                                qf_weights_file_path(c->st, t->file), t->name, got, exp);
                goto done;
            }
            if (t->n_dims > 4) {
                rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": %u dimensions (GGUF allows 4)",
                                qf_weights_file_path(c->st, t->file), t->name, t->n_dims);
                goto done;
            }
            if ((c->arch->flags & ARCH_PERMUTE_QK) &&
                (strcmp(module, "attn_q") == 0 || strcmp(module, "attn_k") == 0)) {
                uint64_t heads = strcmp(module, "attn_q") == 0 ? c->hp.n_head
                                 : (c->hp.has_head_kv ? c->hp.n_head_kv : c->hp.n_head);
                if (t->shape[0] % (2 * heads) != 0) {
                    rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": %" PRIu64 " rows do not split into %" PRIu64 " heads",
                                    qf_weights_file_path(c->st, t->file), t->name, t->shape[0], heads);
                    goto done;
                }
                permute = (int)heads;
            }
            for (int64_t j = 0; j < c->nt; j++)
                if (strcmp(c->t[j].name, gname) == 0) {
                    rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": a second source for \"%s\"",
                                    qf_weights_file_path(c->st, t->file), t->name, gname);
                    goto done;
                }
            if ((rc = add_out(c, gname, i, permute, t->n_dims, t->shape, err)) != 0)
                goto done;
            c->t[c->nt - 1].t.source = t->name;
        }
        /* tensors nothing maps: an error that lists them */
        for (i = 0; i < n_in; i++) {
            const qf_st_tensor *t = qf_weights_at(c->st, i);
            size_t have = leftover ? strlen(leftover) : 0, need = strlen(t->name) + 4;
            char *nl;
            if (used[i])
                continue;
            if (have > 400)
                continue;
            nl = realloc(leftover, have + need + 1);
            if (!nl) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
            leftover = nl;
            snprintf(leftover + have, need + 1, "%s\"%s\"", have ? ", " : "", t->name);
        }
        if (leftover) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tensors that %s has no place for: %s", dir,
                            c->arch->hf, leftover);
            goto done;
        }
        /* tensors the architecture needs */
        {
            static const char *const per_layer[] = { "attn_norm", "attn_q", "attn_k", "attn_v",
                                                     "attn_output", "ffn_norm", "ffn_gate",
                                                     "ffn_up", "ffn_down" };
            char need[QF_GGUF_MAX_NAME];
            uint64_t l;
            size_t k;
            int found;
            const char *globals[] = { "token_embd.weight", "output_norm.weight" };
            for (k = 0; k < 2; k++) {
                found = 0;
                for (i = 0; i < c->nt; i++)
                    found |= strcmp(c->t[i].name, globals[k]) == 0;
                if (!found) {
                    rc = qf_err_set(err, QF_EFORMAT, "%s: missing tensor \"%s\" (%s)", dir,
                                    k == 0 ? "model.embed_tokens.weight" : "model.norm.weight", globals[k]);
                    goto done;
                }
            }
            for (l = 0; l < c->hp.n_layer; l++)
                for (k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++) {
                    snprintf(need, sizeof need, "blk.%" PRIu64 ".%s.weight", l, per_layer[k]);
                    found = 0;
                    for (i = 0; i < c->nt && !found; i++)
                        found = strcmp(c->t[i].name, need) == 0;
                    if (!found) {
                        rc = qf_err_set(err, QF_EFORMAT, "%s: missing tensor \"model.layers.%" PRIu64 ".%s.weight\" (%s)",
                                        dir, l, qf_tensor_names_layer_hf(per_layer[k]), need);
                        goto done;
                    }
                }
        }
        for (i = 0; i < c->nt; i++)
            c->n_params += c->t[i].t.ne[0] * c->t[i].t.ne[1] * c->t[i].t.ne[2] * c->t[i].t.ne[3];
    }

    rc = qf_vocab_load(dir, c->hp.n_vocab, &c->vocab, err);
    if (rc == QF_ENOTFOUND) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: no tokenizer (tokenizer.model or tokenizer.json)", dir);
        goto done;
    }
    if (rc)
        goto done;

    if ((rc = qf_gguf_writer_new(&c->w, err)) != 0 || (rc = build_metadata(c, name_or_path, err)) != 0)
        goto done;
    for (i = 0; i < c->nt; i++)
        if ((rc = qf_gguf_writer_add_tensor(c->w, c->t[i].name, c->t[i].t.type, c->t[i].t.n_dims,
                                            c->t[i].t.ne, err)) != 0)
            goto done;
    *out = c;
    c = NULL;
done:
    free(name_or_path);
    free(leftover);
    free(used);
    qf_convert_free(c);
    return rc;
}

/* =====================================================================
 * Write: chunks of rows, converted in parallel, streamed out
 * ===================================================================== */

#define CHUNK_BYTES (8u << 20) /* output bytes per chunk */

typedef struct {
    const qf_convert *c;
    const out_tensor *o;
    const uint8_t *src;     /* input data */
    qf_dtype src_dtype;
    uint64_t row_in;        /* elements per row */
    uint64_t row_out_bytes; /* bytes per output row */
    uint64_t rows_per_head; /* rows of one head (permute) */
    int64_t row0;           /* first output row of this chunk */
    uint8_t *dst;           /* chunk buffer */
    float *scratch;         /* per worker: row_in floats */
    int failed_row_nan;
} chunk_job;

/* HF row feeding output row r of a permuted q/k tensor: within each head
 * of `hd` rows, output rows interleave the head's two halves (rotate-half ->
 * pairs), as llama.cpp's converter permutes them. */
static uint64_t permuted_row(uint64_t r, uint64_t hd)
{
    uint64_t h = r / hd, k = r % hd;
    return h * hd + (k & 1) * (hd / 2) + k / 2;
}

static uint64_t source_row(const chunk_job *j, uint64_t r)
{
    return j->o->permute_heads ? permuted_row(r, j->rows_per_head) : r;
}

static int convert_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    chunk_job *j = ctx;
    float *f = j->scratch + (size_t)worker * j->row_in;
    size_t in_row_bytes = (size_t)j->row_in * qf_dtype_size(j->src_dtype);
    int64_t r;

    for (r = begin; r < end; r++) {
        uint64_t sr = source_row(j, (uint64_t)(j->row0 + r));
        uint8_t *dst = j->dst + (size_t)r * j->row_out_bytes;
        const uint8_t *src = j->src + sr * in_row_bytes;
        int type = j->o->t.type;
        if (j->src_dtype == QF_DTYPE_F32 && type == QF_GGML_F32) {
            memcpy(dst, src, in_row_bytes);
            continue;
        }
        qf_dtype_to_f32(j->src_dtype, src, f, (size_t)j->row_in);
        if (type == QF_GGML_F32 || type == QF_GGML_F16 || type == QF_GGML_BF16)
            qf_f32_to_dtype(qf_dtype_from_ggml_type(type), f, dst, (size_t)j->row_in);
        else if (qf_quant_rows(type, f, dst, 1, (int64_t)j->row_in, NULL) != 0)
            return QF_EINVAL;
    }
    return 0;
}

int qf_convert_rows_f32(const qf_convert *c, int64_t i, uint64_t row0, uint64_t n, float *dst)
{
    const out_tensor *o;
    uint64_t rows, r, hd;
    const qf_st_tensor *st;
    size_t in_row;

    if (i < 0 || i >= c->nt)
        return QF_EINVAL;
    o = &c->t[i];
    rows = o->t.ne[1] * o->t.ne[2] * o->t.ne[3];
    if (row0 > rows || n > rows - row0)
        return QF_EINVAL;
    if (o->src < 0) {
        memcpy(dst, o->generated + row0 * o->t.ne[0], (size_t)(n * o->t.ne[0]) * sizeof(float));
        return 0;
    }
    st = qf_weights_at(c->st, o->src);
    in_row = (size_t)o->t.ne[0] * qf_dtype_size(st->dtype);
    hd = o->permute_heads ? rows / (uint64_t)o->permute_heads : 0;
    for (r = 0; r < n; r++) {
        uint64_t sr = o->permute_heads ? permuted_row(row0 + r, hd) : row0 + r;
        qf_dtype_to_f32(st->dtype, st->data + sr * in_row, dst + r * o->t.ne[0], (size_t)o->t.ne[0]);
    }
    return 0;
}

void qf_convert_release(const qf_convert *c, int64_t i)
{
    if (i >= 0 && i < c->nt && c->t[i].src >= 0)
        qf_weights_release_tensor(c->st, c->t[i].src);
}

void qf_convert_release_rows(const qf_convert *c, int64_t i, uint64_t row0, uint64_t n)
{
    const out_tensor *o;
    uint64_t row_in;

    if (i < 0 || i >= c->nt || c->t[i].src < 0 || c->t[i].permute_heads)
        return;
    o = &c->t[i];
    row_in = o->t.ne[0] * qf_dtype_size(qf_weights_at(c->st, o->src)->dtype);
    qf_weights_release_range(c->st, o->src, row0 * row_in, n * row_in);
}

const qf_gguf_writer *qf_convert_metadata(const qf_convert *c) { return c->w; }

static const char *writer_tensor_name(const void *w, int64_t i)
{
    return qf_gguf_writer_tensor_name(w, i);
}

/* Where converted tensor bytes go: the GGUF writer or the QFM writer. */
typedef int (*emit_fn)(void *ctx, const void *data, uint64_t n, qf_err *err);

static int emit_gguf(void *ctx, const void *data, uint64_t n, qf_err *err)
{
    return qf_gguf_writer_write(ctx, data, n, err);
}

static int emit_qfm(void *ctx, const void *data, uint64_t n, qf_err *err)
{
    return qf_qfm_writer_write(ctx, data, n, err);
}

/* Convert every planned tensor, in order, into emit. */
static int emit_tensors(qf_convert *c, emit_fn emit, void *ectx, qf_progress_fn progress,
                        void *progress_ctx, qf_err *err)
{
    uint8_t *buf = NULL;
    float *scratch = NULL;
    uint64_t total = 0, done_bytes = 0, max_row = 1;
    int64_t i;
    int rc = 0, threads = c->opts.threads;

    for (i = 0; i < c->nt; i++) {
        total += c->t[i].t.nbytes;
        if (c->t[i].t.ne[0] > max_row)
            max_row = c->t[i].t.ne[0];
    }
    buf = malloc(CHUNK_BYTES + (size_t)max_row * 8);
    scratch = malloc((size_t)threads * (size_t)max_row * sizeof(float));
    if (!buf || !scratch) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < c->nt; i++) {
        const out_tensor *o = &c->t[i];
        uint64_t rows = o->t.ne[1] * o->t.ne[2] * o->t.ne[3], row_bytes = o->t.nbytes / rows, r0;
        chunk_job j;
        uint64_t per_chunk;

        if (o->src < 0) { /* generated: small, F32 */
            if ((rc = emit(ectx, o->generated, o->t.nbytes, err)) != 0)
                goto done;
            done_bytes += o->t.nbytes;
            continue;
        }
        memset(&j, 0, sizeof j);
        j.c = c;
        j.o = o;
        {
            const qf_st_tensor *st = qf_weights_at(c->st, o->src);
            j.src = st->data;
            j.src_dtype = st->dtype;
        }
        j.row_in = o->t.ne[0];
        j.row_out_bytes = row_bytes;
        j.rows_per_head = o->permute_heads ? rows / (uint64_t)o->permute_heads : 0;
        j.dst = buf;
        j.scratch = scratch;
        per_chunk = CHUNK_BYTES / row_bytes;
        if (per_chunk < 1)
            per_chunk = 1;
        for (r0 = 0; r0 < rows; r0 += per_chunk) {
            uint64_t n = rows - r0 < per_chunk ? rows - r0 : per_chunk;
            j.row0 = (int64_t)r0;
            rc = qf_parallel_for(threads, (int64_t)n, 16, convert_rows, &j);
            if (rc != 0) {
                rc = qf_err_set(err, rc, "tensor \"%s\": conversion failed", o->name);
                goto done;
            }
            if ((rc = emit(ectx, buf, n * row_bytes, err)) != 0)
                goto done;
            qf_convert_release_rows(c, i, r0, n);
            done_bytes += n * row_bytes;
            if (progress)
                progress(progress_ctx, done_bytes, total);
        }
        qf_weights_release_tensor(c->st, o->src);
    }
done:
    free(buf);
    free(scratch);
    return rc;
}

int qf_convert_write(qf_convert *c, const char *path, int flags, const char *manifest_path,
                     qf_progress_fn progress, void *progress_ctx, qf_err *err)
{
    int rc;

    if (manifest_path && (rc = qf_gguf_writer_hash(c->w, err)) != 0)
        return rc;
    if ((rc = qf_gguf_writer_begin(c->w, path, flags, err)) != 0 ||
        (rc = emit_tensors(c, emit_gguf, c->w, progress, progress_ctx, err)) != 0 ||
        (rc = qf_gguf_writer_finish(c->w, err)) != 0)
        return rc;
    if (manifest_path) {
        qf_digest_list d;
        const char *label = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if ((rc = qf_gguf_writer_digests(c->w, &d)) != 0)
            return rc;
        rc = qf_manifest_write(manifest_path, flags, label, &d, writer_tensor_name, c->w, err);
        if (rc)
            (void)remove(path); /* no model without its requested manifest */
    }
    return rc;
}

int qf_convert_write_qfm(qf_convert *c, const char *path, int flags, const qf_qfm_opts *opts,
                         const char *model_dir, int argc, char **argv, qf_progress_fn progress,
                         void *progress_ctx, qf_err *err)
{
    qf_qfm_writer *w = NULL;
    int rc;

    if ((rc = qf_qfm_writer_new(c->w, opts, &w, err)) == 0 &&
        (rc = qf_qfm_set_basic_provenance(w, &model_dir, model_dir ? 1 : 0, argc, argv, err)) == 0 &&
        (rc = qf_qfm_writer_begin(w, path, flags, err)) == 0 &&
        (rc = emit_tensors(c, emit_qfm, w, progress, progress_ctx, err)) == 0)
        rc = qf_qfm_writer_finish(w, err);
    qf_qfm_writer_free(w);
    return rc;
}
