/*
 * quantize/mix.c - llama.cpp's per-tensor type choice, as tables.
 *
 * llama-quantize b4747 decides a tensor's type with one long if/else chain
 * (llama_tensor_get_type). Read by tensor kind, it is a small table: for a
 * kind of tensor, a set of mixes, an architecture and model condition and a
 * layer predicate, the type to use. The first row that matches wins, which
 * is what the chain's else-ifs do (within one kind the rows of different
 * mixes never compete, and rows of one mix are listed in the chain's order).
 * Two adjustments apply after the choice (the 70B and 8-expert bumps of
 * attn_v). Only the mixes qforge can write are listed; the IQ1/IQ2/IQ3/TQ
 * branches of the chain are left out.
 */
#include "quantize/mix.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/types.h"
#include "quantize/quant.h"

/* ---------------------------------------------------------------------
 * Mix names
 * ------------------------------------------------------------------- */

typedef struct mix_info {
    const char *name;
    int ftype;
    int type;          /* default ggml type */
    const char *desc;
} mix_info;

/* In llama-quantize's --help order; aliases after their target's name is
 * known. The descriptions are llama-quantize's (sizes for Llama-3-8B). */
static const mix_info MIXES[] = {
    { "Q4_0", QF_FTYPE_Q4_0, QF_GGML_Q4_0, " 4.34G, +0.4685 ppl @ Llama-3-8B" },
    { "Q4_1", QF_FTYPE_Q4_1, QF_GGML_Q4_1, " 4.78G, +0.4511 ppl @ Llama-3-8B" },
    { "Q5_0", QF_FTYPE_Q5_0, QF_GGML_Q5_0, " 5.21G, +0.1316 ppl @ Llama-3-8B" },
    { "Q5_1", QF_FTYPE_Q5_1, QF_GGML_Q5_1, " 5.65G, +0.1062 ppl @ Llama-3-8B" },
    { "Q2_K", QF_FTYPE_Q2_K, QF_GGML_Q2_K, " 2.96G, +3.5199 ppl @ Llama-3-8B" },
    { "Q3_K", QF_FTYPE_Q3_K_M, QF_GGML_Q3_K, "alias for Q3_K_M" },
    { "Q3_K_S", QF_FTYPE_Q3_K_S, QF_GGML_Q3_K, " 3.41G, +1.6321 ppl @ Llama-3-8B" },
    { "Q3_K_M", QF_FTYPE_Q3_K_M, QF_GGML_Q3_K, " 3.74G, +0.6569 ppl @ Llama-3-8B" },
    { "Q3_K_L", QF_FTYPE_Q3_K_L, QF_GGML_Q3_K, " 4.03G, +0.5562 ppl @ Llama-3-8B" },
    { "IQ4_NL", QF_FTYPE_IQ4_NL, QF_GGML_IQ4_NL, " 4.50 bpw non-linear quantization" },
    { "IQ4_XS", QF_FTYPE_IQ4_XS, QF_GGML_IQ4_XS, " 4.25 bpw non-linear quantization" },
    { "Q4_K", QF_FTYPE_Q4_K_M, QF_GGML_Q4_K, "alias for Q4_K_M" },
    { "Q4_K_S", QF_FTYPE_Q4_K_S, QF_GGML_Q4_K, " 4.37G, +0.2689 ppl @ Llama-3-8B" },
    { "Q4_K_M", QF_FTYPE_Q4_K_M, QF_GGML_Q4_K, " 4.58G, +0.1754 ppl @ Llama-3-8B" },
    { "Q5_K", QF_FTYPE_Q5_K_M, QF_GGML_Q5_K, "alias for Q5_K_M" },
    { "Q5_K_S", QF_FTYPE_Q5_K_S, QF_GGML_Q5_K, " 5.21G, +0.1049 ppl @ Llama-3-8B" },
    { "Q5_K_M", QF_FTYPE_Q5_K_M, QF_GGML_Q5_K, " 5.33G, +0.0569 ppl @ Llama-3-8B" },
    { "Q6_K", QF_FTYPE_Q6_K, QF_GGML_Q6_K, " 6.14G, +0.0217 ppl @ Llama-3-8B" },
    { "Q8_0", QF_FTYPE_Q8_0, QF_GGML_Q8_0, " 7.96G, +0.0026 ppl @ Llama-3-8B" },
    { "F16", QF_FTYPE_F16, QF_GGML_F16, "14.00G, +0.0020 ppl @ Mistral-7B" },
    { "BF16", QF_FTYPE_BF16, QF_GGML_BF16, "14.00G, -0.0050 ppl @ Mistral-7B" },
    { "F32", QF_FTYPE_F32, QF_GGML_F32, "26.00G              @ 7B" },
};
#define N_MIXES (sizeof MIXES / sizeof MIXES[0])

