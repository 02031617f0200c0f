/*
 * formats/archive.h - a model folder packed in an archive, read through
 * libarchive: .tar, .tar.gz (.tgz), .tar.zst (.tzst), .zip.
 *
 * The archive holds one model folder, at its root or one level down:
 *
 *   stories260K.tar.zst              stories260K.zip
 *   +-- config.json                  +-- stories260K/
 *   +-- model.safetensors            |   +-- config.json
 *   +-- tokenizer.model              |   +-- model.safetensors
 *   +-- ...                          |   +-- original/notes.txt   (skipped)
 *                                    +-- README.md                (skipped)
 *
 * A candidate model folder is the root or a top-level folder that directly
 * holds config.json or a weight file (*.safetensors, *.bin, *.pt, *.pth);
 * there must be exactly one. Leading "./" is dropped from names (what
 * `tar -C dir .` writes).
 *
 * Only the files a model folder needs are taken, from the model folder
 * itself (no subfolder): config.json, generation_config.json, tokenizer.json,
 * tokenizer_config.json, tokenizer.model, special_tokens_map.json,
 * added_tokens.json, vocab.json, merges.txt, *.safetensors,
 * *.safetensors.index.json, *.bin, *.bin.index.json, *.pt, *.pth (but not a
 * trainer's side files: training_args.bin, optimizer.*, scheduler.pt,
 * scaler.pt, rng_state*.pth). Hidden files are skipped.
 *
 * Where they go: a fresh folder "<tmp_parent>/qforge-XXXXXX" (mkdtemp, mode
 * 0700) holding "<slot>/<folder name>/<file>", where <folder name> is the
 * archive's top-level folder, or the archive's stem for a root-level model
 * (so the model's name in its metadata is the same as for the unpacked
 * folder). No name from the archive is used as a path beyond one checked
 * component; files are created O_EXCL | O_NOFOLLOW. qf_archive_close
 * removes everything it made.
 *
 * In place, no copy: a member whose bytes are contiguous in the archive file
 * (every member of an uncompressed .tar, STORED members of a .zip) gets an
 * empty placeholder file bound to its byte range (qf_map_alias_add in
 * formats/file.h), so the readers map the archive itself. Compressed
 * members are extracted.
 *
 * Refused, each with one line "<archive>: member "<name>": <reason>":
 *   - absolute names, ".." components, empty or "." components inside a
 *     name, backslashes or control bytes in a name;
 *   - symbolic links, hard links, device nodes, FIFOs, sockets, encrypted
 *     or sparse members;
 *   - the same name twice;
 *   - more than one level below the model folder (so below 3 components
 *     when the model folder is a top-level one, 2 when it is the root);
 *   - zero or several candidate model folders;
 *   - limits (qf_archive_limits): member count; total uncompressed bytes;
 *     uncompressed bytes so far over ratio x compressed bytes read so far
 *     (+ 1 MiB), checked on every block so a bomb stops early; bytes
 *     written over the temp folder's free space (statvfs) minus a margin;
 *   - a truncated or corrupt archive, or one whose content is not what its
 *     extension says (only the formats and filters the name announces are
 *     enabled).
 * On any refusal the files already written are removed.
 */
#ifndef QF_ARCHIVE_H
#define QF_ARCHIVE_H

#include <stdint.h>

#include "formats/error.h"

typedef enum qf_archive_kind {
    QF_ARCHIVE_NONE = 0,
    QF_ARCHIVE_TAR,     /* .tar */
    QF_ARCHIVE_TAR_GZ,  /* .tar.gz, .tgz */
    QF_ARCHIVE_TAR_ZST, /* .tar.zst, .tzst */
    QF_ARCHIVE_ZIP,     /* .zip */
} qf_archive_kind;

/* The kind a file name announces (case-insensitive), or QF_ARCHIVE_NONE. */
qf_archive_kind qf_archive_kind_of(const char *path);

