/*
 * convert/export_hf.c - a qf_source back to a Hugging Face folder (see
 * export_hf.h).
 */
#include "convert/export_hf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert.h"
#include "convert/tensor_names.h"
#include "formats/file.h"
#include "formats/folder.h"
#include "formats/safetensors.h"
#include "formats/types.h"

/* =====================================================================
 * Architectures
 * ===================================================================== */

typedef struct {
    const char *gguf;       /* general.architecture */
    const char *hf;         /* architectures[0] */
    int permute_qk;         /* undo the converter's q/k row permutation */
} arch_entry;

static const arch_entry archs[] = {
    { "llama", "LlamaForCausalLM", 1 },
    { "qwen2", "Qwen2ForCausalLM", 0 },
    { "qwen3", "Qwen3ForCausalLM", 0 },
};

/* GGUF name -> HF name (convert/tensor_names.h). Returns 1 and fills out
 * (and *kind: 'q', 'k' for attn_q/attn_k weights, 0 otherwise), or 0 if the
 * name is not one of ours. */
static int hf_name(const char *g, char *out, size_t cap, int *kind)
{
    const char *module;
    uint64_t layer;
    size_t len = strlen(g);

    *kind = 0;
    if (!qf_tensor_names_to_hf(g, out, cap, &layer, &module))
        return 0;
    if (len > 7 && strcmp(g + len - 7, ".weight") == 0) {
        if (strcmp(module, "attn_q") == 0)
            *kind = 'q';
        else if (strcmp(module, "attn_k") == 0)
            *kind = 'k';
    }
    return 1;
}

/* =====================================================================
 * Small helpers
 * ===================================================================== */

/* The shortest %g form of f that reads back as the same F32. */
static void fmt_f32(float f, char *buf, size_t cap)
{
    int p;
    if (f == floorf(f) && fabsf(f) < 1e15f) { /* 10000.0, as Python writes it */
        snprintf(buf, cap, "%.1f", (double)f);
        return;
    }
    for (p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    /* JSON needs a digit before an exponent-less integer-looking float to stay a
     * float for Python readers: "10000" -> "10000.0" */
    if (!strpbrk(buf, ".eEn") && strlen(buf) + 3 < cap)
        strcat(buf, ".0");
}

static int write_file(const char *dir, const char *name, const void *data, size_t len,
                      qf_err *err)
{
    char *path = qf_path_join(dir, name);
    qf_out *o = NULL;
    int rc;
    if (!path)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    rc = qf_out_open(path, 0, &o, err);
    if (!rc)
        rc = qf_out_write(o, data, len, err);
    if (!rc)
        rc = qf_out_commit(o, err);
    else
        qf_out_close(o);
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *name, cJSON *j, qf_err *err)
{
    char *text = cJSON_Print(j);
    int rc;
    size_t n;
    if (!text)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    n = strlen(text);
    {
        char *t2 = realloc(text, n + 2);
        if (!t2) {
            free(text);
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
        }
        text = t2;
        text[n++] = '\n';
        text[n] = '\0';
    }
    rc = write_file(dir, name, text, n, err);
    free(text);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The process umask, read without changing it (/proc/self/status), or 022. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned m = 022;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &m) == 1)
            break;
    if (f)
        fclose(f);
    return (mode_t)(m & 0777);
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* =====================================================================
 * Metadata access
 * ===================================================================== */

typedef struct {
    const qf_source *s;
    const char *arch;   /* general.architecture */
    const char *path;
    qf_err *err;
} meta;

/* <arch>.<key> as an unsigned int: 1 found, 0 absent, < 0 wrong type. */
static int arch_uint(const meta *m, const char *key, uint64_t *v)
{
    char k[160];
    int rc;
    snprintf(k, sizeof k, "%s.%s", m->arch, key);
    rc = qf_source_get_uint(m->s, k, v, m->err);
    return rc == 0 ? 1 : rc == QF_ENOTFOUND ? 0 : rc;
}

static int arch_float(const meta *m, const char *key, double *v)
{
    char k[160];
    int rc;
    snprintf(k, sizeof k, "%s.%s", m->arch, key);
    rc = qf_source_get_float(m->s, k, v, m->err);
    return rc == 0 ? 1 : rc == QF_ENOTFOUND ? 0 : rc;
}

static int need_uint(const meta *m, const char *key, uint64_t *v)
{
    int rc = arch_uint(m, key, v);
    if (rc == 0)
        return qf_err_set(m->err, QF_EFORMAT, "%s: missing \"%s.%s\"", m->path, m->arch, key);
    if (rc < 0)
        return rc;
    if (*v == 0 || *v > UINT32_MAX)
        return qf_err_set(m->err, QF_EFORMAT, "%s: \"%s.%s\" = %" PRIu64 " is out of range", m->path,
                          m->arch, key, *v);
    return 0;
}

/* An array value by key, with its element type checked; 1 found, 0 absent,
 * < 0 wrong type. */