static int is_alias(const mix_info *m) { return strncmp(m->desc, "alias", 5) == 0; }

static const mix_info *mix_by_ftype(int ftype)
{
    for (size_t i = 0; i < N_MIXES; i++)
        if (MIXES[i].ftype == ftype && !is_alias(&MIXES[i]))
            return &MIXES[i];
    return NULL;
}

int qf_mix_from_name(const char *name)
{
    size_t i;
    char *end;
    long v;

    if (!name || !*name)
        return -1;
    for (i = 0; i < N_MIXES; i++)
        if (strcasecmp(MIXES[i].name, name) == 0)
            return MIXES[i].ftype;
    v = strtol(name, &end, 10);
    if (*end == '\0' && v >= 0 && v < 64 && mix_by_ftype((int)v))
        return (int)v;
    return -1;
}

const char *qf_mix_name(int ftype)
{
    const mix_info *m = mix_by_ftype(ftype);
    return m ? m->name : NULL;
}

int qf_mix_default_type(int ftype)
{
    const mix_info *m = mix_by_ftype(ftype);
    return m ? m->type : -1;
}

const char *qf_mix_list(int i, int *ftype, const char **desc)
{
    if (i < 0 || (size_t)i >= N_MIXES)
        return NULL;
    if (ftype)
        *ftype = MIXES[i].ftype;
    if (desc)
        *desc = MIXES[i].desc;
    return MIXES[i].name;
}

/* ---------------------------------------------------------------------
 * The rule table
 * ------------------------------------------------------------------- */

/* Kinds of tensor, told apart by name in the chain's order: the first
 * test that holds names the kind ("contains" is a substring test). */
typedef enum kind {
    K_NONE = 0,
    K_OUTPUT,      /* == "output.weight", or == "token_embd.weight" when there is no output */
    K_TOKEN_EMBD,  /* == "token_embd.weight" */
    K_ATTN_V,      /* contains "attn_v.weight" */
    K_ATTN_K,      /* contains "attn_k.weight" */
    K_ATTN_Q,      /* contains "attn_q.weight" */
    K_FFN_DOWN,    /* contains "ffn_down" */
    K_ATTN_OUTPUT, /* contains "attn_output.weight" */
    K_ATTN_QKV,    /* contains "attn_qkv.weight" */
    K_FFN_GATE,    /* contains "ffn_gate" */
    K_FFN_UP,      /* contains "ffn_up" */
} kind;

/* Layer predicates. i and n are, for attn_v, the count of attn_v tensors
 * seen before this one and the model's n_attention_wv; for ffn_down, the
 * layer (counted, or parsed from the name in MoE models) and n_layer. */
typedef enum when {
    ALWAYS = 0,
    MORE_BITS,          /* use_more_bits(i, n) */
    FIRST_EIGHTH,       /* i < n/8 */
    FIRST_SIXTEENTH,    /* i < n/16 */
    FIRST_TWO,          /* i < 2 */
    FIRST_FOUR,         /* i < 4 */
    GQA_4,              /* n_head / n_head_kv >= 4 */
    ROW_NOT_DEFAULT,    /* the row length is not a multiple of the default type's block */
    FIRST_EIGHTH_NO_IM, /* i < n/8 and no importance matrix */
    FIRST_EIGHTH_IM,    /* i < n/8 with an importance matrix */
} when;