/* Caps against hostile archives (plain value struct). */
typedef struct qf_archive_limits {
    uint64_t max_bytes;   /* uncompressed bytes of all members, default 256 GiB */
    uint64_t max_ratio;   /* uncompressed : compressed, default 200 */
    uint64_t max_members; /* entries of any type, default 10000 */
    uint64_t margin;      /* bytes left free in the temp folder's file system, default 64 MiB */
} qf_archive_limits;

void qf_archive_limits_default(qf_archive_limits *lim);

typedef struct qf_archive qf_archive;

/* One member placed in the model folder (plain value struct, borrowed). */
typedef struct qf_archive_member {
    const char *name;   /* as in the archive, without a leading "./" */
    const char *path;   /* the file in the model folder (NULL when only scanned) */
    uint64_t size;      /* bytes */
    int in_place;       /* 1: read from the archive file, bytes [offset, offset + size) */
    uint64_t offset;
} qf_archive_member;

/*
 * Prepare to read the archive `path` (mapped read-only; nothing is written
 * yet). `tmp_parent` is the folder the temp folder goes in (NULL: $TMPDIR,
 * else /tmp); `lim` may be NULL (defaults). Returns 0 and sets *out (owned by
 * the caller: qf_archive_close), or QF_EINVAL (not an archive name), QF_EIO,
 * QF_ENOMEM.
 */
int qf_archive_open(const char *path, const char *tmp_parent, const qf_archive_limits *lim,
                    qf_archive **out, qf_err *err);

/*
 * Same over a caller's buffer (borrowed; must outlive the handle) holding an
 * archive of `kind`; `name` is used in messages and for the folder name.
 * With tmp_parent NULL, qf_archive_unpack only checks the archive and
 * writes nothing (qf_archive_dir is then NULL). Members are never in place.
 * The entry point for fuzzing.
 */
int qf_archive_open_buffer(const void *buf, uint64_t size, const char *name, qf_archive_kind kind,
                           const char *tmp_parent, const qf_archive_limits *lim,
                           qf_archive **out, qf_err *err);

/*
 * Read the archive through, checking every member, and build the model
 * folder. Returns 0, or QF_EFORMAT / QF_ETRUNC / QF_ELIMIT /
 * QF_EUNSUPPORTED / QF_ENOTFOUND / QF_EIO / QF_ENOMEM with one line naming
 * the archive, the member and the reason; everything written is then
 * removed again. Call once.
 */
int qf_archive_unpack(qf_archive *a, qf_err *err);

/* The model folder (borrowed), or NULL before a successful unpack. */
const char *qf_archive_dir(const qf_archive *a);

/* The temp folder holding it (borrowed), or NULL if none was made. */
const char *qf_archive_tmp(const qf_archive *a);

/* The archive's path or name (borrowed). */
const char *qf_archive_path(const qf_archive *a);

/* The model folder's name inside the archive: "" for the root (borrowed). */
const char *qf_archive_folder(const qf_archive *a);

/* Members placed in the model folder, in archive order; entries seen. */
int64_t qf_archive_member_count(const qf_archive *a);
const qf_archive_member *qf_archive_member_at(const qf_archive *a, int64_t i); /* NULL if out of range */
uint64_t qf_archive_entries_seen(const qf_archive *a);

/*
 * Rewrite paths inside the model folder in err's message as
 * "<archive>:<member name>", so a reader's message names what the user has.
 */
void qf_archive_fix_err(const qf_archive *a, qf_err *err);

/*
 * Remove every file and folder made so far (newest first), without freeing
 * anything: only unlink(2) and rmdir(2) on paths recorded before each was
 * created, so it is safe in a signal handler. The handle stays valid.
 */
void qf_archive_remove_files(qf_archive *a);

/* Remove what was made (qf_archive_remove_files), unbind placeholders, unmap
 * and free. Accepts NULL. */
void qf_archive_close(qf_archive *a);

#endif /* QF_ARCHIVE_H */