static int get_array(const meta *m, const char *key, qf_gguf_vtype elt, qf_gguf_val *v)
{
    int64_t i = qf_source_find_key(m->s, key);
    if (i < 0)
        return 0;
    if (qf_source_kv_value(m->s, i, v) != 0 || v->type != QF_GGUF_ARRAY || v->arr_type != elt)
        return qf_err_set(m->err, QF_EFORMAT, "%s: \"%s\" is not an array of %s", m->path, key,
                          qf_gguf_vtype_name(elt));
    return 1;
}

/* =====================================================================
 * llama3 rope scaling: fit the generated rope_freqs factors back
 * ===================================================================== */

typedef struct {
    double factor, low, high, orig;
} rope3;

static void rope3_factors(const rope3 *p, float base, uint64_t dim, float *f)
{
    qf_convert_llama3_rope_factors(base, dim, p->factor, p->low, p->high, p->orig, f);
}

static int rope3_matches(const rope3 *p, float base, uint64_t dim, const float *want, float *tmp)
{
    rope3_factors(p, base, dim, tmp);
    return memcmp(tmp, want, (size_t)(dim / 2) * sizeof *tmp) == 0;
}

static double round_digits(double v, int d)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.*g", d, v);
    return strtod(buf, NULL);
}

/* Parameters regenerating `f` (n = dim/2 factors) bit for bit, with
 * low_freq_factor 1 (the curve depends only on orig/low and orig/high).
 * Returns 0 or QF_EUNSUPPORTED. */
static int rope3_fit(const float *f, uint64_t dim, float base, rope3 *out, float *tmp)
{
    uint64_t n = dim / 2, i;
    double u[2] = { 0, 0 }, s[2] = { 0, 0 };
    int k = 0, d1, d2;
    rope3 p = { 1.0, 1.0, 4.0, 8192.0 };
    float factor = f[0];

    for (i = 0; i < n; i++)
        factor = f[i] > factor ? f[i] : factor;
    p.factor = (double)factor;
    if (factor > 1.0f) {
        for (i = 0; i < n; i++) {
            float freq, wl;
            if (f[i] == 1.0f || f[i] == factor)
                continue;
            freq = 1.0f / powf(base, (float)(2 * i) / (float)dim);
            wl = (float)(2.0 * M_PI) / freq;
            u[k & 1] = 1.0 / (double)wl;
            s[k & 1] = (1.0 / (double)f[i] - 1.0 / (double)factor) / (1.0 - 1.0 / (double)factor);
            k++;
            if (k == 2)
                break;
        }
    }
    if (k == 2 && u[1] != u[0]) {
        double a = (s[1] - s[0]) / (u[1] - u[0]), b = a * u[0] - s[0];
        if (b > 0) {
            double high = 1.0 + 1.0 / b, orig = a / b;
            for (d1 = 1; d1 <= 12; d1++)
                for (d2 = 1; d2 <= 12; d2++) {
                    p.orig = round_digits(orig, d1);
                    p.high = round_digits(high, d2);
                    if (p.high > 1.0 && rope3_matches(&p, base, dim, f, tmp)) {
                        *out = p;
                        return 0;
                    }
                }
        }
    }
    /* no curve to fit (or none that matches): llama 3's own parameters */
    p.orig = 8192.0, p.high = 4.0;
    if (rope3_matches(&p, base, dim, f, tmp)) {
        *out = p;
        return 0;
    }
    return QF_EUNSUPPORTED;
}

/* =====================================================================
 * Plan
 * ===================================================================== */

typedef struct {
    int64_t src;          /* source tensor index */
    char name[160];       /* HF name */
    uint32_t n_dims;
    uint64_t shape[4];    /* HF order (row-major) */
    uint64_t cols, rows;  /* GGUF ne[0], rows */
    uint64_t heads;       /* > 0: undo the q/k permutation with this many heads */
    uint64_t nbytes;      /* in the output dtype */
    int shard;            /* 0-based file index */
} out_tensor;

typedef struct {
    const qf_source *s;
    const arch_entry *arch;
    meta m;
    out_tensor *t;
    int64_t nt;
    int n_shards;
    int tied;
    int64_t rope_freqs;   /* source index of rope_freqs.weight, or -1 */
    uint64_t n_vocab;
    qf_dtype dtype;
    uint64_t shard_bytes;
} plan;

