/*
 * tools/model_open.h - tell what kind of model file a path is, for tools
 * that accept several (inspect, sum).
 */
#ifndef QF_TOOLS_MODEL_OPEN_H
#define QF_TOOLS_MODEL_OPEN_H

#include "formats/archive.h"
#include "formats/error.h"

#include <stddef.h>

typedef enum { QF_KIND_GGUF = 1, QF_KIND_WEIGHTS = 2, QF_KIND_QFM = 3 } qf_kind; /* WEIGHTS: safetensors or PyTorch */

/*
 * Decide by what the path is: a folder or *.json -> weights (safetensors or
 * PyTorch, see formats/weights.h); *.gguf -> GGUF; *.safetensors, *.bin,
 * *.pt, *.pth -> weights; *.qfm or the bytes "QFM\0" -> QFM; otherwise by the first bytes ("GGUF"; a zip or
 * pickle signature; a u64 length followed by '{'). Returns a qf_kind, or a
 * negative code with a message ("x: not a GGUF, safetensors or PyTorch file").
 */
int qf_tool_sniff(const char *path, qf_err *err);

/*
 * If `path` names an archive (.tar, .tar.gz, .tgz, .tar.zst, .tzst, .zip;
 * see formats/archive.h), unpack it into a temp folder under $TMPDIR (else
 * /tmp) and set *folder to the model folder inside (borrowed, valid until
 * exit); otherwise set *folder = path. Limits come from the environment:
 * QFORGE_ARCHIVE_MAX_BYTES (size, K/M/G/T suffixes), QFORGE_ARCHIVE_MAX_RATIO,
 * QFORGE_ARCHIVE_MAX_MEMBERS. The temp folder is removed at exit and on
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT, and qf_cli_report then names archive
 * members instead of temp paths. Returns 0 or a negative code with a message.
 */
int qf_tool_model_path(const char *path, const char **folder, qf_err *err);

/* The archive `folder` came from (borrowed), or NULL. */
const qf_archive *qf_tool_archive_of(const char *folder);

/* `path` as the user knows it: a path inside an unpacked archive as
 * "<archive>:<member>" (into buf, returned); others unchanged. */
const char *qf_tool_display_path(const char *path, char *buf, size_t cap);

/* The help text paragraph on archives, for each tool's --help. */
extern const char qf_tool_archive_help[];

#endif
