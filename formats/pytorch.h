/*
 * formats/pytorch.h - PyTorch checkpoints (torch.save, torch >= 1.6), read
 * without running any pickle code.
 *
 * The file is a zip archive (formats/zip.h) whose members sit in one folder,
 * <root> (the file's stem when torch wrote it: "pytorch_model", "archive"):
 *
 *   <root>/data.pkl        the pickled object (usually a state dict), STORED
 *   <root>/data/<key>      one member per storage: its raw bytes, STORED,
 *                          starting on a 64-byte boundary in the file
 *   <root>/version         format version, decimal text ("3\n"); newer torch
 *                          may write <root>/.data/version instead or as well
 *   <root>/byteorder       "little" or "big" (torch >= 2.1; absent = little)
 *   others                 (.data/serialization_id, .format_version, ...)
 *                          are ignored
 *
 * data.pkl, as torch.save writes a state dict (pickle protocol 2 by default,
 * any of 1..5 here; formats/pickle.h reads it):
 *
 *   OrderedDict{ "<name>": T, ... }            (BUILD may attach _metadata)
 *   T = torch._utils._rebuild_tensor_v2(S, storage_offset, size, stride,
 *                                       requires_grad, backward_hooks[, metadata])
 *     | torch._utils._rebuild_tensor(S, storage_offset, size, stride)
 *     | torch._utils._rebuild_tensor_v3(S, storage_offset, size, stride,
 *                                       requires_grad, backward_hooks, dtype[, metadata])
 *     | torch._utils._rebuild_parameter(T, requires_grad, backward_hooks)
 *     | torch._utils._rebuild_parameter_with_state(T, requires_grad, hooks, state)
 *     | torch._tensor._rebuild_from_type_v2(<one of the rebuilders>, cls, args, state)
 *   S = BINPERSID ("storage", torch.<Type>Storage, "<key>", "<location>", numel)
 *
 *   The storage's bytes are <root>/data/<key>: numel elements of the storage
 *   type (torch.UntypedStorage: numel bytes, the dtype then comes from v3's
 *   dtype argument). The tensor is the strided view: element (i0, i1, ...)
 *   is storage element storage_offset + i0*stride[0] + i1*stride[1] + ...
 *   Several tensors may view one storage (tied weights, slices).
 *
 *   Storage types and dtypes read: FloatStorage F32, DoubleStorage F64,
 *   HalfStorage F16, BFloat16Storage BF16, LongStorage I64, IntStorage I32,
 *   ShortStorage I16, CharStorage I8, ByteStorage U8, BoolStorage BOOL; with
 *   v3 also torch.uint16/uint32/uint64 and float8_e4m3fn/float8_e5m2.
 *
 * What the reader checks, beyond the zip and the pickle:
 *   - the file starts with "PK\3\4" (torch's own test); a pre-1.6 pickle
 *     ("legacy" format) or a TorchScript archive is refused by name;
 *   - every member is inside <root>/; data.pkl, version and byteorder are
 *     STORED, their CRC-32 matches; the byte order is little-endian;
 *   - every GLOBAL is in the allow-list below (anything else, e.g.
 *     os.system, builtins.eval, posix.system, subprocess.Popen, is refused
 *     with its module.name and byte offset);
 *   - every persistent id, used or not, is ("storage", <allowed storage
 *     type>, key, location, numel >= 0) whose member <root>/data/<key>
 *     exists, is STORED and holds exactly numel x element size bytes; a key
 *     declared twice must agree on type and numel;
 *   - every tensor rebuild, used or not, has the argument kinds above, at
 *     most QF_PT_MAX_DIMS dims, sizes, strides and offset >= 0, no neg/conj
 *     metadata bit set, and its view lies inside its storage:
 *     (storage_offset + sum((size[d]-1) * stride[d]) + 1) x element size <=
 *     storage bytes, all in exact 64-bit arithmetic;
 *   - the state dict: the top-level dict if it holds tensors, else the one
 *     nested dict holding tensors within three levels (e.g. {"state_dict":
 *     {...}} or {"model": {...}}; among several, the first of state_dict,
 *     model_state_dict, model, module, network, net, params, weights wins,
 *     else it is an error naming them); its keys must be non-empty str
 *     without NUL bytes, unique; values that are not tensors are skipped
 *     (counted in qf_pt_file_skipped).
 *
 * Data: a view that is contiguous (row-major, size-1 dims ignored) points
 * straight into the mapped file: zero copy, whatever its alignment (every
 * consumer reads unaligned). Any other view (a transposed or sliced weight)
 * is copied into an owned contiguous buffer at open, once per distinct
 * view; the copy may hold at most 4 x its storage's bytes + 1 MiB (stride-0
 * views can otherwise ask for any amount of memory) and all copies of a
 * file at most 4 x the file size + 16 MiB.
 *
 * Sharded models: "pytorch_model.bin.index.json" = { "weight_map": {
 * "<tensor name>": "<shard file>", ... }, ... } exactly as for safetensors:
 * every shard named must exist, every tensor in the map must be in its shard
 * and every tensor of a shard in the map; shard names are plain file names.
 *
 * Opening a folder: pytorch_model.bin.index.json; else its one
 * *.bin.index.json; else pytorch_model.bin; else its one *.bin / *.pt /
 * *.pth file that is not a trainer's side file (training_args.bin,
 * optimizer.pt, scheduler.pt, scaler.pt, rng_state*.pth).
 *
 * Tensor order, as every consumer sees it: shards sorted by file name, and
 * inside each file the state dict's own (pickle) order, which is what
 * llama.cpp's converter uses for .bin files. Tensor names are unique over
 * all shards.
 *
 * Checked layouts: torch 1.13.1 (Debian python3-torch), pickle protocols 1-5,
 * and the torch 2.x additions read from torch's sources (byteorder,
 * .data/version, _rebuild_tensor_v3 with UntypedStorage, _rebuild_parameter_
 * with_state, _rebuild_from_type_v2) in hand-made fixtures.
 */