static int make_plan(plan *p, qf_err *err)
{
    const qf_source *s = p->s;
    int64_t i, n = qf_source_tensor_count(s);
    uint64_t n_head = 0, n_head_kv = 0, shard_used = 0;
    int has_output = 0, rc;
    size_t k;
    const char *arch;
    uint64_t alen;

    if ((rc = qf_source_get_str(s, "general.architecture", &arch, &alen, err)) != 0)
        return rc == QF_ENOTFOUND ? qf_err_set(err, QF_EFORMAT, "%s: no general.architecture",
                                               qf_source_path(s))
                                  : rc;
    for (k = 0; k < sizeof archs / sizeof archs[0]; k++)
        if (strlen(archs[k].gguf) == alen && memcmp(archs[k].gguf, arch, alen) == 0)
            p->arch = &archs[k];
    if (!p->arch)
        return qf_err_set(err, QF_EUNSUPPORTED,
                          "%s: architecture \"%.*s\" cannot be exported (supported: llama, qwen2, qwen3)",
                          qf_source_path(s), (int)(alen > 64 ? 64 : alen), arch);
    p->m.s = s;
    p->m.arch = p->arch->gguf;
    p->m.path = qf_source_path(s);
    p->m.err = err;
    if ((rc = need_uint(&p->m, "attention.head_count", &n_head)) != 0)
        return rc;
    if ((rc = arch_uint(&p->m, "attention.head_count_kv", &n_head_kv)) < 0)
        return rc;
    if (rc == 0)
        n_head_kv = n_head;
    if (n_head_kv == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: %s.attention.head_count_kv is 0", p->m.path, p->m.arch);

    p->t = calloc((size_t)(n ? n : 1), sizeof *p->t);
    if (!p->t)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    p->rope_freqs = -1;
    for (i = 0; i < n; i++) {
        const qf_source_tensor *st = qf_source_tensor_at(s, i);
        out_tensor *o = &p->t[p->nt];
        int kind;
        uint32_t d;
        if (strcmp(st->name, "rope_freqs.weight") == 0) {
            p->rope_freqs = i;
            continue;
        }
        if (!hf_name(st->name, o->name, sizeof o->name, &kind))
            return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\" has no Hugging Face name for %s",
                              p->m.path, st->name, p->arch->hf);
        if (strcmp(st->name, "output.weight") == 0)
            has_output = 1;
        if (strcmp(st->name, "token_embd.weight") == 0)
            p->n_vocab = st->ne[1];
        o->src = i;
        o->n_dims = st->n_dims;
        for (d = 0; d < st->n_dims; d++)
            o->shape[d] = st->ne[st->n_dims - 1 - d];
        o->cols = st->ne[0];
        o->rows = st->n_rows;
        if (p->arch->permute_qk && kind && st->n_dims == 2) {
            uint64_t heads = kind == 'q' ? n_head : n_head_kv;
            if (o->rows % (2 * heads) != 0)
                return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": %" PRIu64 " rows do not split into %" PRIu64
                                  " heads", p->m.path, st->name, o->rows, heads);
            o->heads = heads;
        }
        o->nbytes = o->rows * o->cols * qf_dtype_size(p->dtype);
        if (shard_used && shard_used + o->nbytes > p->shard_bytes) {
            p->n_shards++;
            shard_used = 0;
        }
        o->shard = p->n_shards;
        shard_used += o->nbytes;
        p->nt++;
    }
    p->n_shards++;
    if (p->n_vocab == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: no token_embd.weight", p->m.path);
    p->tied = !has_output;
    return 0;
}

/* =====================================================================
 * Tensors
 * ===================================================================== */

#define CHUNK_BYTES (4u << 20)

/* Rows of HF tensor o: dequantized, un-permuted, converted, streamed out. */
static int write_tensor(const plan *p, const out_tensor *o, qf_st_writer *w, float *f,
                        uint8_t *buf, uint64_t chunk_rows, qf_err *err)
{
    uint64_t r0, esz = qf_dtype_size(p->dtype);
    int rc;

    if (o->heads) { /* one head at a time */
        uint64_t hd = o->rows / o->heads, h, j;
        float *g = f + hd * o->cols; /* the head as the GGUF holds it */
        for (h = 0; h < o->heads; h++) {
            if ((rc = qf_source_rows_f32(p->s, o->src, h * hd, hd, g, err)) != 0)
                return rc;
            for (j = 0; j < hd; j++) {
                uint64_t from = j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1;
                memcpy(f + j * o->cols, g + from * o->cols, (size_t)o->cols * sizeof *f);
            }
            if ((rc = qf_f32_to_dtype(p->dtype, f, buf, (size_t)(hd * o->cols))) != 0 ||
                (rc = qf_st_writer_write(w, buf, hd * o->cols * esz, err)) != 0)
                return rc;
        }
        qf_source_release(p->s, o->src);
        return 0;
    }
    for (r0 = 0; r0 < o->rows; r0 += chunk_rows) {
        uint64_t n = o->rows - r0 < chunk_rows ? o->rows - r0 : chunk_rows;
        if ((rc = qf_source_rows_f32(p->s, o->src, r0, n, f, err)) != 0)
            return rc;
        if ((rc = qf_f32_to_dtype(p->dtype, f, buf, (size_t)(n * o->cols))) != 0 ||
            (rc = qf_st_writer_write(w, buf, n * o->cols * esz, err)) != 0)
            return rc;
        qf_source_release_rows(p->s, o->src, r0, n);
    }
    qf_source_release(p->s, o->src);
    return 0;
}

