/*
 * tests/testutil.h - what the unit tests share: the source tree's folder,
 * a temp folder per test binary, and whole-file reads and writes that fail
 * the test (cmocka) when the file system does not do what is asked.
 *
 * Header-only (static functions marked unused), so each test includes it
 * and the Makefile's one-source-per-test rule stays as it is. Paths handed
 * back in rotating static buffers stay valid for the next 7 calls of the
 * same function.
 */
#ifndef QF_TESTS_TESTUTIL_H
#define QF_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TU_UNUSED __attribute__((unused))
#define TU_PATH_MAX 2048

/* The source tree: $QF_ROOT, else "." (borrowed). */
static TU_UNUSED const char *tu_root(void)
{
    const char *r = getenv("QF_ROOT");
    return r && *r ? r : ".";
}

/* "dir/name" (rotating static buffer). */
static TU_UNUSED char *tu_path(const char *dir, const char *name)
{
    static char buf[8][TU_PATH_MAX];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* A file of the source tree, "<root>/rel" (rotating static buffer, apart
 * from tu_path's). */
static TU_UNUSED char *tu_fixture(const char *rel)
{
    static char buf[8][TU_PATH_MAX];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", tu_root(), rel);
    return p;
}

/* A new folder "/tmp/qf_test_<name>.XXXXXX" into buf (cap bytes). Returns
 * 0, or -1 if it could not be made. */
static TU_UNUSED int tu_mkdtemp(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "/tmp/qf_test_%s.XXXXXX", name);
    return mkdtemp(buf) ? 0 : -1;
}

/* The same, the name owned by the caller (free); fails the test if the
 * folder could not be made. */
static TU_UNUSED char *tu_tmpdir(const char *name)
{
    char buf[256];
    if (tu_mkdtemp(buf, sizeof buf, name) != 0)
        fail_msg("cannot make a folder in /tmp");
    return strdup(buf);
}

/* rm -r dir (links are removed, not followed). Returns 0, or -1 if
 * anything is left. */
static TU_UNUSED int tu_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat sb;
    int rc = 0;

    if (!d)
        return unlink(dir) == 0 ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        char p[TU_PATH_MAX];
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rc |= tu_rm_tree(p);
        else if (unlink(p) != 0)
            rc = -1;
    }
    closedir(d);
    return rmdir(dir) == 0 && rc == 0 ? 0 : -1;
}

/* Entries in a folder other than "." and "..". */
static TU_UNUSED int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* The whole file, NUL-terminated (owned by the caller: free); its size in
 * *n. Fails the test if it cannot be read. */
static TU_UNUSED void *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long sz;

    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    sz = ftell(f);
    assert_true(sz >= 0);
    rewind(f);
    p = malloc((size_t)sz + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    p[sz] = '\0';
    *n = (size_t)sz;
    return p;
}

/* Write n bytes as the whole file; fails the test on any error. */
static TU_UNUSED void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static TU_UNUSED void tu_write_text(const char *path, const char *s)
{
    tu_write_file(path, s, strlen(s));
}

#endif /* QF_TESTS_TESTUTIL_H */
