/*
 * formats/shard_index.h - the index of a sharded checkpoint, as Hugging Face
 * writes it for safetensors and PyTorch alike:
 *
 *   { "metadata": {...}, "weight_map": { "<tensor name>": "<shard file>", ... } }
 *
 * Checked here, once for both formats: weight_map is a non-empty object of
 * strings; shard names are plain file names in the index's folder (no '/',
 * '\', "." or ".."); no tensor is listed twice; every shard named exists
 * (all are checked before any is read, so a missing shard is what gets
 * reported). While the caller reads the shards it claims each tensor it
 * finds; a tensor not listed, or listed in another shard, is an error, and
 * so, at the end, is a listed tensor no shard had.
 */
#ifndef QF_SHARD_INDEX_H
#define QF_SHARD_INDEX_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "formats/error.h"

typedef struct qf_shard_index qf_shard_index;

/*
 * Build from the parsed index (`root`, a JSON object; names are borrowed from
 * it, so it must outlive the index). Returns 0 and sets *out (owned by the
 * caller: qf_shard_index_free), or QF_EFORMAT / QF_ENOTFOUND / QF_EIO /
 * QF_ENOMEM with a message starting with `index_path`.
 */
int qf_shard_index_build(const char *index_path, const cJSON *root, qf_shard_index **out,
                         qf_err *err);

void qf_shard_index_free(qf_shard_index *ix); /* accepts NULL */

/* Distinct shards, sorted by name: count, file name, path beside the index. */
size_t qf_shard_index_count(const qf_shard_index *ix);
const char *qf_shard_index_name(const qf_shard_index *ix, size_t shard);
const char *qf_shard_index_path(const qf_shard_index *ix, size_t shard);

/* Tensor `name` was found in shard `shard`: 0, or QF_EFORMAT if weight_map
 * does not list it or lists it in another shard. */
int qf_shard_index_claim(qf_shard_index *ix, const char *name, size_t shard, qf_err *err);

/* After every shard was read: 0, or QF_ENOTFOUND naming a listed tensor that
 * no shard held. */
int qf_shard_index_check_all(const qf_shard_index *ix, qf_err *err);

#endif /* QF_SHARD_INDEX_H */