static void shard_name(const plan *p, int k, char *buf, size_t cap)
{
    if (p->n_shards == 1)
        snprintf(buf, cap, "model.safetensors");
    else
        snprintf(buf, cap, "model-%05d-of-%05d.safetensors", k + 1, p->n_shards);
}

static int write_weights(const plan *p, const char *dir, qf_err *err)
{
    uint64_t max_cols = 1, max_rows = 1;
    float *f = NULL;
    uint8_t *buf = NULL;
    qf_st_writer *w = NULL;
    cJSON *index = NULL, *map = NULL;
    int64_t i;
    int k, rc = 0;

    for (i = 0; i < p->nt; i++) {
        max_cols = p->t[i].cols > max_cols ? p->t[i].cols : max_cols;
        if (p->t[i].heads && p->t[i].rows / p->t[i].heads > max_rows)
            max_rows = p->t[i].rows / p->t[i].heads;
    }
    {
        uint64_t chunk_rows = CHUNK_BYTES / (max_cols * 4), alloc_rows;
        if (chunk_rows < 1)
            chunk_rows = 1;
        alloc_rows = chunk_rows > 2 * max_rows ? chunk_rows : 2 * max_rows; /* a head and its copy */
        f = malloc((size_t)(alloc_rows * max_cols) * sizeof *f);
        buf = malloc((size_t)(alloc_rows * max_cols) * 4);
        if (!f || !buf) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        if (p->n_shards > 1) {
            index = cJSON_CreateObject();
            map = cJSON_CreateObject();
            if (!index || !map) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
        }
        for (k = 0; k < p->n_shards; k++) {
            char name[64];
            char *path;
            shard_name(p, k, name, sizeof name);
            if ((rc = qf_st_writer_new(&w, err)) != 0 ||
                (rc = qf_st_writer_set_meta(w, "format", "pt", err)) != 0)
                goto done;
            for (i = 0; i < p->nt; i++) {
                if (p->t[i].shard != k)
                    continue;
                if ((rc = qf_st_writer_add_tensor(w, p->t[i].name, p->dtype, p->t[i].n_dims,
                                                  p->t[i].shape, err)) != 0)
                    goto done;
                if (map && !cJSON_AddStringToObject(map, p->t[i].name, name)) {
                    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                    goto done;
                }
            }
            if (!(path = qf_path_join(dir, name))) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
            rc = qf_st_writer_begin(w, path, 0, err);
            free(path);
            if (rc)
                goto done;
            for (i = 0; i < p->nt; i++)
                if (p->t[i].shard == k &&
                    (rc = write_tensor(p, &p->t[i], w, f, buf, chunk_rows, err)) != 0)
                    goto done;
            if ((rc = qf_st_writer_finish(w, err)) != 0)
                goto done;
            qf_st_writer_free(w);
            w = NULL;
        }
    }
    if (index) {
        uint64_t total = 0;
        cJSON *md = cJSON_AddObjectToObject(index, "metadata");
        for (i = 0; i < p->nt; i++)
            total += p->t[i].nbytes;
        if (!md || !cJSON_AddNumberToObject(md, "total_size", (double)total)) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToObject(index, "weight_map", map);
        map = NULL;
        rc = write_json(dir, "model.safetensors.index.json", index, err);
    }
done:
    qf_st_writer_free(w);
    cJSON_Delete(index);
    cJSON_Delete(map);
    free(f);
    free(buf);
    return rc;
}

/* =====================================================================
 * config.json, generation_config.json
 * ===================================================================== */

static const char *const SP_NAME[] = { "bos", "eos", "unk", "sep", "pad", "cls", "mask" };
#define N_SP 7

static int add_raw_float(cJSON *o, const char *key, double v)
{
    char buf[48];
    fmt_f32((float)v, buf, sizeof buf);
    return cJSON_AddRawToObject(o, key, buf) ? 0 : QF_ENOMEM;
}

static const char *torch_dtype(qf_dtype d)
{
    return d == QF_DTYPE_F16 ? "float16" : d == QF_DTYPE_BF16 ? "bfloat16" : "float32";
}

