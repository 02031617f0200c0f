/*
 * tests/test_tensor_names.c - convert/tensor_names: HF <-> GGUF tensor
 * names, both directions of one table, and the names that are not in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "convert/tensor_names.h"

static const char *const pairs[][3] = {
    /* HF, GGUF, GGUF module */
    { "model.embed_tokens.weight", "token_embd.weight", "token_embd" },
    { "model.norm.weight", "output_norm.weight", "output_norm" },
    { "lm_head.weight", "output.weight", "output" },
    { "model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", "attn_norm" },
    { "model.layers.7.self_attn.q_proj.weight", "blk.7.attn_q.weight", "attn_q" },
    { "model.layers.7.self_attn.q_proj.bias", "blk.7.attn_q.bias", "attn_q" },
    { "model.layers.12.self_attn.k_norm.weight", "blk.12.attn_k_norm.weight", "attn_k_norm" },
    { "model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight", "attn_output" },
    { "model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight", "ffn_norm" },
    { "model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight", "ffn_down" },
};

static void test_both_ways(void **state)
{
    char out[128];
    uint64_t layer;
    const char *module;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        uint64_t want = strncmp(pairs[i][1], "blk.", 4) == 0 ? strtoull(pairs[i][1] + 4, NULL, 10) : UINT64_MAX;
        assert_int_equal(qf_tensor_names_to_gguf(pairs[i][0], out, sizeof out, &layer, &module), 1);
        assert_string_equal(out, pairs[i][1]);
        assert_string_equal(module, pairs[i][2]);
        assert_true(layer == want);
        assert_int_equal(qf_tensor_names_to_hf(pairs[i][1], out, sizeof out, &layer, &module), 1);
        assert_string_equal(out, pairs[i][0]);
        assert_string_equal(module, pairs[i][2]);
        assert_true(layer == want);
    }
    assert_string_equal(qf_tensor_names_layer_hf("ffn_up"), "mlp.up_proj");
    assert_null(qf_tensor_names_layer_hf("token_embd"));
}

static void test_not_ours(void **state)
{
    static const char *const hf[] = {
        "model.layers.0.mystery.weight", "model.layers.0.self_attn.q_proj.scale",
        "model.layers.x.self_attn.q_proj.weight", "model.layers.-1.self_attn.q_proj.weight",
        "model.layers.+1.self_attn.q_proj.weight", "model.layers..self_attn.q_proj.weight",
        "model.layers.99999999999999999999.mlp.up_proj.weight", "model.embed_tokens", "lm_head.weight.x",
        "blk.0.attn_q.weight", "token_embd.weight", "",
    };
    static const char *const gguf[] = {
        "blk.0.attn_qq.weight", "blk.-1.attn_q.weight", "blk.+1.attn_q.weight", "blk. 1.attn_q.weight",
        "blk.1attn_q.weight", "rope_freqs.weight", "model.embed_tokens.weight", "output", "",
    };
    char out[128];
    uint64_t layer;
    const char *module;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof hf / sizeof hf[0]; i++)
        assert_int_equal(qf_tensor_names_to_gguf(hf[i], out, sizeof out, &layer, &module), 0);
    for (i = 0; i < sizeof gguf / sizeof gguf[0]; i++)
        assert_int_equal(qf_tensor_names_to_hf(gguf[i], out, sizeof out, &layer, &module), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_ways),
        cmocka_unit_test(test_not_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
