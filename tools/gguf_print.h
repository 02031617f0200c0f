/*
 * tools/gguf_print.h - GGUF metadata as qforge-inspect lists it, for every
 * format whose metadata are GGUF pairs (a GGUF, a QFM): the key table in
 * text, and values in text and in JSON.
 *
 * Text row:  "    3  general.name                             STRING     tiny"
 *            index, key (40 wide), type (10 wide: "[FLOAT32]" for arrays),
 *            then for arrays "N items " and the first items.
 * Floats are printed with 6 significant digits where that reads back to the
 * same value, else with as many as it takes (9 for FLOAT32, 17 for FLOAT64).
 */
#ifndef QF_TOOLS_GGUF_PRINT_H
#define QF_TOOLS_GGUF_PRINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/gguf.h"
#include "tools/cli.h"

#define QF_TOOL_ARRAY_PREVIEW 8 /* array elements shown unless `full` */

/* "[STRING]" for an array, "[[INT32]]" for nested ones, else the type name
 * (caller's buffer, truncated to cap). */
void qf_tool_gguf_type_label(const qf_gguf_val *v, char *buf, size_t cap);

/* A value in text: numbers, true/false, a top-level string bare (escaped),
 * strings inside arrays quoted, arrays as "[a, b, ...]" with the first
 * QF_TOOL_ARRAY_PREVIEW items unless `full`. */
void qf_tool_gguf_print_value(FILE *f, const qf_gguf_val *v, int full);

/* The metadata table's heading line, and one row (index counts from 1). */
void qf_tool_gguf_print_kv_heading(FILE *f);
void qf_tool_gguf_print_kv(FILE *f, int64_t index, const char *key, const qf_gguf_val *v, int full);

/* A value in JSON (arrays cut to QF_TOOL_ARRAY_PREVIEW items unless `full`). */
void qf_tool_gguf_json_value(qf_json *j, const qf_gguf_val *v, int full);

#endif
