/*
 * formats/weights.h - the weight files of a Hugging Face model, whatever
 * their format: safetensors (one file, shards with an index) or PyTorch
 * checkpoints (pytorch_model.bin, shards with an index, .pt/.pth), seen the
 * same way: a list of qf_st_tensor views.
 *
 * A folder holding both is read through its safetensors, as llama.cpp's
 * converter does. Tensor order is each format's own: safetensors by file
 * name then tensor name, PyTorch by file name then state-dict order.
 */
#ifndef QF_WEIGHTS_H
#define QF_WEIGHTS_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/pytorch.h"
#include "formats/safetensors.h"

typedef struct qf_weights qf_weights;

/*
 * Open a folder, a .safetensors / .bin / .pt / .pth file, or an index.json.
 * Returns 0 and sets *out (owned by the caller: qf_weights_close), or a
 * negative code; a folder with neither format gives QF_ENOTFOUND.
 */
int qf_weights_open(const char *path, qf_weights **out, qf_err *err);

void qf_weights_close(qf_weights *w); /* accepts NULL */

/* "safetensors" or "pytorch". */
const char *qf_weights_format(const qf_weights *w);

/* The underlying reader (borrowed), for format-specific details; NULL for
 * the other format. */
const qf_st *qf_weights_st(const qf_weights *w);
const qf_pt *qf_weights_pt(const qf_weights *w);

int64_t qf_weights_count(const qf_weights *w);
const qf_st_tensor *qf_weights_at(const qf_weights *w, int64_t i); /* NULL if out of range */
int64_t qf_weights_find(const qf_weights *w, const char *name);     /* index or -1 */

uint32_t qf_weights_file_count(const qf_weights *w);
const char *qf_weights_file_path(const qf_weights *w, uint32_t file);

/* A safetensors __metadata__ value (any shard), or NULL (always NULL for
 * PyTorch checkpoints). */
const char *qf_weights_meta_get(const qf_weights *w, const char *key);

/* Give back the pages of tensor i, or of bytes [off, off + len) of it. */
void qf_weights_release_tensor(const qf_weights *w, int64_t i);
void qf_weights_release_range(const qf_weights *w, int64_t i, uint64_t off, uint64_t len);

/* 1 if `path` names a PyTorch checkpoint (by extension, index name, or a zip
 * or legacy pickle signature), else 0. */
int qf_weights_is_pytorch(const char *path);

#endif /* QF_WEIGHTS_H */