typedef enum arch_cond { ANY_ARCH = 0, FALCON, NOT_FALCON } arch_cond;
typedef enum model_cond { ANY_MODEL = 0, EXPERTS_8, NOT_EXPERTS_8, LLAMA_70B } model_cond;

#define M(f) (1ull << QF_FTYPE_##f)
#define QUANT_MIXES                                                                          \
    (M(Q4_0) | M(Q4_1) | M(Q5_0) | M(Q5_1) | M(Q8_0) | M(Q2_K) | M(Q3_K_S) | M(Q3_K_M) |      \
     M(Q3_K_L) | M(Q4_K_S) | M(Q4_K_M) | M(Q5_K_S) | M(Q5_K_M) | M(Q6_K) | M(IQ4_NL) |       \
     M(IQ4_XS))

typedef struct rule {
    kind kind;
    uint64_t mixes;    /* bit f set: applies to ftype f */
    arch_cond arch;
    model_cond model;
    when when;
    int type;          /* the type chosen */
} rule;

/*
 *   kind           mixes                          arch        model      when              type
 */
static const rule RULES[] = {
    /* output.weight (or the tied token embedding): Q8_0 when the row does not
     * fit the mix's blocks (or on Falcon), else Q6_K unless the mix is Q8_0 */
    { K_OUTPUT, QUANT_MIXES, FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q8_0 },
    { K_OUTPUT, QUANT_MIXES, ANY_ARCH, ANY_MODEL, ROW_NOT_DEFAULT, QF_GGML_Q8_0 },
    { K_OUTPUT, QUANT_MIXES & ~M(Q8_0), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q6_K },

    /* attn_v: more bits, the more so with grouped-query attention */
    { K_ATTN_V, M(Q2_K), ANY_ARCH, ANY_MODEL, GQA_4, QF_GGML_Q4_K },
    { K_ATTN_V, M(Q2_K), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q3_K },
    { K_ATTN_V, M(Q3_K_M), ANY_ARCH, ANY_MODEL, FIRST_TWO, QF_GGML_Q5_K },
    { K_ATTN_V, M(Q3_K_M), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },
    { K_ATTN_V, M(Q3_K_L), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q5_K },
    { K_ATTN_V, M(IQ4_NL) | M(IQ4_XS), ANY_ARCH, ANY_MODEL, GQA_4, QF_GGML_Q5_K },
    { K_ATTN_V, M(Q4_K_M) | M(Q5_K_M), ANY_ARCH, ANY_MODEL, MORE_BITS, QF_GGML_Q6_K },
    { K_ATTN_V, M(Q4_K_S), ANY_ARCH, ANY_MODEL, FIRST_FOUR, QF_GGML_Q5_K },

    /* attn_k: Mixtral-like models keep it at Q8_0 */
    { K_ATTN_K, QUANT_MIXES, ANY_ARCH, EXPERTS_8, ALWAYS, QF_GGML_Q8_0 },

    /* ffn_down: more bits in the first, last and every third layer */
    { K_FFN_DOWN, M(Q2_K), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q3_K },
    { K_FFN_DOWN, M(Q3_K_M), ANY_ARCH, ANY_MODEL, FIRST_SIXTEENTH, QF_GGML_Q5_K },
    { K_FFN_DOWN, M(Q3_K_M), NOT_FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },
    { K_FFN_DOWN, M(Q3_K_M), FALCON, ANY_MODEL, MORE_BITS, QF_GGML_Q4_K },
    { K_FFN_DOWN, M(Q3_K_M), FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q3_K },
    { K_FFN_DOWN, M(Q3_K_L), FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },
    { K_FFN_DOWN, M(Q3_K_L), NOT_FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q5_K },
    { K_FFN_DOWN, M(Q4_K_M), FALCON, ANY_MODEL, FIRST_SIXTEENTH, QF_GGML_Q6_K },
    { K_FFN_DOWN, M(Q4_K_M), FALCON, ANY_MODEL, MORE_BITS, QF_GGML_Q5_K },
    { K_FFN_DOWN, M(Q4_K_M), FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },
    { K_FFN_DOWN, M(Q4_K_M), NOT_FALCON, ANY_MODEL, MORE_BITS, QF_GGML_Q6_K },
    { K_FFN_DOWN, M(IQ4_NL) | M(IQ4_XS), ANY_ARCH, ANY_MODEL, FIRST_EIGHTH_NO_IM, QF_GGML_Q5_K },
    { K_FFN_DOWN, M(Q5_K_M), ANY_ARCH, ANY_MODEL, MORE_BITS, QF_GGML_Q6_K },
    { K_FFN_DOWN, M(Q4_K_S), NOT_FALCON, ANY_MODEL, FIRST_EIGHTH, QF_GGML_Q5_K },
    /* with an imatrix, guard the first ffn_down layers of Q4_0/Q5_0 */
    { K_FFN_DOWN, M(Q4_0), ANY_ARCH, ANY_MODEL, FIRST_EIGHTH_IM, QF_GGML_Q4_1 },
    { K_FFN_DOWN, M(Q5_0), ANY_ARCH, ANY_MODEL, FIRST_EIGHTH_IM, QF_GGML_Q5_1 },

    /* attn_output */
    { K_ATTN_OUTPUT, M(Q2_K) | M(Q3_K_S) | M(Q3_K_M) | M(IQ4_NL) | M(Q4_K_S) | M(Q4_K_M) | M(IQ4_XS),
      NOT_FALCON, EXPERTS_8, ALWAYS, QF_GGML_Q5_K },
    { K_ATTN_OUTPUT, M(Q2_K), NOT_FALCON, NOT_EXPERTS_8, ALWAYS, QF_GGML_Q3_K },
    { K_ATTN_OUTPUT, M(Q3_K_M), NOT_FALCON, NOT_EXPERTS_8, ALWAYS, QF_GGML_Q4_K },
    { K_ATTN_OUTPUT, M(Q3_K_L), NOT_FALCON, NOT_EXPERTS_8, ALWAYS, QF_GGML_Q5_K },
    { K_ATTN_OUTPUT, M(Q3_K_L), FALCON, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },

    /* fused attn_qkv */
    { K_ATTN_QKV, M(Q3_K_M) | M(Q3_K_L), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q4_K },
    { K_ATTN_QKV, M(Q4_K_M), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q5_K },
    { K_ATTN_QKV, M(Q5_K_M), ANY_ARCH, ANY_MODEL, ALWAYS, QF_GGML_Q6_K },
};

