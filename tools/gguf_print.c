/*
 * tools/gguf_print.c - GGUF metadata values in text and JSON.
 */
#include "tools/gguf_print.h"

#include <inttypes.h>
#include <stdlib.h>

static void print_float(FILE *f, double v, int is32)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.6g", v);
    if (is32 ? (strtof(buf, NULL) != (float)v) : (strtod(buf, NULL) != v))
        snprintf(buf, sizeof buf, is32 ? "%.9g" : "%.17g", v);
    fputs(buf, f);
}

static void text_value(FILE *f, const qf_gguf_val *v, int top, int full);

static void text_array(FILE *f, const qf_gguf_val *v, int full)
{
    qf_gguf_iter it;
    qf_gguf_val e;
    uint64_t k = 0;

    fputc('[', f);
    qf_gguf_iter_init(&it, v);
    while (qf_gguf_iter_next(&it, &e) == 1) {
        if (!full && k == QF_TOOL_ARRAY_PREVIEW) {
            fputs(", ...", f);
            break;
        }
        if (k)
            fputs(", ", f);
        text_value(f, &e, 0, full);
        k++;
    }
    fputc(']', f);
}

static void text_value(FILE *f, const qf_gguf_val *v, int top, int full)
{
    switch (v->type) {
    case QF_GGUF_UINT8: case QF_GGUF_UINT16: case QF_GGUF_UINT32: case QF_GGUF_UINT64:
        fprintf(f, "%" PRIu64, v->u);
        break;
    case QF_GGUF_INT8: case QF_GGUF_INT16: case QF_GGUF_INT32: case QF_GGUF_INT64:
        fprintf(f, "%" PRId64, v->i);
        break;
    case QF_GGUF_FLOAT32:
        print_float(f, v->f, 1);
        break;
    case QF_GGUF_FLOAT64:
        print_float(f, v->f, 0);
        break;
    case QF_GGUF_BOOL:
        fputs(v->u ? "true" : "false", f);
        break;
    case QF_GGUF_STRING:
        if (!top)
            fputc('"', f);
        qf_cli_print_escaped(f, v->str, v->str_len);
        if (!top)
            fputc('"', f);
        break;
    case QF_GGUF_ARRAY:
        text_array(f, v, full);
        break;
    default:
        fputc('?', f);
    }
}

void qf_tool_gguf_print_value(FILE *f, const qf_gguf_val *v, int full)
{
    text_value(f, v, 1, full);
}

void qf_tool_gguf_type_label(const qf_gguf_val *v, char *buf, size_t cap)
{
    qf_gguf_val e = *v;
    int depth = 0;
    qf_gguf_iter it;

    while (e.type == QF_GGUF_ARRAY && depth < 8) {
        qf_gguf_val inner;
        depth++;
        qf_gguf_iter_init(&it, &e);
        if (e.arr_type != QF_GGUF_ARRAY || qf_gguf_iter_next(&it, &inner) != 1) {
            e.type = e.arr_type;
            break;
        }
        e = inner;
    }
    snprintf(buf, cap, "%.*s%s%.*s", depth, "[[[[[[[[", qf_gguf_vtype_name((int)e.type), depth,
             "]]]]]]]]");
}

void qf_tool_gguf_print_kv_heading(FILE *f)
{
    fprintf(f, "%5s  %-40s %-10s %s\n", "#", "key", "type", "value");
}

void qf_tool_gguf_print_kv(FILE *f, int64_t index, const char *key, const qf_gguf_val *v, int full)
{
    char tl[40];
    qf_tool_gguf_type_label(v, tl, sizeof tl);
    fprintf(f, "%5" PRId64 "  %-40s %-10s ", index, key, tl);
    if (v->type == QF_GGUF_ARRAY)
        fprintf(f, "%" PRIu64 " items ", v->arr_n);
    text_value(f, v, 1, full);
    fputc('\n', f);
}

void qf_tool_gguf_json_value(qf_json *j, const qf_gguf_val *v, int full)
{
    qf_gguf_iter it;
    qf_gguf_val e;
    uint64_t k = 0;

    switch (v->type) {
    case QF_GGUF_UINT8: case QF_GGUF_UINT16: case QF_GGUF_UINT32: case QF_GGUF_UINT64:
        qf_json_u64(j, v->u);
        break;
    case QF_GGUF_INT8: case QF_GGUF_INT16: case QF_GGUF_INT32: case QF_GGUF_INT64:
        qf_json_i64(j, v->i);
        break;
    case QF_GGUF_FLOAT32:
        qf_json_f32(j, (float)v->f);
        break;
    case QF_GGUF_FLOAT64:
        qf_json_f64(j, v->f);
        break;
    case QF_GGUF_BOOL:
        qf_json_bool(j, v->u != 0);
        break;
    case QF_GGUF_STRING:
        qf_json_strn(j, v->str, v->str_len);
        break;
    case QF_GGUF_ARRAY:
        qf_json_arr_begin(j);
        qf_gguf_iter_init(&it, v);
        while ((full || k < QF_TOOL_ARRAY_PREVIEW) && qf_gguf_iter_next(&it, &e) == 1) {
            qf_tool_gguf_json_value(j, &e, full);
            k++;
        }
        qf_json_arr_end(j);
        break;
    default:
        qf_json_null(j);
    }
}
