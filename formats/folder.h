/*
 * formats/folder.h - model folders: joining paths and listing the files of a
 * folder that end in given suffixes, as the safetensors and PyTorch readers
 * look for their files.
 */
#ifndef QF_FOLDER_H
#define QF_FOLDER_H

#include <stddef.h>

#include "formats/error.h"

/* "dir/name", without doubling a trailing slash; owned by the caller (free),
 * NULL when out of memory. */
char *qf_path_join(const char *dir, const char *name);

/* 1 if `path` is a regular file (after symlinks), else 0. */
int qf_path_is_regular(const char *path);

/*
 * Names in `dir` (not hidden, regular files after symlinks) ending in one of
 * the n_suffixes suffixes and not refused by `skip` (NULL: none is), sorted
 * by strcmp. *names is owned by the caller (qf_folder_names_free). Returns 0,
 * QF_EIO (the folder cannot be read) or QF_ENOMEM, with a message naming dir.
 */
int qf_folder_list(const char *dir, const char *const *suffixes, size_t n_suffixes,
                   int (*skip)(const char *name), char ***names, size_t *count, qf_err *err);

void qf_folder_names_free(char **names, size_t n); /* accepts NULL */

/* "a, b, c" of the n names into buf (cut to fit cap); returns buf. */
const char *qf_folder_names_join(char *buf, size_t cap, char *const *names, size_t n);

#endif /* QF_FOLDER_H */