/* Adjustments applied after the table, in order: when the chosen type is
 * one of `from` (0: any), it becomes `type`. */
typedef struct adjust {
    kind kind;
    model_cond model;
    uint64_t from;     /* bit t set: applies when the chosen type is t */
    int type;
} adjust;

#define T(t) (1ull << QF_GGML_##t)

static const adjust ADJUSTS[] = {
    /* a 70B model shares each attn_v among 8 heads: more bits cost little */
    { K_ATTN_V, LLAMA_70B, T(Q3_K) | T(Q4_K), QF_GGML_Q5_K },
    /* an 8-expert model: attn_v at Q8_0 costs ~128 MB */
    { K_ATTN_V, EXPERTS_8, 0, QF_GGML_Q8_0 },
};

/* ---------------------------------------------------------------------
 * Tensors never quantized (llama_model_quantize_impl)
 * ------------------------------------------------------------------- */

static const char *const NEVER_CONTAINS[] = {
    "_norm.weight",               /* norms */
    "ffn_gate_inp.weight",        /* MoE expert gating */
    "ssm_conv1d.weight",          /* Mamba's small 2-D weights */
    "time_mix_first.weight",      /* RWKV */
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",          /* T5 relative position bias */
};

static const char *const NEVER_EQUALS[] = {
    "position_embd.weight", /* positional embeddings (BERT) */
    "token_types.weight",   /* token types (BERT) */
};

