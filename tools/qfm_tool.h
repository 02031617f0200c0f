/*
 * tools/qfm_tool.h - what qforge-inspect and qforge-sum do with a QFM file.
 * Each prints (stdout for results, "prog: message" on stderr for errors)
 * and returns an exit code.
 */
#ifndef QF_TOOLS_QFM_TOOL_H
#define QF_TOOLS_QFM_TOOL_H

#include "tools/cli.h"

/* List header, metadata, tensor table (codec, stored size, ratio) and
 * provenance; `json`: the header as JSON with the layout figures added. */
int qf_tool_qfm_inspect(const char *path, int json, int full);

/* Manifest lines (the llama-gguf-hash format, as for a GGUF: the digests of
 * the uncompressed tensors), every tensor checked while it is hashed. */
int qf_tool_qfm_manifest(const char *path, int threads, qf_json *j);

/* Re-hash every tensor (threads in parallel): one line per tensor, OK or
 * MISMATCH, then the file digest. Exit 1 on any difference. */
int qf_tool_qfm_check(const char *path, int threads, qf_json *j);

#endif