#ifndef QF_PYTORCH_H
#define QF_PYTORCH_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/pickle.h"
#include "formats/safetensors.h" /* qf_st_tensor: the converter's common view */
#include "formats/types.h"

#define QF_PT_MAX_DIMS 8
#define QF_PT_INDEX_NAME "pytorch_model.bin.index.json"

typedef struct qf_pt qf_pt;

/*
 * One tensor (plain value struct, borrowed from the reader). The first
 * fields are those of qf_st_tensor, with the same meaning and order.
 */
typedef struct qf_pt_tensor {
    const char *name;               /* NUL-terminated, the state-dict key */
    qf_dtype dtype;
    uint32_t n_dims;                /* 0 for a scalar */
    uint64_t shape[QF_PT_MAX_DIMS]; /* row-major: shape[n_dims-1] moves fastest */
    uint64_t n_elements;            /* 1 for a scalar, 0 if any dim is 0 */
    uint64_t nbytes;                /* n_elements x element size */
    uint32_t file;                  /* shard index (see qf_pt_file_path) */
    uint64_t offset;                /* absolute file offset of the view's first element */
    const uint8_t *data;            /* contiguous bytes: in the mapping, or an owned copy */
    /* How PyTorch stored it. */
    const char *storage;            /* storage key ("0", "1", ...): <root>/data/<key> */
    uint64_t storage_offset;        /* in elements */
    int64_t stride[QF_PT_MAX_DIMS]; /* in elements */
    int materialized;               /* 1: data is an owned copy of a strided view */
    int64_t same_as;                /* index of the first tensor with the very same view, or -1 */
} qf_pt_tensor;

/* A GLOBAL the checkpoint's pickles reference (strings static). */
typedef struct qf_pt_global {
    const char *module, *name;
    uint64_t count; /* opcodes naming it, over all files */
} qf_pt_global;