/* ---------------------------------------------------------------------
 * The chooser
 * ------------------------------------------------------------------- */

typedef struct override {
    regex_t re;
    char *pattern;
    int type;
} override;

struct qf_mix {
    qf_mix_opts o;
    qf_mix_model m;
    int default_type;
    int is_70b;
    int64_t i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    override *ov;
    size_t n_ov;
};

int qf_mix_use_more_bits(int64_t i, int64_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

void qf_mix_model_scan(qf_mix_model *m, const char *name)
{
    if (strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight") ||
        strstr(name, "attn_kv_b.weight"))
        m->n_attention_wv++;
    else if (strcmp(name, "output.weight") == 0)
        m->has_output = 1;
}

/* llama.cpp's model type LLM_TYPE_70B, which only this rule uses: 80-layer
 * llama (with GQA, not an 8-expert model), qwen2, deci and olmo models. */
static int model_is_70b(const qf_mix_model *m)
{
    const char *a = m->arch ? m->arch : "";
    if (m->n_layer != 80)
        return 0;
    if (strcmp(a, "llama") == 0)
        return m->n_expert != 8 && m->n_head != m->n_head_kv;
    return strcmp(a, "qwen2") == 0 || strcmp(a, "deci") == 0 || strcmp(a, "olmo") == 0;
}

static int can_write(int type)
{
    return type >= 0 && qf_ggml_type_name(type) && qf_quant_can_quantize(type);
}

int qf_mix_new(const qf_mix_opts *opts, const qf_mix_model *model, qf_mix **out, qf_err *err)
{
    qf_mix *m;
    *out = NULL;
    if (qf_mix_default_type(opts->ftype) < 0)
        return qf_err_set(err, QF_EINVAL, "unknown mix (ftype %d)", opts->ftype);
    if (opts->output_tensor_type >= 0 && !can_write(opts->output_tensor_type))
        return qf_err_set(err, QF_EINVAL, "--output-tensor-type: qforge cannot write type %d",
                          opts->output_tensor_type);
    if (opts->token_embedding_type >= 0 && !can_write(opts->token_embedding_type))
        return qf_err_set(err, QF_EINVAL, "--token-embedding-type: qforge cannot write type %d",
                          opts->token_embedding_type);
    m = calloc(1, sizeof *m);
    if (!m)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    m->o = *opts;
    m->m = *model;
    m->default_type = qf_mix_default_type(opts->ftype);
    m->is_70b = model_is_70b(model);
    *out = m;
    return 0;
}

void qf_mix_free(qf_mix *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_ov; i++) {
        regfree(&m->ov[i].re);
        free(m->ov[i].pattern);
    }
    free(m->ov);
    free(m);
}

int qf_mix_add_override(qf_mix *m, const char *spec, qf_err *err)
{
    const char *eq = strrchr(spec, '=');
    override *ov;
    char *pat;
    int type, rc;

    if (!eq)
        return qf_err_set(err, QF_EINVAL, "--tensor-type \"%s\": expected REGEX=TYPE", spec);
    if (eq == spec)
        return qf_err_set(err, QF_EINVAL, "--tensor-type \"%s\": empty pattern", spec);
    type = qf_ggml_type_from_name(eq + 1);
    if (type < 0)
        return qf_err_set(err, QF_EINVAL, "--tensor-type \"%s\": unknown type \"%s\"", spec, eq + 1);
    if (!can_write(type))
        return qf_err_set(err, QF_EINVAL, "--tensor-type \"%s\": qforge cannot write %s", spec,
                          qf_ggml_type_name(type));
    ov = realloc(m->ov, (m->n_ov + 1) * sizeof *ov);
    if (!ov)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    m->ov = ov;
    pat = strndup(spec, (size_t)(eq - spec));
    if (!pat)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if ((rc = regcomp(&ov[m->n_ov].re, pat, REG_EXTENDED | REG_NOSUB)) != 0) {
        char why[128];
        regerror(rc, &ov[m->n_ov].re, why, sizeof why);
        free(pat);
        return qf_err_set(err, QF_EINVAL, "--tensor-type \"%s\": bad regex: %s", spec, why);
    }
    ov[m->n_ov].pattern = pat;
    ov[m->n_ov].type = type;
    m->n_ov++;
    return 0;
}

