/*
 * tests/test_mix.c - quantize/mix: llama.cpp's per-tensor type choice.
 *
 * The expectations are llama-quantize b4747's own choices, copied from
 * ../shared/golden/<model>/<model>-tensor-types.tsv for three model shapes:
 * mix-probe-12L (12 layers, GQA 4), tiny-llama-256 (2 layers, GQA 2) and
 * stories260K (5 layers, 64-wide rows, 172-wide ffn_down, tied embeddings).
 * The models are described here by their tensor names and shapes only; the
 * rows listed are those where a rule of the mix shows (the other tensors take
 * the mix's default type). Then the rules the golden models cannot reach
 * (70B, 8 experts, Falcon), the options, and the fallbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/error.h"
#include "formats/types.h"
#include "quantize/mix.h"

/* ---------------------------------------------------------------------
 * Model shapes
 * ------------------------------------------------------------------- */

typedef struct shape {
    const char *name;
    const char *arch;
    int n_layer, n_head, n_head_kv, n_expert;
    int tied;                  /* no output.weight */
    uint64_t embd, ff, kv, vocab;
} shape;

static const shape MIX_PROBE = { "mix-probe-12L", "llama", 12, 8, 2, 0, 0, 256, 512, 64, 512 };
static const shape TINY = { "tiny-llama-256", "llama", 2, 4, 2, 0, 0, 256, 768, 128, 512 };
static const shape STORIES = { "stories260K", "llama", 5, 8, 4, 0, 1, 64, 172, 32, 512 };

typedef struct tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[4];
    int type;      /* chosen */
    qf_mix_choice c;
    char pattern[64]; /* copy of c.pattern (borrowed from the freed chooser) */
} tensor;

typedef struct model {
    tensor t[1024];
    int n;
} model;

static void add(model *m, const char *name, uint64_t ne0, uint64_t ne1)
{
    tensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
}

/* The tensors of a LLaMA-shaped model, in llama-quantize's output order. */
static void build(model *m, const shape *s)
{
    static const char *const BLOCK[] = { "attn_k", "attn_norm", "attn_output", "attn_q", "attn_v",
                                         "ffn_down", "ffn_gate", "ffn_norm", "ffn_up" };
    char name[64];
    m->n = 0;
    if (!s->tied)
        add(m, "output.weight", s->embd, s->vocab);
    add(m, "output_norm.weight", s->embd, 1);
    add(m, "token_embd.weight", s->embd, s->vocab);
    for (int l = 0; l < s->n_layer; l++)
        for (size_t k = 0; k < sizeof BLOCK / sizeof BLOCK[0]; k++) {
            const char *b = BLOCK[k];
            uint64_t ne0 = s->embd, ne1 = s->embd;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, b);
            if (strstr(b, "norm"))
                ne1 = 1;
            else if (!strcmp(b, "attn_k") || !strcmp(b, "attn_v"))
                ne1 = s->kv;
            else if (!strcmp(b, "ffn_down"))
                ne0 = s->ff;
            else if (!strcmp(b, "ffn_gate") || !strcmp(b, "ffn_up"))
                ne1 = s->ff;
            add(m, name, ne0, ne1);
        }
}

static void model_of(const shape *s, const model *m, qf_mix_model *mm)
{
    memset(mm, 0, sizeof *mm);
    mm->arch = s->arch;
    mm->n_layer = s->n_layer;
    mm->n_head = s->n_head;
    mm->n_head_kv = s->n_head_kv;
    mm->n_expert = s->n_expert;
    for (int i = 0; i < m->n; i++)
        qf_mix_model_scan(mm, m->t[i].name);
}

static void no_opts(qf_mix_opts *o, int ftype)
{
    memset(o, 0, sizeof *o);
    o->ftype = ftype;
    o->output_tensor_type = -1;
    o->token_embedding_type = -1;
}