static int write_configs(const plan *p, const char *dir, qf_err *err)
{
    const meta *m = &p->m;
    cJSON *c = cJSON_CreateObject(), *g = cJSON_CreateObject(), *a;
    uint64_t v;
    double d;
    int rc = 0, k, have;
    float *tmp = NULL, *freqs = NULL;

    if (!c || !g)
        goto nomem;
    a = cJSON_AddArrayToObject(c, "architectures");
    if (!a)
        goto nomem;
    cJSON_AddItemToArray(a, cJSON_CreateString(p->arch->hf));
    cJSON_AddStringToObject(c, "model_type", p->arch->gguf);
#define UINT_KEY(gkey, hkey, required)                                         \
    do {                                                                       \
        if ((required) ? (rc = need_uint(m, gkey, &v)) != 0                    \
                       : (rc = arch_uint(m, gkey, &v)) < 0)                    \
            goto done;                                                         \
        if ((required) || rc == 1)                                             \
            if (!cJSON_AddNumberToObject(c, hkey, (double)v))                  \
                goto nomem;                                                    \
        rc = 0;                                                                \
    } while (0)
    UINT_KEY("embedding_length", "hidden_size", 1);
    UINT_KEY("feed_forward_length", "intermediate_size", 0);
    UINT_KEY("block_count", "num_hidden_layers", 1);
    UINT_KEY("attention.head_count", "num_attention_heads", 1);
    UINT_KEY("attention.head_count_kv", "num_key_value_heads", 0);
    UINT_KEY("attention.key_length", "head_dim", 0);
    UINT_KEY("context_length", "max_position_embeddings", 0);
#undef UINT_KEY
    if (!cJSON_AddNumberToObject(c, "vocab_size", (double)p->n_vocab) ||
        !cJSON_AddStringToObject(c, "hidden_act", "silu"))
        goto nomem;
    if ((rc = arch_float(m, "attention.layer_norm_rms_epsilon", &d)) < 0)
        goto done;
    if (rc == 1 && add_raw_float(c, "rms_norm_eps", d))
        goto nomem;
    if ((rc = arch_float(m, "rope.freq_base", &d)) < 0)
        goto done;
    if (rc == 1 && add_raw_float(c, "rope_theta", d))
        goto nomem;
    have = rc == 1;
    rc = 0;

    /* rope scaling */
    {
        char key[160];
        const char *type = NULL;
        uint64_t tlen = 0;
        snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch);
        if ((rc = qf_source_get_str(p->s, key, &type, &tlen, err)) < 0 && rc != QF_ENOTFOUND)
            goto done;
        rc = 0;
        if (type && ((tlen == 6 && memcmp(type, "linear", 6) == 0) ||
                     (tlen == 4 && memcmp(type, "yarn", 4) == 0))) {
            cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
            if (!rs || !cJSON_AddStringToObject(rs, "type", tlen == 4 ? "yarn" : "linear"))
                goto nomem;
            if ((rc = arch_float(m, "rope.scaling.factor", &d)) < 0)
                goto done;
            if (rc == 0) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: %s.rope.scaling.factor missing", m->path, m->arch);
                goto done;
            }
            if (add_raw_float(rs, "factor", d))
                goto nomem;
            if (tlen == 4) {
                if ((rc = arch_uint(m, "rope.scaling.original_context_length", &v)) < 0)
                    goto done;
                if (rc == 1 && !cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)v))
                    goto nomem;
            }
            rc = 0;
        } else if (type && !(tlen == 4 && memcmp(type, "none", 4) == 0)) {
            rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: rope scaling \"%.*s\" cannot be exported", m->path,
                            (int)(tlen > 32 ? 32 : tlen), type);
            goto done;
        }
        if (p->rope_freqs >= 0) {
            const qf_source_tensor *t = qf_source_tensor_at(p->s, p->rope_freqs);
            uint64_t dim = 2 * t->ne[0];
            rope3 r;
            char b[48];
            cJSON *rs;
            if (t->n_rows != 1 || t->ne[0] == 0) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: rope_freqs.weight is not a vector", m->path);
                goto done;
            }
            freqs = malloc((size_t)t->ne[0] * sizeof *freqs);
            tmp = malloc((size_t)t->ne[0] * sizeof *tmp);
            if (!freqs || !tmp)
                goto nomem;
            if ((rc = qf_source_rows_f32(p->s, p->rope_freqs, 0, 1, freqs, err)) != 0)
                goto done;
            if (!have)
                d = 10000.0;
            else if ((rc = arch_float(m, "rope.freq_base", &d)) < 0)
                goto done;
            rc = rope3_fit(freqs, dim, (float)d, &r, tmp);
            if (rc) {
                rc = qf_err_set(err, QF_EUNSUPPORTED,
                                "%s: rope_freqs.weight: no llama3 rope_scaling regenerates these factors",
                                m->path);
                goto done;
            }
            if (cJSON_GetObjectItemCaseSensitive(c, "rope_scaling")) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: both rope_freqs.weight and %s.rope.scaling.type",
                                m->path, m->arch);
                goto done;
            }
            rs = cJSON_AddObjectToObject(c, "rope_scaling");
            if (!rs || !cJSON_AddStringToObject(rs, "rope_type", "llama3"))
                goto nomem;
            fmt_f32((float)r.factor, b, sizeof b);
            if (!cJSON_AddRawToObject(rs, "factor", b))
                goto nomem;
            snprintf(b, sizeof b, "%.17g", r.low);
            if (strcmp(b, "1") == 0)
                strcpy(b, "1.0");
            if (!cJSON_AddRawToObject(rs, "low_freq_factor", b))
                goto nomem;
            snprintf(b, sizeof b, "%.12g", r.high);
            if (!strpbrk(b, ".e"))
                strcat(b, ".0");
            if (!cJSON_AddRawToObject(rs, "high_freq_factor", b) ||
                !cJSON_AddNumberToObject(rs, "original_max_position_embeddings", r.orig))
                goto nomem;
        }
    }

    /* special ids: config.json and generation_config.json */
    for (k = 0; k < N_SP; k++) {
        char key[64], hk[32];
        uint64_t id;
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", SP_NAME[k]);
        if ((rc = qf_source_get_uint(p->s, key, &id, err)) == QF_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            goto done;
        snprintf(hk, sizeof hk, "%s_token_id", SP_NAME[k]);
        if (!cJSON_AddNumberToObject(c, hk, (double)id))
            goto nomem;
        if (k <= 1 && !cJSON_AddNumberToObject(g, hk, (double)id))
            goto nomem;
    }
    if (!cJSON_AddStringToObject(c, "torch_dtype", torch_dtype(p->dtype)) ||
        !cJSON_AddBoolToObject(c, "tie_word_embeddings", p->tied) ||
        !cJSON_AddBoolToObject(g, "_from_model_config", 1))
        goto nomem;
    if ((rc = write_json(dir, "config.json", c, err)) != 0 ||
        (rc = write_json(dir, "generation_config.json", g, err)) != 0)
        goto done;
    goto done;
nomem:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    free(tmp);
    free(freqs);
    cJSON_Delete(c);
    cJSON_Delete(g);
    return rc;
}