static kind kind_of(const qf_mix *m, const char *name)
{
    static const struct { const char *sub; kind k; } CONTAINS[] = {
        { "attn_v.weight", K_ATTN_V },           { "attn_k.weight", K_ATTN_K },
        { "attn_q.weight", K_ATTN_Q },           { "ffn_down", K_FFN_DOWN },
        { "attn_output.weight", K_ATTN_OUTPUT }, { "attn_qkv.weight", K_ATTN_QKV },
        { "ffn_gate", K_FFN_GATE },              { "ffn_up", K_FFN_UP },
    };
    if (strcmp(name, "output.weight") == 0 ||
        (!m->m.has_output && strcmp(name, "token_embd.weight") == 0))
        return K_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0)
        return K_TOKEN_EMBD;
    for (size_t i = 0; i < sizeof CONTAINS / sizeof CONTAINS[0]; i++)
        if (strstr(name, CONTAINS[i].sub))
            return CONTAINS[i].k;
    return K_NONE;
}

/* ggml_n_dims: dims up to the last one above 1 (at least 1). */
static uint32_t effective_dims(uint32_t n_dims, const uint64_t ne[4])
{
    uint32_t d;
    for (d = n_dims < 4 ? n_dims : 4; d > 1; d--)
        if (ne[d - 1] > 1)
            return d;
    return 1;
}

/* llama.cpp's test `name.rfind("weight") == name.size() - 6`; note that it
 * also holds for a 5-byte name without "weight" (npos == size - 6). */
static int ends_with_weight(const char *name)
{
    size_t n = strlen(name);
    const char *p, *last = NULL;
    for (p = strstr(name, "weight"); p; p = strstr(p + 1, "weight"))
        last = p;
    if (!last)
        return n == 5;
    return (size_t)(last - name) + 6 == n;
}

static int never_quantized(const qf_mix *m, const char *name, uint32_t dims)
{
    size_t i;
    if (!ends_with_weight(name) || dims < 2)
        return 1;
    for (i = 0; i < sizeof NEVER_CONTAINS / sizeof NEVER_CONTAINS[0]; i++)
        if (strstr(name, NEVER_CONTAINS[i]))
            return 1;
    for (i = 0; i < sizeof NEVER_EQUALS / sizeof NEVER_EQUALS[0]; i++)
        if (strcmp(name, NEVER_EQUALS[i]) == 0)
            return 1;
    return m->o.leave_output_tensor && strcmp(name, "output.weight") == 0;
}

/* sscanf(name, "blk.%d.", &layer) as C does it: -1 when no number follows. */
int64_t qf_mix_layer(const char *name)
{
    const char *p;
    char *end;
    long v;
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    p = name + 4;
    while (isspace((unsigned char)*p))
        p++;
    v = strtol(p, &end, 10);
    if (end == p)
        return -1;
    return (int)v;
}

static int arch_ok(const qf_mix *m, arch_cond a)
{
    int falcon = m->m.arch && strcmp(m->m.arch, "falcon") == 0;
    return a == ANY_ARCH || (a == FALCON) == falcon;
}

static int model_ok(const qf_mix *m, model_cond c)
{
    switch (c) {
    case ANY_MODEL: return 1;
    case EXPERTS_8: return m->m.n_expert == 8;
    case NOT_EXPERTS_8: return m->m.n_expert != 8;
    case LLAMA_70B: return m->is_70b;
    }
    return 0;
}