/* Choose every tensor's type (stored as `stored`). */
static void choose_all(const shape *s, model *m, const qf_mix_opts *o, const char *const *ov,
                       int stored)
{
    qf_mix_model mm;
    qf_mix *mix = NULL;
    qf_err err = { 0 };
    model_of(s, m, &mm);
    assert_int_equal(qf_mix_new(o, &mm, &mix, &err), 0);
    for (; ov && *ov; ov++)
        assert_int_equal(qf_mix_add_override(mix, *ov, &err), 0);
    for (int i = 0; i < m->n; i++) {
        tensor *t = &m->t[i];
        if (qf_mix_choose(mix, t->name, t->n_dims, t->ne, stored, &t->c, &err) != 0)
            fail_msg("%s: %s", t->name, err.msg);
        t->type = t->c.type;
        snprintf(t->pattern, sizeof t->pattern, "%s", t->c.pattern ? t->c.pattern : "");
        t->c.pattern = NULL;
    }
    qf_mix_free(mix);
}

static const tensor *find(const model *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name))
            return &m->t[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static void expect_type(const model *m, const char *name, const char *want, const char *ctx)
{
    const tensor *t = find(m, name);
    if (strcmp(qf_ggml_type_name(t->type), want) != 0)
        fail_msg("%s: %s is %s, llama-quantize chose %s", ctx, name, qf_ggml_type_name(t->type), want);
}

/* ---------------------------------------------------------------------
 * llama-quantize's choices (golden tensor-types tables)
 * ------------------------------------------------------------------- */

typedef struct expect {
    const char *model;
    const char *column;   /* TYPE, TYPE-pure or TYPE-imatrix */
    const char *tensor;   /* a full name, or a block tensor: then one type per layer */
    const char *types;
} expect;

static const expect GOLDEN[] = {
    { "mix-probe-12L", "Q2_K", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q2_K", "token_embd.weight", "Q2_K" },
    { "mix-probe-12L", "Q2_K", "attn_output.weight", "Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K" },
    { "mix-probe-12L", "Q2_K", "attn_v.weight", "Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q2_K", "ffn_down.weight", "Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K" },
    { "mix-probe-12L", "Q3_K_M", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q3_K_M", "token_embd.weight", "Q3_K" },
    { "mix-probe-12L", "Q3_K_M", "attn_output.weight", "Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q3_K_M", "attn_v.weight", "Q5_K Q5_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q3_K_M", "ffn_down.weight", "Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q3_K_L", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q3_K_L", "token_embd.weight", "Q3_K" },
    { "mix-probe-12L", "Q3_K_L", "attn_output.weight", "Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K" },
    { "mix-probe-12L", "Q3_K_L", "attn_v.weight", "Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K" },
    { "mix-probe-12L", "Q3_K_L", "ffn_down.weight", "Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K" },
    { "mix-probe-12L", "Q4_K_S", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q4_K_S", "token_embd.weight", "Q4_K" },
    { "mix-probe-12L", "Q4_K_S", "attn_v.weight", "Q5_K Q5_K Q5_K Q5_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q4_K_S", "ffn_down.weight", "Q5_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K" },
    { "mix-probe-12L", "Q4_K_M", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q4_K_M", "token_embd.weight", "Q4_K" },
    { "mix-probe-12L", "Q4_K_M", "attn_v.weight", "Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q6_K Q6_K" },
    { "mix-probe-12L", "Q4_K_M", "ffn_down.weight", "Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q6_K Q6_K" },
    { "mix-probe-12L", "Q5_K_M", "output.weight", "Q6_K" },
    { "mix-probe-12L", "Q5_K_M", "token_embd.weight", "Q5_K" },
    { "mix-probe-12L", "Q5_K_M", "attn_v.weight", "Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q6_K Q6_K" },
    { "mix-probe-12L", "Q5_K_M", "ffn_down.weight", "Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q6_K Q6_K" },
    { "mix-probe-12L", "IQ4_XS", "output.weight", "Q6_K" },
    { "mix-probe-12L", "IQ4_XS", "token_embd.weight", "IQ4_XS" },
    { "mix-probe-12L", "IQ4_XS", "attn_v.weight", "Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K" },
    { "mix-probe-12L", "IQ4_XS", "ffn_down.weight", "Q5_K IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS" },
    { "mix-probe-12L", "Q4_0-pure", "output.weight", "Q4_0" },
    { "mix-probe-12L", "Q4_0-pure", "token_embd.weight", "Q4_0" },
    { "mix-probe-12L", "Q4_0-pure", "attn_v.weight", "Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0" },
    { "mix-probe-12L", "Q4_0-pure", "ffn_down.weight", "Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0" },
    { "mix-probe-12L", "Q8_0", "output.weight", "Q8_0" },
    { "mix-probe-12L", "Q8_0", "token_embd.weight", "Q8_0" },
    { "mix-probe-12L", "Q8_0", "attn_v.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "mix-probe-12L", "Q8_0", "ffn_down.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "tiny-llama-256", "Q2_K", "output.weight", "Q6_K" },
    { "tiny-llama-256", "Q2_K", "token_embd.weight", "Q2_K" },
    { "tiny-llama-256", "Q2_K", "attn_output.weight", "Q3_K Q3_K" },
    { "tiny-llama-256", "Q2_K", "attn_v.weight", "Q3_K Q3_K" },
    { "tiny-llama-256", "Q2_K", "ffn_down.weight", "Q3_K Q3_K" },
    { "tiny-llama-256", "Q4_0-imatrix", "output.weight", "Q6_K" },
    { "tiny-llama-256", "Q4_0-imatrix", "token_embd.weight", "Q4_0" },
    { "tiny-llama-256", "Q4_0-imatrix", "attn_v.weight", "Q4_0 Q4_0" },
    { "tiny-llama-256", "Q4_0-imatrix", "ffn_down.weight", "Q4_0 Q4_0" },
    { "tiny-llama-256", "Q4_K_M-imatrix", "output.weight", "Q6_K" },
    { "tiny-llama-256", "Q4_K_M-imatrix", "token_embd.weight", "Q4_K" },
    { "tiny-llama-256", "Q4_K_M-imatrix", "attn_v.weight", "Q4_K Q6_K" },
    { "tiny-llama-256", "Q4_K_M-imatrix", "ffn_down.weight", "Q4_K Q6_K" },
    { "tiny-llama-256", "IQ4_XS-imatrix", "output.weight", "Q6_K" },
    { "tiny-llama-256", "IQ4_XS-imatrix", "token_embd.weight", "IQ4_XS" },
    { "tiny-llama-256", "IQ4_XS-imatrix", "attn_v.weight", "IQ4_XS IQ4_XS" },
    { "tiny-llama-256", "IQ4_XS-imatrix", "ffn_down.weight", "IQ4_XS IQ4_XS" },
    { "tiny-llama-256", "IQ4_XS", "output.weight", "Q6_K" },
    { "tiny-llama-256", "IQ4_XS", "token_embd.weight", "IQ4_XS" },
    { "tiny-llama-256", "IQ4_XS", "attn_v.weight", "IQ4_XS IQ4_XS" },
    { "tiny-llama-256", "IQ4_XS", "ffn_down.weight", "IQ4_XS IQ4_XS" },
    { "stories260K", "Q3_K_M", "token_embd.weight", "Q8_0" },
    { "stories260K", "Q3_K_M", "attn_k.weight", "IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL" },
    { "stories260K", "Q3_K_M", "attn_output.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q3_K_M", "attn_q.weight", "IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL" },
    { "stories260K", "Q3_K_M", "attn_v.weight", "Q5_1 Q5_1 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q3_K_M", "ffn_down.weight", "F16 F16 F16 F16 F16" },
    { "stories260K", "Q3_K_M", "ffn_gate.weight", "IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL" },
    { "stories260K", "Q3_K_M", "ffn_up.weight", "IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL" },
    { "stories260K", "Q4_K_M", "token_embd.weight", "Q8_0" },
    { "stories260K", "Q4_K_M", "attn_k.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q4_K_M", "attn_output.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q4_K_M", "attn_q.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q4_K_M", "attn_v.weight", "Q5_0 Q5_0 Q8_0 Q5_0 Q8_0" },
    { "stories260K", "Q4_K_M", "ffn_down.weight", "F16 F16 F16 F16 F16" },
    { "stories260K", "Q4_K_M", "ffn_gate.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q4_K_M", "ffn_up.weight", "Q5_0 Q5_0 Q5_0 Q5_0 Q5_0" },
    { "stories260K", "Q6_K", "token_embd.weight", "Q8_0" },
    { "stories260K", "Q6_K", "attn_k.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "stories260K", "Q6_K", "attn_output.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "stories260K", "Q6_K", "attn_q.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "stories260K", "Q6_K", "attn_v.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "stories260K", "Q6_K", "ffn_down.weight", "F16 F16 F16 F16 F16" },
    { "stories260K", "Q6_K", "ffn_gate.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
    { "stories260K", "Q6_K", "ffn_up.weight", "Q8_0 Q8_0 Q8_0 Q8_0 Q8_0" },
};

static const shape *shape_named(const char *n)
{
    if (!strcmp(n, MIX_PROBE.name))
        return &MIX_PROBE;
    if (!strcmp(n, TINY.name))
        return &TINY;
    return &STORIES;
}

static void test_golden_tables(void **state)
{
    static model m;
    (void)state;
    for (size_t i = 0; i < sizeof GOLDEN / sizeof GOLDEN[0]; i++) {
        const expect *e = &GOLDEN[i];
        const shape *s = shape_named(e->model);
        char col[32], ctx[96], name[64], types[512], *tok, *save = NULL;
        qf_mix_opts o;
        char *dash;
        int layer = 0;

        snprintf(col, sizeof col, "%s", e->column);
        dash = strchr(col, '-');
        if (dash)
            *dash = '\0';
        no_opts(&o, qf_mix_from_name(col));
        assert_true(o.ftype >= 0);
        o.pure = dash && !strcmp(dash + 1, "pure");
        o.has_imatrix = dash && !strcmp(dash + 1, "imatrix");
        build(&m, s);
        choose_all(s, &m, &o, NULL, QF_GGML_F32);
        snprintf(ctx, sizeof ctx, "%s %s", e->model, e->column);
        if (!strstr(e->types, " ") && (!strcmp(e->tensor, "output.weight") ||
                                       !strcmp(e->tensor, "token_embd.weight"))) {
            expect_type(&m, e->tensor, e->types, ctx);
            continue;
        }
        snprintf(types, sizeof types, "%s", e->types);
        for (tok = strtok_r(types, " ", &save); tok; tok = strtok_r(NULL, " ", &save), layer++) {
            snprintf(name, sizeof name, "blk.%d.%s", layer, e->tensor);
            expect_type(&m, name, tok, ctx);
        }
        assert_int_equal(layer, s->n_layer);
    }
}

/* Norms and other 1-D tensors stay as stored, in every mix. */
static void test_kept_tensors(void **state)
{
    static model m;
    qf_mix_opts o;
    (void)state;
    no_opts(&o, QF_FTYPE_Q4_K_M);
    build(&m, &MIX_PROBE);
    choose_all(&MIX_PROBE, &m, &o, NULL, QF_GGML_F32);
    for (int i = 0; i < m.n; i++)
        if (strstr(m.t[i].name, "norm")) {
            assert_int_equal(m.t[i].type, QF_GGML_F32);
            assert_int_equal(m.t[i].c.quantize, 0);
            assert_int_equal(m.t[i].c.why, QF_MIX_KEPT);
        }
    /* and as F16 they stay F16 (llama-quantize copies them) */
    build(&m, &TINY);
    choose_all(&TINY, &m, &o, NULL, QF_GGML_F16);
    assert_int_equal(find(&m, "blk.0.attn_norm.weight")->type, QF_GGML_F16);
    assert_int_equal(find(&m, "blk.0.attn_q.weight")->type, QF_GGML_Q4_K);
}

static void test_never_quantized_names(void **state)
{
    static const struct { const char *name; uint32_t n_dims; uint64_t ne0, ne1; int kept; } CASES[] = {
        { "blk.0.attn_q.weight", 2, 256, 256, 0 },
        { "blk.0.attn_q.bias", 2, 256, 256, 1 },           /* does not end in "weight" */
        { "blk.0.attn_q.weight", 2, 256, 1, 1 },           /* 2-D with a trailing 1: 1-D */
        { "blk.0.ffn_gate_inp.weight", 2, 256, 8, 1 },     /* MoE gate */
        { "blk.0.attn_q_norm.weight", 2, 256, 4, 1 },      /* a norm, even 2-D */
        { "position_embd.weight", 2, 256, 512, 1 },
        { "token_types.weight", 2, 256, 2, 1 },
        { "blk.0.ssm_conv1d.weight", 2, 4, 512, 1 },
        { "blk.0.time_mix_first.weight", 2, 64, 8, 1 },
        { "blk.0.attn_rel_b.weight", 2, 32, 8, 1 },
        { "abcde", 2, 256, 256, 0 },                       /* llama.cpp's rfind quirk */
        { "weights", 2, 256, 256, 1 },
    };
    qf_mix_model mm;
    qf_mix_opts o;
    qf_mix *mix = NULL;
    qf_err err = { 0 };
    (void)state;
    memset(&mm, 0, sizeof mm);
    mm.arch = "llama";
    mm.n_layer = 1;
    no_opts(&o, QF_FTYPE_Q4_0);
    assert_int_equal(qf_mix_new(&o, &mm, &mix, &err), 0);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        uint64_t ne[4] = { CASES[i].ne0, CASES[i].ne1, 1, 1 };
        qf_mix_choice c;
        assert_int_equal(qf_mix_choose(mix, CASES[i].name, CASES[i].n_dims, ne, QF_GGML_F32, &c, &err), 0);
        if (c.quantize == CASES[i].kept)
            fail_msg("%s [%llu, %llu]: kept %d, expected %d", CASES[i].name,
                     (unsigned long long)CASES[i].ne0, (unsigned long long)CASES[i].ne1, !c.quantize,
                     CASES[i].kept);
    }
    qf_mix_free(mix);

    /* --leave-output-tensor */
    {
        static model m;
        no_opts(&o, QF_FTYPE_Q4_K_M);
        o.leave_output_tensor = 1;
        build(&m, &TINY);
        choose_all(&TINY, &m, &o, NULL, QF_GGML_F32);
        assert_int_equal(find(&m, "output.weight")->type, QF_GGML_F32);
        assert_int_equal(find(&m, "token_embd.weight")->type, QF_GGML_Q4_K);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(qf_mix_from_name("Q4_K_M"), 15);
    assert_int_equal(qf_mix_from_name("q4_k_m"), 15);
    assert_int_equal(qf_mix_from_name("Q4_K"), 15);
    assert_int_equal(qf_mix_from_name("Q3_K"), 12);
    assert_int_equal(qf_mix_from_name("Q5_K"), 17);
    assert_int_equal(qf_mix_from_name("Q2_K"), 10);
    assert_int_equal(qf_mix_from_name("IQ4_XS"), 30);
    assert_int_equal(qf_mix_from_name("IQ4_NL"), 25);
    assert_int_equal(qf_mix_from_name("Q8_0"), 7);
    assert_int_equal(qf_mix_from_name("Q5_0"), 8);
    assert_int_equal(qf_mix_from_name("18"), 18);
    assert_int_equal(qf_mix_from_name("4"), -1);      /* removed ftype */
    assert_int_equal(qf_mix_from_name("IQ2_XXS"), -1); /* not written by qforge */
    assert_int_equal(qf_mix_from_name("Q4_K_XL"), -1);
    assert_int_equal(qf_mix_from_name(""), -1);
    assert_int_equal(qf_mix_from_name("15x"), -1);
    assert_string_equal(qf_mix_name(12), "Q3_K_M");
    assert_string_equal(qf_mix_name(15), "Q4_K_M");
    assert_null(qf_mix_name(4));
    assert_int_equal(qf_mix_default_type(15), QF_GGML_Q4_K);
    assert_int_equal(qf_mix_default_type(13), QF_GGML_Q3_K);
    assert_int_equal(qf_mix_default_type(30), QF_GGML_IQ4_XS);
    assert_int_equal(qf_mix_default_type(99), -1);
}

static void test_use_more_bits(void **state)
{
    /* mix-probe-12L: layers 0, 3, 6, 9, 10, 11 (golden README) */
    static const int WANT12[12] = { 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1 };
    (void)state;
    for (int i = 0; i < 12; i++)
        assert_int_equal(qf_mix_use_more_bits(i, 12), WANT12[i]);
    /* 32 layers (a 7B): 0-3, 28-31, and (i - 4) % 3 == 2 */
    for (int i = 0; i < 32; i++)
        assert_int_equal(qf_mix_use_more_bits(i, 32), i < 4 || i >= 28 || (i - 4) % 3 == 2);
    assert_int_equal(qf_mix_layer("blk.12.attn_q.weight"), 12);
    assert_int_equal(qf_mix_layer("output.weight"), -1);
    assert_int_equal(qf_mix_layer("blk.x.attn_q.weight"), -1);
}

static void test_fallbacks(void **state)
{
    static const struct { int type; uint64_t ne0; int want; int fails; } CASES[] = {
        { QF_GGML_Q4_K, 256, QF_GGML_Q4_K, 0 },
        { QF_GGML_Q4_K, 64, QF_GGML_Q5_0, 0 },
        { QF_GGML_Q5_K, 64, QF_GGML_Q5_1, 0 },
        { QF_GGML_Q6_K, 64, QF_GGML_Q8_0, 0 },
        { QF_GGML_Q2_K, 64, QF_GGML_IQ4_NL, 0 },
        { QF_GGML_Q3_K, 64, QF_GGML_IQ4_NL, 0 },
        { QF_GGML_IQ4_XS, 96, QF_GGML_IQ4_NL, 0 },
        { QF_GGML_Q4_K, 172, QF_GGML_F16, 0 },   /* Q5_0 does not fit either */
        { QF_GGML_Q6_K, 172, QF_GGML_F16, 0 },
        { QF_GGML_Q8_0, 172, QF_GGML_F16, 1 },   /* llama.cpp: Unsupported tensor size */
        { QF_GGML_Q4_0, 172, QF_GGML_F16, 1 },
        { QF_GGML_IQ4_NL, 100, QF_GGML_F16, 1 },
        { QF_GGML_F16, 171, QF_GGML_F16, 0 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int fails = -1;
        int got = qf_mix_fallback(CASES[i].type, CASES[i].ne0, &fails);
        if (got != CASES[i].want || fails != CASES[i].fails)
            fail_msg("%s on %llu columns: %s (fails %d), expected %s (fails %d)",
                     qf_ggml_type_name(CASES[i].type), (unsigned long long)CASES[i].ne0,
                     qf_ggml_type_name(got), fails, qf_ggml_type_name(CASES[i].want), CASES[i].fails);
    }
}

/* Where llama.cpp stops (Q8_0 on stories260K's 172-wide ffn_down), F16. */
static void test_llama_fails(void **state)
{
    static model m;
    qf_mix_opts o;
    (void)state;
    no_opts(&o, QF_FTYPE_Q8_0);
    build(&m, &STORIES);
    choose_all(&STORIES, &m, &o, NULL, QF_GGML_F32);
    for (int l = 0; l < 5; l++) {
        char name[64];
        const tensor *t;
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        t = find(&m, name);
        assert_int_equal(t->type, QF_GGML_F16);
        assert_int_equal(t->c.wanted, QF_GGML_Q8_0);
        assert_int_equal(t->c.fallback, 1);
        assert_int_equal(t->c.llama_fails, 1);
        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l);
        assert_int_equal(find(&m, name)->type, QF_GGML_Q8_0);
    }
    /* from an F16 file, the F16 fallback is a copy */
    build(&m, &STORIES);
    no_opts(&o, QF_FTYPE_Q4_K_M);
    choose_all(&STORIES, &m, &o, NULL, QF_GGML_F16);
    assert_int_equal(find(&m, "blk.0.ffn_down.weight")->type, QF_GGML_F16);
    assert_int_equal(find(&m, "blk.0.ffn_down.weight")->c.quantize, 0);
    assert_int_equal(find(&m, "blk.0.ffn_down.weight")->c.llama_fails, 0);
    /* --pure with a K type on 64 columns: llama.cpp aborts, qforge falls back */
    build(&m, &STORIES);
    o.pure = 1;
    choose_all(&STORIES, &m, &o, NULL, QF_GGML_F32);
    assert_int_equal(find(&m, "blk.0.attn_q.weight")->type, QF_GGML_Q5_0);
    assert_int_equal(find(&m, "blk.0.attn_q.weight")->c.llama_fails, 1);
}

static void test_options(void **state)
{
    static model m;
    static const char *const OV[] = { "attn_(q|k)\\.weight=q8_0", "attn=Q6_K", "^blk\\.1\\.=F16", NULL };
    qf_mix_opts o;
    (void)state;

    no_opts(&o, QF_FTYPE_Q4_K_M);
    o.output_tensor_type = QF_GGML_Q8_0;
    o.token_embedding_type = QF_GGML_Q6_K;
    build(&m, &TINY);
    choose_all(&TINY, &m, &o, OV, QF_GGML_F32);
    assert_int_equal(find(&m, "output.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "output.weight")->c.why, QF_MIX_OUTPUT_OPT);
    assert_int_equal(find(&m, "token_embd.weight")->type, QF_GGML_Q6_K);
    /* first matching rule wins */
    assert_int_equal(find(&m, "blk.0.attn_q.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "blk.1.attn_k.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "blk.0.attn_output.weight")->type, QF_GGML_Q6_K);
    assert_string_equal(find(&m, "blk.0.attn_output.weight")->pattern, "attn");
    assert_int_equal(find(&m, "blk.1.ffn_up.weight")->type, QF_GGML_F16);
    assert_int_equal(find(&m, "blk.0.ffn_up.weight")->type, QF_GGML_Q4_K);
    /* norms stay even when a pattern matches them */
    assert_int_equal(find(&m, "blk.1.attn_norm.weight")->type, QF_GGML_F32);

    /* tied embeddings take --output-tensor-type through the mix rules */
    no_opts(&o, QF_FTYPE_Q4_K_M);
    o.output_tensor_type = QF_GGML_Q4_0;
    build(&m, &STORIES);
    choose_all(&STORIES, &m, &o, NULL, QF_GGML_F32);
    assert_int_equal(find(&m, "token_embd.weight")->type, QF_GGML_Q4_0);

    /* bad --tensor-type specs */
    {
        static const char *const BAD[] = { "attn", "=Q8_0", "attn=Q9_9", "attn=IQ2_XXS", "(=Q8_0" };
        qf_mix_model mm;
        qf_mix *mix = NULL;
        qf_err err = { 0 };
        memset(&mm, 0, sizeof mm);
        no_opts(&o, QF_FTYPE_Q4_0);
        assert_int_equal(qf_mix_new(&o, &mm, &mix, &err), 0);
        for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
            qf_err_clear(&err);
            assert_int_equal(qf_mix_add_override(mix, BAD[i], &err), QF_EINVAL);
            assert_non_null(strstr(err.msg, "--tensor-type"));
        }
        qf_mix_free(mix);
        no_opts(&o, 4);
        assert_int_equal(qf_mix_new(&o, &mm, &mix, &err), QF_EINVAL);
    }
}

/* Rules the golden models cannot reach: a 70B llama, 8 experts, Falcon. */
static void test_other_models(void **state)
{
    static model m;
    static const shape L70 = { "70b", "llama", 80, 64, 8, 0, 0, 256, 512, 32, 512 };
    static const shape MOE = { "moe", "llama", 8, 32, 8, 8, 0, 256, 512, 64, 512 };
    static const shape FALCON = { "falcon", "falcon", 8, 32, 8, 0, 0, 256, 512, 64, 512 };
    qf_mix_opts o;
    char name[64];
    (void)state;

    /* 70B: attn_v Q3_K/Q4_K become Q5_K */
    no_opts(&o, QF_FTYPE_Q4_K_M);
    build(&m, &L70);
    choose_all(&L70, &m, &o, NULL, QF_GGML_F32);
    for (int l = 0; l < 80; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        assert_int_equal(find(&m, name)->type, qf_mix_use_more_bits(l, 80) ? QF_GGML_Q6_K : QF_GGML_Q5_K);
    }
    no_opts(&o, QF_FTYPE_Q3_K_S);
    build(&m, &L70);
    choose_all(&L70, &m, &o, NULL, QF_GGML_F32);
    assert_int_equal(find(&m, "blk.40.attn_v.weight")->type, QF_GGML_Q5_K);

    /* 8 experts: attn_v and attn_k Q8_0, attn_output Q5_K */
    no_opts(&o, QF_FTYPE_Q4_K_M);
    build(&m, &MOE);
    choose_all(&MOE, &m, &o, NULL, QF_GGML_F32);
    assert_int_equal(find(&m, "blk.3.attn_v.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "blk.3.attn_k.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "blk.3.attn_output.weight")->type, QF_GGML_Q5_K);
    assert_int_equal(find(&m, "blk.0.ffn_down.weight")->type, QF_GGML_Q6_K);

    /* Falcon: output Q8_0; Q4_K_M ffn_down Q6_K in the first 16th, Q5_K where more bits */
    no_opts(&o, QF_FTYPE_Q4_K_M);
    build(&m, &FALCON);
    choose_all(&FALCON, &m, &o, NULL, QF_GGML_F32);
    assert_int_equal(find(&m, "output.weight")->type, QF_GGML_Q8_0);
    assert_int_equal(find(&m, "blk.0.ffn_down.weight")->type, QF_GGML_Q5_K); /* 0 < 8/16 fails */
    assert_int_equal(find(&m, "blk.1.ffn_down.weight")->type, QF_GGML_Q4_K);
    assert_int_equal(find(&m, "blk.7.ffn_down.weight")->type, QF_GGML_Q5_K);
}

/* Expert tensors in a MoE model: the layer comes from the name. */
static void test_moe_layers(void **state)
{
    qf_mix_model mm;
    qf_mix_opts o;
    qf_mix *mix = NULL;
    qf_err err = { 0 };
    qf_mix_choice c;
    uint64_t ne[4] = { 512, 256, 4, 1 };
    (void)state;
    memset(&mm, 0, sizeof mm);
    mm.arch = "llama";
    mm.n_layer = 8;
    mm.n_head = 8;
    mm.n_head_kv = 8;
    mm.n_expert = 4;
    no_opts(&o, QF_FTYPE_Q4_K_M);
    assert_int_equal(qf_mix_new(&o, &mm, &mix, &err), 0);
    assert_int_equal(qf_mix_choose(mix, "blk.7.ffn_down_exps.weight", 3, ne, QF_GGML_F32, &c, &err), 0);
    assert_int_equal(c.type, QF_GGML_Q6_K); /* layer 7 of 8: more bits */
    assert_int_equal(qf_mix_choose(mix, "blk.2.ffn_down_exps.weight", 3, ne, QF_GGML_F32, &c, &err), 0);
    assert_int_equal(c.type, QF_GGML_Q4_K);
    assert_int_equal(qf_mix_choose(mix, "blk.9.ffn_down_exps.weight", 3, ne, QF_GGML_F32, &c, &err), QF_EINVAL);
    assert_non_null(strstr(err.msg, "blk.9.ffn_down_exps.weight"));
    qf_mix_free(mix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_tables),
        cmocka_unit_test(test_kept_tensors),
        cmocka_unit_test(test_never_quantized_names),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_use_more_bits),
        cmocka_unit_test(test_fallbacks),
        cmocka_unit_test(test_llama_fails),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_other_models),
        cmocka_unit_test(test_moe_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