/* =====================================================================
 * Tokenizer: SentencePiece ModelProto
 * ===================================================================== */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} pbuf;

static void pb_bytes(pbuf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *q;
        while (cap < b->n + n)
            cap *= 2;
        q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_bytes(b, t, n);
}

static void pb_tag(pbuf *b, unsigned field, unsigned wire) { pb_varint(b, (uint64_t)field << 3 | wire); }

static void pb_str(pbuf *b, unsigned field, const void *s, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_bytes(b, s, n);
}

static void pb_int(pbuf *b, unsigned field, int64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v); /* negative int32: 10 bytes, as protobuf does */
}

/* tokenizer.model, tokenizer_config.json and special_tokens_map.json from
 * the "llama" vocabulary. */
static int write_spm(const plan *p, const char *dir, qf_err *err)
{
    const meta *m = &p->m;
    qf_gguf_val tv, sv, yv;
    qf_gguf_iter ti, si, yi;
    pbuf mp = { 0 }, piece = { 0 }, spec = { 0 };
    cJSON *tc = NULL, *sm = NULL, *dec = NULL;
    uint64_t n, i, ids[N_SP];
    int has[N_SP], k, rc, byte_fb = 0;
    const char **texts = NULL;
    uint64_t *lens = NULL;

    if ((rc = get_array(m, "tokenizer.ggml.tokens", QF_GGUF_STRING, &tv)) <= 0)
        return rc ? rc : qf_err_set(err, QF_EFORMAT, "%s: no tokenizer.ggml.tokens", m->path);
    if ((rc = get_array(m, "tokenizer.ggml.scores", QF_GGUF_FLOAT32, &sv)) <= 0)
        return rc ? rc : qf_err_set(err, QF_EFORMAT, "%s: no tokenizer.ggml.scores", m->path);
    if ((rc = get_array(m, "tokenizer.ggml.token_type", QF_GGUF_INT32, &yv)) <= 0)
        return rc ? rc : qf_err_set(err, QF_EFORMAT, "%s: no tokenizer.ggml.token_type", m->path);
    n = tv.arr_n;
    if (sv.arr_n != n || yv.arr_n != n)
        return qf_err_set(err, QF_EFORMAT, "%s: %" PRIu64 " tokens, %" PRIu64 " scores, %" PRIu64 " types",
                          m->path, n, sv.arr_n, yv.arr_n);
    texts = calloc((size_t)(n ? n : 1), sizeof *texts);
    lens = calloc((size_t)(n ? n : 1), sizeof *lens);
    tc = cJSON_CreateObject();
    sm = cJSON_CreateObject();
    dec = cJSON_CreateObject();
    if (!texts || !lens || !tc || !sm || !dec)
        goto nomem;
    for (k = 0; k < N_SP; k++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", SP_NAME[k]);
        rc = qf_source_get_uint(p->s, key, &ids[k], err);
        if (rc && rc != QF_ENOTFOUND)
            goto done;
        has[k] = rc == 0 && ids[k] < n;
    }
    rc = 0;
    qf_gguf_iter_init(&ti, &tv);
    qf_gguf_iter_init(&si, &sv);
    qf_gguf_iter_init(&yi, &yv);
    for (i = 0; i < n; i++) {
        qf_gguf_val t, s, y;
        float score;
        uint8_t f4[4];
        uint32_t bits;
        if (qf_gguf_iter_next(&ti, &t) != 1 || qf_gguf_iter_next(&si, &s) != 1 ||
            qf_gguf_iter_next(&yi, &y) != 1) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tokenizer arrays end early", m->path);
            goto done;
        }
        if (y.i < 1 || y.i > 6) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: token %" PRIu64 ": type %" PRId64 " has no SentencePiece "
                            "counterpart", m->path, i, y.i);
            goto done;
        }
        texts[i] = t.str;
        lens[i] = t.str_len;
        byte_fb |= y.i == 6;
        score = (float)s.f;
        memcpy(&bits, &score, 4);
        qf_put32(f4, bits);
        piece.n = 0;
        pb_str(&piece, 1, t.str, (size_t)t.str_len);
        pb_tag(&piece, 2, 5);
        pb_bytes(&piece, f4, 4);
        if (y.i != 1)
            pb_int(&piece, 3, y.i);
        if (piece.oom)
            goto nomem;
        pb_str(&mp, 1, piece.p, piece.n);
        if (y.i == 4) { /* an added token: tokenizer_config.json gives it back its type */
            char id[32];
            cJSON *e = cJSON_CreateObject();
            char *txt = malloc((size_t)t.str_len + 1);
            if (!e || !txt) {
                cJSON_Delete(e);
                free(txt);
                goto nomem;
            }
            memcpy(txt, t.str, (size_t)t.str_len);
            txt[t.str_len] = '\0';
            snprintf(id, sizeof id, "%" PRIu64, i);
            cJSON_AddStringToObject(e, "content", txt);
            cJSON_AddBoolToObject(e, "special", 0);
            cJSON_AddItemToObject(dec, id, e);
            free(txt);
        }
    }
    /* trainer_spec: BPE, vocab size, byte fallback, special ids */
    pb_int(&spec, 3, 2);
    pb_int(&spec, 4, (int64_t)n);
    if (byte_fb)
        pb_int(&spec, 35, 1);
    pb_int(&spec, 40, has[2] ? (int64_t)ids[2] : 0);
    pb_int(&spec, 41, has[0] ? (int64_t)ids[0] : -1);
    pb_int(&spec, 42, has[1] ? (int64_t)ids[1] : -1);
    pb_int(&spec, 43, has[4] ? (int64_t)ids[4] : -1);
    if (spec.oom)
        goto nomem;
    pb_str(&mp, 2, spec.p, spec.n);
    /* normalizer_spec: identity, dummy prefix, whitespace kept */
    spec.n = 0;
    pb_str(&spec, 1, "identity", 8);
    pb_int(&spec, 3, 1);
    pb_int(&spec, 4, 0);
    pb_int(&spec, 5, 1);
    if (spec.oom)
        goto nomem;
    pb_str(&mp, 3, spec.p, spec.n);
    if (mp.oom)
        goto nomem;
    if ((rc = write_file(dir, "tokenizer.model", mp.p, mp.n, err)) != 0)
        goto done;

    /* tokenizer_config.json, special_tokens_map.json */
    for (k = 0; k < 2; k++) {
        char key[64];
        int64_t idx;
        qf_gguf_val bv;
        snprintf(key, sizeof key, "tokenizer.ggml.add_%s_token", SP_NAME[k]);
        idx = qf_source_find_key(p->s, key);
        if (idx >= 0 && qf_source_kv_value(p->s, idx, &bv) == 0 && bv.type == QF_GGUF_BOOL) {
            snprintf(key, sizeof key, "add_%s_token", SP_NAME[k]);
            if (!cJSON_AddBoolToObject(tc, key, bv.u != 0))
                goto nomem;
        }
    }
    for (k = 0; k < N_SP; k++) {
        char key[32], *txt;
        if (!has[k] || k >= 4)
            continue; /* bos, eos, unk, sep */
        txt = malloc((size_t)lens[ids[k]] + 1);
        if (!txt)
            goto nomem;
        memcpy(txt, texts[ids[k]], (size_t)lens[ids[k]]);
        txt[lens[ids[k]]] = '\0';
        snprintf(key, sizeof key, "%s_token", SP_NAME[k]);
        if (!cJSON_AddStringToObject(tc, key, txt) || !cJSON_AddStringToObject(sm, key, txt)) {
            free(txt);
            goto nomem;
        }
        free(txt);
    }
    {
        const char *ct;
        uint64_t ctl;
        if (qf_source_get_str(p->s, "tokenizer.chat_template", &ct, &ctl, NULL) == 0) {
            char *t = malloc((size_t)ctl + 1);
            if (!t)
                goto nomem;
            memcpy(t, ct, (size_t)ctl);
            t[ctl] = '\0';
            if (!cJSON_AddStringToObject(tc, "chat_template", t)) {
                free(t);
                goto nomem;
            }
            free(t);
        }
    }
    if (dec->child) {
        cJSON_AddItemToObject(tc, "added_tokens_decoder", dec);
        dec = NULL;
    }
    if (!cJSON_AddBoolToObject(tc, "legacy", 1) ||
        !cJSON_AddStringToObject(tc, "tokenizer_class", "LlamaTokenizer"))
        goto nomem;
    if ((rc = write_json(dir, "tokenizer_config.json", tc, err)) != 0 ||
        (rc = write_json(dir, "special_tokens_map.json", sm, err)) != 0)
        goto done;
    goto done;