/*
 * Open `path`: a checkpoint file (.bin/.pt/.pth or any name), an index
 * (a name ending in ".json"), or a folder (see above). Symlinks are
 * followed. Returns 0 and sets *out (owned by the caller: qf_pt_close), or
 * QF_EIO / QF_EFORMAT / QF_ETRUNC / QF_ELIMIT / QF_EUNSUPPORTED /
 * QF_ENOTFOUND / QF_EMISMATCH / QF_ENOMEM with one line naming the file,
 * the member or tensor, and for pickle errors the byte offset in data.pkl.
 */
int qf_pt_open(const char *path, qf_pt **out, qf_err *err);

/* Same over a caller's buffer (borrowed; must outlive the reader) holding one
 * checkpoint file. `name` is used in messages. The entry point for fuzzing. */
int qf_pt_open_buffer(const void *buf, uint64_t size, const char *name, qf_pt **out,
                      qf_err *err);

/* Free (owned copies included); accepts NULL. */
void qf_pt_close(qf_pt *pt);

/* Tensors in the order described above. */
int64_t qf_pt_tensor_count(const qf_pt *pt);
const qf_pt_tensor *qf_pt_tensor_at(const qf_pt *pt, int64_t i); /* NULL if out of range */
int64_t qf_pt_find(const qf_pt *pt, const char *name);            /* index or -1 */

/* Tensor i as a qf_st_tensor (borrowed; the same values as qf_pt_tensor_at),
 * so code written for safetensors reads checkpoints unchanged. */
const qf_st_tensor *qf_pt_tensor_st(const qf_pt *pt, int64_t i);

/* Files (shards): count, path (borrowed), size in bytes. */
uint32_t qf_pt_file_count(const qf_pt *pt);
const char *qf_pt_file_path(const qf_pt *pt, uint32_t file);
uint64_t qf_pt_file_size(const qf_pt *pt, uint32_t file);

/* Path of the index.json the model was opened through, or NULL. */
const char *qf_pt_index_path(const qf_pt *pt);

/* Per file: the archive's root folder; where the state dict was found ("" for
 * the top level, else the keys joined by '/', e.g. "state_dict" or
 * "model/state_dict"); the pickle protocol (0 if no PROTO); the format
 * version; values skipped in the state dict because they are not tensors. */
const char *qf_pt_file_root(const qf_pt *pt, uint32_t file);
const char *qf_pt_file_dict_path(const qf_pt *pt, uint32_t file);
int qf_pt_file_protocol(const qf_pt *pt, uint32_t file);
int qf_pt_file_version(const qf_pt *pt, uint32_t file);
uint64_t qf_pt_file_skipped(const qf_pt *pt, uint32_t file);

/* Every distinct GLOBAL referenced, in order of first appearance. */
int64_t qf_pt_global_count(const qf_pt *pt);
const qf_pt_global *qf_pt_global_at(const qf_pt *pt, int64_t i); /* NULL if out of range */

/*
 * Check the CRC-32 of every storage member a tensor views (reads all their
 * bytes). Returns 0 or QF_EMISMATCH naming the file and the member.
 */
int qf_pt_verify(const qf_pt *pt, qf_err *err);

/* The GLOBALs a checkpoint's pickle may name (static table; *n gets its
 * length): the tensor rebuilders, storage classes, dtypes, OrderedDict. */
const qf_pkl_allow *qf_pt_allow_list(size_t *n);

/* Give back the pages of tensor i once it has been consumed (a no-op for
 * owned copies, over a caller's buffer or for an index out of range). Pages
 * shared with another tensor are simply read again if that one is used. */
void qf_pt_release_tensor(const qf_pt *pt, int64_t i);

/* Same for bytes [off, off + len) of tensor i's data, clipped to the tensor. */
void qf_pt_release_range(const qf_pt *pt, int64_t i, uint64_t off, uint64_t len);

#endif /* QF_PYTORCH_H */
