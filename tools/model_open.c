#include "tools/model_open.h"

#include "formats/weights.h"
#include "tools/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---------------------------------------------------------------------
 * Archives
 * ------------------------------------------------------------------- */

#define MAX_ARCHIVES 4

static qf_archive *archives[MAX_ARCHIVES];
static volatile int n_archives;

const char qf_tool_archive_help[] =
    "MODEL may also be that folder packed as .tar, .tar.gz/.tgz, .tar.zst/.tzst\n"
    "or .zip (at the archive's root or one folder down). Members of a .tar and\n"
    "stored members of a .zip are read in place; compressed ones are extracted\n"
    "to a temp folder in $TMPDIR (else /tmp), removed on exit or interrupt.\n"
    "Hostile archives are refused (see docs/archives.md). Limits, from the\n"
    "environment: QFORGE_ARCHIVE_MAX_BYTES (default 256G),\n"
    "QFORGE_ARCHIVE_MAX_RATIO (200), QFORGE_ARCHIVE_MAX_MEMBERS (10000).\n";

/* At exit or on a signal: only unlink/rmdir (qf_archive_remove_files). */
static void remove_archives(void)
{
    int i;
    for (i = 0; i < n_archives; i++)
        qf_archive_remove_files(archives[i]);
}

static void fix_err(qf_err *err)
{
    int i;
    for (i = 0; i < n_archives; i++)
        qf_archive_fix_err(archives[i], err);
}

static int env_limit(const char *name, uint64_t min, uint64_t max, int sizes, uint64_t *v,
                     qf_err *err)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    if (qf_cli_parse_u64(s, min, max, sizes, v) != 0)
        return qf_err_set(err, QF_EINVAL, "%s: expected a number in [%llu, %llu]%s, got '%s'", name,
                          (unsigned long long)min, (unsigned long long)max,
                          sizes ? " (K/M/G/T suffixes allowed)" : "", s);
    return 0;
}

int qf_tool_model_path(const char *path, const char **folder, qf_err *err)
{
    qf_archive_limits lim;
    qf_archive *a = NULL;
    int rc, k;

    *folder = path;
    if (qf_archive_kind_of(path) == QF_ARCHIVE_NONE)
        return 0;
    if (n_archives >= MAX_ARCHIVES)
        return qf_err_set(err, QF_ELIMIT, "%s: too many archives", path);
    qf_archive_limits_default(&lim);
    if ((rc = env_limit("QFORGE_ARCHIVE_MAX_BYTES", 1, UINT64_MAX, 1, &lim.max_bytes, err)) != 0 ||
        (rc = env_limit("QFORGE_ARCHIVE_MAX_RATIO", 1, 1000000, 0, &lim.max_ratio, err)) != 0 ||
        (rc = env_limit("QFORGE_ARCHIVE_MAX_MEMBERS", 1, 100000000, 0, &lim.max_members, err)) != 0)
        return rc;
    if ((rc = qf_archive_open(path, NULL, &lim, &a, err)) != 0)
        return rc;
    k = n_archives;
    archives[k] = a;
    n_archives = k + 1; /* published before anything is written */
    qf_cli_on_exit(remove_archives);
    qf_cli_set_err_fixer(fix_err);
    if ((rc = qf_archive_unpack(a, err)) != 0)
        return rc; /* what was written is already gone */
    *folder = qf_archive_dir(a);
    {
        int64_t i, n = qf_archive_member_count(a), inplace = 0;
        for (i = 0; i < n; i++)
            inplace += qf_archive_member_at(a, i)->in_place;
        qf_cli_info(2, "%s: %lld members used (%lld in place, %lld extracted to %s)", path,
                    (long long)n, (long long)inplace, (long long)(n - inplace),
                    qf_archive_tmp(a) ? qf_archive_tmp(a) : "-");
    }
    return 0;
}

const char *qf_tool_display_path(const char *path, char *buf, size_t cap)
{
    qf_err e = { QF_EFORMAT, "" };
    snprintf(e.msg, sizeof e.msg, "%s", path);
    fix_err(&e);
    snprintf(buf, cap, "%s", e.msg);
    return buf;
}

const qf_archive *qf_tool_archive_of(const char *folder)
{
    int i;
    for (i = 0; folder && i < n_archives; i++) {
        const char *d = qf_archive_dir(archives[i]);
        if (d && strcmp(d, folder) == 0)
            return archives[i];
    }
    return NULL;
}

int qf_tool_sniff(const char *path, qf_err *err)
{
    struct stat st;
    unsigned char head[9];
    ssize_t n;
    int fd;

    if (stat(path, &st) != 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) || ends_with(path, ".json"))
        return QF_KIND_WEIGHTS;
    if (ends_with(path, ".gguf"))
        return QF_KIND_GGUF;
    if (ends_with(path, ".qfm"))
        return QF_KIND_QFM;
    if (ends_with(path, ".safetensors") || qf_weights_is_pytorch(path))
        return QF_KIND_WEIGHTS;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    n = read(fd, head, sizeof head);
    close(fd);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        return QF_KIND_GGUF;
    if (n >= 4 && memcmp(head, "QFM", 4) == 0)
        return QF_KIND_QFM;
    if (n == 9 && head[8] == '{')
        return QF_KIND_WEIGHTS;
    return qf_err_set(err, QF_EFORMAT, "%s: not a GGUF, safetensors or PyTorch file", path);
}