nomem:
    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
done:
    free(mp.p);
    free(piece.p);
    free(spec.p);
    free(texts);
    free(lens);
    cJSON_Delete(tc);
    cJSON_Delete(sm);
    cJSON_Delete(dec);
    return rc;
}

/* =====================================================================
 * The folder
 * ===================================================================== */

int qf_export_hf(const qf_source *src, const char *out_dir, int dtype, int flags, qf_err *err)
{
    qf_export_hf_opts o = { dtype, flags, 0, 0 };
    return qf_export_hf_ex(src, out_dir, &o, err);
}

int qf_export_hf_ex(const qf_source *src, const char *out_dir, qf_export_hf_opts *opts,
                    qf_err *err)
{
    plan p;
    char *tmp = NULL, *old = NULL, *parent = NULL, *base;
    const char *model;
    uint64_t mlen;
    struct stat sb;
    size_t len;
    int rc = 0, exists;

    memset(&p, 0, sizeof p);
    if (!src || !out_dir || !opts || !*out_dir)
        return qf_err_set(err, QF_EINVAL, "qf_export_hf: NULL argument");
    if (opts->dtype != QF_DTYPE_F32 && opts->dtype != QF_DTYPE_F16 && opts->dtype != QF_DTYPE_BF16)
        return qf_err_set(err, QF_EINVAL, "qf_export_hf: dtype must be F32, F16 or BF16");
    opts->report = 0;
    p.s = src;
    p.dtype = (qf_dtype)opts->dtype;
    p.shard_bytes = opts->shard_bytes ? opts->shard_bytes : QF_EXPORT_DEFAULT_SHARD_BYTES;
    exists = lstat(out_dir, &sb) == 0;
    if (exists && !(opts->flags & QF_EXPORT_FORCE))
        return qf_err_set(err, QF_EEXIST, "%s: exists (use --force to overwrite)", out_dir);
    if (exists && !S_ISDIR(sb.st_mode))
        return qf_err_set(err, QF_EEXIST, "%s: exists and is not a folder", out_dir);
    if ((rc = make_plan(&p, err)) != 0)
        goto done;

    /* temp folder next to out_dir: "<parent>/.<base>.XXXXXX" */
    len = strlen(out_dir);
    parent = malloc(len + 3);
    tmp = malloc(len + 32);
    old = malloc(len + 32);
    if (!parent || !tmp || !old) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    strcpy(parent, out_dir);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    base = strrchr(parent, '/');
    if (base == parent) { /* "/name" */
        memmove(parent + 2, parent + 1, len);
        parent[1] = '\0';
        base = parent + 2;
    } else if (base) {
        *base++ = '\0';
    } else { /* "name": parent "." */
        memmove(parent + 2, parent, len + 1);
        parent[0] = '.', parent[1] = '\0';
        base = parent + 2;
    }
    snprintf(tmp, len + 32, "%s/.%s.XXXXXX", parent, base);
    if (!mkdtemp(tmp)) {
        rc = qf_err_set(err, QF_EIO, "%s: cannot create a temporary folder: %s", out_dir, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    (void)chmod(tmp, 0777 & ~current_umask()); /* mkdtemp made it 0700 */
    if ((rc = write_weights(&p, tmp, err)) != 0 || (rc = write_configs(&p, tmp, err)) != 0)
        goto done;
    if (qf_source_get_str(src, "tokenizer.ggml.model", &model, &mlen, NULL) == 0 && mlen == 5 &&
        memcmp(model, "llama", 5) == 0) {
        if ((rc = write_spm(&p, tmp, err)) != 0)
            goto done;
    } else {
        opts->report |= QF_EXPORT_REPORT_NO_TOKENIZER;
    }
    fsync_dir(tmp);

    /* into place */
    if (exists) {
        snprintf(old, len + 32, "%s/.%s.old.XXXXXX", parent, base);
        if (!mkdtemp(old)) {
            rc = qf_err_set(err, QF_EIO, "%s: cannot create a temporary folder: %s", out_dir, strerror(errno));
            goto done;
        }
        if (rename(out_dir, old) != 0) { /* replaces the empty placeholder */
            rc = qf_err_set(err, QF_EIO, "%s: %s", out_dir, strerror(errno));
            rmdir(old);
            goto done;
        }
    }
    if (lstat(out_dir, &sb) == 0) {
        rc = qf_err_set(err, QF_EEXIST, "%s: exists (use --force to overwrite)", out_dir);
        goto restore;
    }
    if (rename(tmp, out_dir) != 0) {
        rc = qf_err_set(err, QF_EIO, "%s: %s", out_dir, strerror(errno));
        goto restore;
    }
    free(tmp);
    tmp = NULL;
    fsync_dir(parent);
    if (exists)
        rm_tree(old);
    goto done;
restore:
    if (exists)
        (void)rename(old, out_dir);
done:
    if (tmp)
        rm_tree(tmp);
    free(tmp);
    free(old);
    free(parent);
    free(p.t);
    return rc;
}
