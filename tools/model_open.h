/*
 * tools/model_open.h - tell what kind of model file a path is, for tools
 * that accept several (inspect, sum).
 */
#ifndef QF_TOOLS_MODEL_OPEN_H
#define QF_TOOLS_MODEL_OPEN_H

#include "formats/error.h"

typedef enum { QF_KIND_GGUF = 1, QF_KIND_WEIGHTS = 2, QF_KIND_QFM = 3 } qf_kind; /* WEIGHTS: safetensors or PyTorch */

/*
 * Decide by what the path is: a folder or *.json -> weights (safetensors or
 * PyTorch, see formats/weights.h); *.gguf -> GGUF; *.safetensors, *.bin,
 * *.pt, *.pth -> weights; *.qfm or the bytes "QFM\0" -> QFM; otherwise by the first bytes ("GGUF"; a zip or
 * pickle signature; a u64 length followed by '{'). Returns a qf_kind, or a
 * negative code with a message ("x: not a GGUF, safetensors or PyTorch file").
 */
int qf_tool_sniff(const char *path, qf_err *err);

#endif