static int when_ok(const qf_mix *m, when w, int64_t i, int64_t n, uint64_t ne0)
{
    int64_t gqa = m->m.n_head_kv ? m->m.n_head / m->m.n_head_kv : 0;
    const qf_ggml_traits *tr = qf_ggml_type_traits(m->default_type);
    switch (w) {
    case ALWAYS: return 1;
    case MORE_BITS: return qf_mix_use_more_bits(i, n);
    case FIRST_EIGHTH: return i < n / 8;
    case FIRST_SIXTEENTH: return i < n / 16;
    case FIRST_TWO: return i < 2;
    case FIRST_FOUR: return i < 4;
    case GQA_4: return gqa >= 4;
    case ROW_NOT_DEFAULT: return ne0 % tr->block_size != 0;
    case FIRST_EIGHTH_NO_IM: return i < n / 8 && !m->o.has_imatrix;
    case FIRST_EIGHTH_IM: return i < n / 8 && m->o.has_imatrix;
    }
    return 0;
}

/* llama.cpp's layer_info: the counted layer, or in MoE models the layer in
 * the name (which must be in [0, n_layer)). */
static int layer_info(const qf_mix *m, int64_t counted, const char *name, int64_t *i, qf_err *err)
{
    int64_t n_expert = m->m.n_expert > 1 ? m->m.n_expert : 1;
    *i = counted;
    if (n_expert > 1) {
        *i = qf_mix_layer(name);
        if (strncmp(name, "blk.", 4) != 0 || *i < 0 || *i >= m->m.n_layer)
            return qf_err_set(err, QF_EINVAL, "tensor \"%s\": cannot tell its layer (0..%lld)",
                              name, (long long)m->m.n_layer - 1);
    }
    return 0;
}

/* The mix's rules for one tensor (llama_tensor_get_type before its
 * fallback); advances the counters. */
static int rules_type(qf_mix *m, const char *name, uint64_t ne0, int *type, int *ruled,
                      qf_err *err)
{
    kind k = kind_of(m, name);
    int64_t i = 0, n = 0;
    int rc;
    size_t r;

    *type = m->default_type;
    *ruled = 0;
    if (k == K_OUTPUT && m->o.output_tensor_type >= 0) {
        *type = m->o.output_tensor_type;
        *ruled = 1;
        return 0;
    }
    if (k == K_TOKEN_EMBD && m->o.token_embedding_type >= 0) {
        *type = m->o.token_embedding_type;
        *ruled = 1;
        return 0;
    }
    switch (k) {
    case K_ATTN_V: i = m->i_attention_wv; n = m->m.n_attention_wv; break;
    case K_FFN_DOWN:
        if ((rc = layer_info(m, m->i_ffn_down, name, &i, err)) != 0)
            return rc;
        n = m->m.n_layer;
        break;
    case K_FFN_GATE:
        if ((rc = layer_info(m, m->i_ffn_gate, name, &i, err)) != 0)
            return rc;
        break;
    case K_FFN_UP:
        if ((rc = layer_info(m, m->i_ffn_up, name, &i, err)) != 0)
            return rc;
        break;
    default: break;
    }
    for (r = 0; r < sizeof RULES / sizeof RULES[0]; r++) {
        const rule *ru = &RULES[r];
        if (ru->kind == k && (ru->mixes >> m->o.ftype & 1) && arch_ok(m, ru->arch) &&
            model_ok(m, ru->model) && when_ok(m, ru->when, i, n, ne0)) {
            *type = ru->type;
            *ruled = 1;
            break;
        }
    }
    for (r = 0; r < sizeof ADJUSTS / sizeof ADJUSTS[0]; r++) {
        const adjust *a = &ADJUSTS[r];
        if (a->kind == k && model_ok(m, a->model) && (!a->from || (a->from >> *type & 1))) {
            *type = a->type;
            *ruled = 1;
        }
    }
    switch (k) {
    case K_ATTN_V: m->i_attention_wv++; break;
    case K_FFN_DOWN: m->i_ffn_down++; break;
    case K_FFN_GATE: m->i_ffn_gate++; break;
    case K_FFN_UP: m->i_ffn_up++; break;
    default: break;
    }
    return 0;
}

