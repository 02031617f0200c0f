/*
 * tools/model_open.h - tell what kind of model file a path is, for tools
 * that accept several (inspect, sum).
 */
#ifndef QF_TOOLS_MODEL_OPEN_H
#define QF_TOOLS_MODEL_OPEN_H

#include "formats/error.h"

typedef enum { QF_KIND_GGUF = 1, QF_KIND_SAFETENSORS = 2 } qf_kind;

/*
 * Decide by what the path is: a folder or *.json -> safetensors; *.gguf ->
 * GGUF; *.safetensors -> safetensors; otherwise by the first bytes ("GGUF",
 * or a u64 length followed by '{'). Returns a qf_kind, or a negative code
 * with a message ("x.bin: not a GGUF or safetensors file (a zip archive)").
 */
int qf_tool_sniff(const char *path, qf_err *err);

#endif