int qf_mix_fallback(int type, uint64_t ne0, int *llama_fails)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(type);
    int fb;
    if (llama_fails)
        *llama_fails = 0;
    if (!tr || ne0 % tr->block_size == 0)
        return type;
    switch (type) {
    case QF_GGML_TQ1_0:
    case QF_GGML_TQ2_0: fb = QF_GGML_Q4_0; break;
    case QF_GGML_IQ2_XXS:
    case QF_GGML_IQ2_XS:
    case QF_GGML_IQ2_S:
    case QF_GGML_IQ3_XXS:
    case QF_GGML_IQ3_S:
    case QF_GGML_IQ1_S:
    case QF_GGML_IQ1_M:
    case QF_GGML_Q2_K:
    case QF_GGML_Q3_K:
    case QF_GGML_IQ4_XS: fb = QF_GGML_IQ4_NL; break;
    case QF_GGML_Q4_K: fb = QF_GGML_Q5_0; break;
    case QF_GGML_Q5_K: fb = QF_GGML_Q5_1; break;
    case QF_GGML_Q6_K: fb = QF_GGML_Q8_0; break;
    default:
        /* llama.cpp: "Unsupported tensor size encountered" */
        if (llama_fails)
            *llama_fails = 1;
        return QF_GGML_F16;
    }
    if (ne0 % qf_ggml_type_traits(fb)->block_size != 0)
        fb = QF_GGML_F16;
    return fb;
}

int qf_mix_choose(qf_mix *m, const char *name, uint32_t n_dims, const uint64_t ne[4],
                  int stored_type, qf_mix_choice *out, qf_err *err)
{
    uint32_t dims;
    int type, ruled = 0, rc;
    size_t i;

    memset(out, 0, sizeof *out);
    if (!name || !ne || n_dims < 1 || n_dims > 4 || !qf_ggml_type_name(stored_type))
        return qf_err_set(err, QF_EINVAL, "qf_mix_choose: bad arguments");
    dims = effective_dims(n_dims, ne);
    if (never_quantized(m, name, dims)) {
        out->type = out->wanted = stored_type;
        out->why = QF_MIX_KEPT;
        return 0;
    }

    type = m->default_type;
    out->why = m->o.pure ? QF_MIX_PURE : QF_MIX_DEFAULT;
    if (!m->o.pure && qf_ggml_type_traits(m->default_type)->is_quantized) {
        if ((rc = rules_type(m, name, ne[0], &type, &ruled, err)) != 0)
            return rc;
        if (ruled)
            out->why = QF_MIX_RULE;
    }
    for (i = 0; i < m->n_ov; i++) {
        if (regexec(&m->ov[i].re, name, 0, NULL, 0) == 0) {
            type = m->ov[i].type;
            out->why = QF_MIX_OVERRIDE;
            out->pattern = m->ov[i].pattern;
            break;
        }
    }
    if (m->o.token_embedding_type >= 0 && strcmp(name, "token_embd.weight") == 0) {
        type = m->o.token_embedding_type;
        out->why = QF_MIX_EMBD_OPT;
    }
    if (m->o.output_tensor_type >= 0 && strcmp(name, "output.weight") == 0) {
        type = m->o.output_tensor_type;
        out->why = QF_MIX_OUTPUT_OPT;
    }

    out->wanted = type;
    out->type = qf_mix_fallback(type, ne[0], &out->llama_fails);
    out->fallback = out->type != type;
    /* llama.cpp checks row lengths only inside its mix rules: a type from
     * --pure or an explicit option that does not fit stops it */
    if (out->fallback && out->why != QF_MIX_RULE && out->why != QF_MIX_DEFAULT)
        out->llama_fails = 1;
    out->quantize = out->type != stored_type;
    if (!out->quantize)
        out->type = stored_type;
    return 0;
}
