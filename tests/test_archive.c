/*
 * tests/test_archive.c - model folders in archives (formats/archive) and the
 * placeholder bindings they use (qf_map_alias_add in formats/file).
 *
 * Archives are written in memory with libarchive's writer, so each test
 * says exactly what its archive holds.
 */
#include "tests/testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/archive.h"
#include "formats/file.h"

static char dir[256], tmp[300];

static int setup(void **state)
{
    (void)state;
    if (tu_mkdtemp(dir, sizeof dir, "archive") != 0)
        return -1;
    snprintf(tmp, sizeof tmp, "%s/t", dir);
    return mkdir(tmp, 0700);
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

/* ---------------------------------------------------------------------
 * Writing test archives
 * ------------------------------------------------------------------- */

typedef struct ent {
    const char *name;
    int type;             /* (int)AE_IFREG (0 means the same), AE_IFDIR, AE_IFLNK, ...; -1 hard link */
    const void *data;
    size_t len;
    const char *link;     /* symlink target, or hard link target with type -1 */
    int deflate;          /* zip: 1 deflated, 0 stored */
} ent;

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf;

static const char CONFIG[] = "{\"architectures\": [\"LlamaForCausalLM\"]}\n";

static buf build(qf_archive_kind kind, const ent *e, size_t n)
{
    struct archive *a = archive_write_new();
    size_t cap = 64u << 20, used = 0, i;
    buf b = { malloc(cap), 0 };

    assert_non_null(a);
    assert_non_null(b.p);
    if (kind == QF_ARCHIVE_ZIP) {
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (kind == QF_ARCHIVE_TAR_GZ)
            assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        if (kind == QF_ARCHIVE_TAR_ZST)
            assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, b.p, cap, &used), ARCHIVE_OK);
    for (i = 0; i < n; i++) {
        struct archive_entry *x = archive_entry_new();
        int type = e[i].type ? e[i].type : (int)AE_IFREG;
        if (kind == QF_ARCHIVE_ZIP)
            assert_int_equal(e[i].deflate ? archive_write_zip_set_compression_deflate(a)
                                          : archive_write_zip_set_compression_store(a),
                             ARCHIVE_OK);
        archive_entry_set_pathname(x, e[i].name);
        archive_entry_set_mtime(x, 1700000000, 0);
        if (type == -1) {
            archive_entry_set_filetype(x, AE_IFREG);
            archive_entry_set_hardlink(x, e[i].link);
        } else {
            archive_entry_set_filetype(x, (unsigned)type);
            if (type == AE_IFLNK)
                archive_entry_set_symlink(x, e[i].link);
        }
        archive_entry_set_perm(x, type == AE_IFDIR ? 0755 : 0644);
        archive_entry_set_size(x, type == AE_IFREG ? (la_int64_t)e[i].len : 0);
        assert_true(archive_write_header(a, x) >= ARCHIVE_WARN);
        if (type == AE_IFREG && e[i].len)
            assert_int_equal(archive_write_data(a, e[i].data, e[i].len), (la_ssize_t)e[i].len);
        archive_entry_free(x);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    b.n = used;
    return b;
}

static void save(const char *path, buf b)
{
    tu_write_file(path, b.p, b.n);
}

/* Bytes of a deterministic, incompressible pattern. */
static uint8_t *noise(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    size_t i;
    assert_non_null(p);
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
    return p;
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------- */

static void test_kind_of(void **state)
{
    (void)state;
    assert_int_equal(qf_archive_kind_of("a/m.tar"), QF_ARCHIVE_TAR);
    assert_int_equal(qf_archive_kind_of("m.TAR.GZ"), QF_ARCHIVE_TAR_GZ);
    assert_int_equal(qf_archive_kind_of("m.tgz"), QF_ARCHIVE_TAR_GZ);
    assert_int_equal(qf_archive_kind_of("m.tar.zst"), QF_ARCHIVE_TAR_ZST);
    assert_int_equal(qf_archive_kind_of("m.tzst"), QF_ARCHIVE_TAR_ZST);
    assert_int_equal(qf_archive_kind_of("m.zip"), QF_ARCHIVE_ZIP);
    assert_int_equal(qf_archive_kind_of("pytorch_model.bin"), QF_ARCHIVE_NONE);
    assert_int_equal(qf_archive_kind_of("m.gz"), QF_ARCHIVE_NONE);
    assert_int_equal(qf_archive_kind_of("folder"), QF_ARCHIVE_NONE);
}

static void test_alias(void **state)
{
    char target[320], ph[320];
    uint8_t *data = noise(3 * 4096 + 123, 7);
    qf_map *m = NULL;
    qf_err err = { 0 };
    FILE *f;
    (void)state;

    snprintf(target, sizeof target, "%s/target.bin", dir);
    snprintf(ph, sizeof ph, "%s/placeholder", dir);
    f = fopen(target, "wb");
    fwrite(data, 1, 3 * 4096 + 123, f);
    fclose(f);
    fclose(fopen(ph, "wb"));
    assert_int_equal(qf_map_alias_add(ph, target, 4000, 5000, &err), 0);
    assert_int_equal(qf_map_open(ph, &m, &err), 0);
    assert_int_equal(qf_map_size(m), 5000);
    assert_memory_equal(qf_map_data(m), data + 4000, 5000);
    qf_map_release(m, 0, 5000); /* pages go, bytes stay readable */
    assert_memory_equal(qf_map_data(m), data + 4000, 5000);
    qf_map_close(m);
    /* past the end of the target */
    qf_map_alias_remove(ph);
    assert_int_equal(qf_map_alias_add(ph, target, 12000, 5000, &err), 0);
    assert_int_equal(qf_map_open(ph, &m, &err), QF_ETRUNC);
    assert_null(m);
    qf_map_alias_remove(ph);
    /* unbound: the placeholder itself (empty) */
    qf_err_clear(&err);
    assert_int_equal(qf_map_open(ph, &m, &err), 0);
    assert_int_equal(qf_map_size(m), 0);
    qf_map_close(m);
    unlink(ph);
    unlink(target);
    free(data);
}

/* A model folder: config.json, model.safetensors (noise), tokenizer.json,
 * plus a README that is not taken. `prefix` is "" or "name/". */
static void check_unpack(qf_archive_kind kind, const char *file, const char *prefix, int deflate,
                         int want_in_place)
{
    char names[4][64], path[320];
    uint8_t *w = noise(300000, 1);
    ent e[4];
    buf b;
    qf_archive *a = NULL;
    qf_err err = { 0 };
    qf_map *m = NULL;
    int64_t i;

    snprintf(names[0], 64, "%sconfig.json", prefix);
    snprintf(names[1], 64, "%smodel.safetensors", prefix);
    snprintf(names[2], 64, "%stokenizer.json", prefix);
    snprintf(names[3], 64, "%sREADME.md", prefix);
    memset(e, 0, sizeof e);
    e[0] = (ent){ names[0], 0, CONFIG, sizeof CONFIG - 1, NULL, deflate };
    e[1] = (ent){ names[1], 0, w, 300000, NULL, deflate };
    e[2] = (ent){ names[2], 0, "{}", 2, NULL, deflate };
    e[3] = (ent){ names[3], 0, "# hi\n", 5, NULL, deflate };
    b = build(kind, e, 4);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    save(path, b);

    assert_int_equal(qf_archive_open(path, tmp, NULL, &a, &err), 0);
    assert_int_equal(qf_archive_unpack(a, &err), 0);
    assert_string_equal(err.msg, "");
    assert_int_equal(qf_archive_member_count(a), 3); /* not README.md */
    assert_int_equal(qf_archive_entries_seen(a), 4);
    {   /* the folder is named after the archive's folder, or its stem */
        const char *d = qf_archive_dir(a), *base = strrchr(d, '/') + 1;
        assert_string_equal(base, prefix[0] ? "stories" : "model-root");
    }
    for (i = 0; i < 3; i++) {
        const qf_archive_member *mb = qf_archive_member_at(a, i);
        assert_string_equal(mb->name, names[i]);
        assert_int_equal(mb->size, e[i].len);
        assert_int_equal(mb->in_place, want_in_place);
        assert_int_equal(qf_map_open(mb->path, &m, &err), 0);
        assert_int_equal(qf_map_size(m), e[i].len);
        assert_memory_equal(qf_map_data(m), e[i].data, e[i].len);
        if (mb->in_place)
            assert_memory_equal(b.p + mb->offset, e[i].data, e[i].len);
        qf_map_close(m);
    }
    assert_null(qf_archive_member_at(a, 3));
    /* a message naming a path inside is rewritten to the archive member */
    {
        qf_err e2 = { 0 };
        char want[400];
        qf_err_set(&e2, QF_EFORMAT, "%s/config.json: bad key", qf_archive_dir(a));
        qf_archive_fix_err(a, &e2);
        snprintf(want, sizeof want, "%s:%sconfig.json: bad key", path, prefix);
        assert_string_equal(e2.msg, want);
    }
    assert_int_equal(tu_count_entries(tmp), 1);
    qf_archive_close(a);
    assert_int_equal(tu_count_entries(tmp), 0);
    unlink(path);
    free(b.p);
    free(w);
}

static void test_tar_in_place(void **state)
{
    (void)state;
    check_unpack(QF_ARCHIVE_TAR, "model-root.tar", "", 0, 1);
    check_unpack(QF_ARCHIVE_TAR, "x.tar", "stories/", 0, 1);
}

static void test_compressed_extracted(void **state)
{
    (void)state;
    check_unpack(QF_ARCHIVE_TAR_GZ, "model-root.tar.gz", "", 0, 0);
    check_unpack(QF_ARCHIVE_TAR_ZST, "x.tar.zst", "stories/", 0, 0);
    check_unpack(QF_ARCHIVE_ZIP, "x.zip", "stories/", 1, 0);
}

static void test_zip_stored_in_place(void **state)
{
    (void)state;
    check_unpack(QF_ARCHIVE_ZIP, "model-root.zip", "", 0, 1);
}

/* Scan a buffer (nothing written); expect code and a message substring. */
static void refused(qf_archive_kind kind, const ent *e, size_t n, const qf_archive_limits *lim,
                    int code, const char *want)
{
    buf b = build(kind, e, n);
    qf_archive *a = NULL;
    qf_err err = { 0 };

    assert_int_equal(qf_archive_open_buffer(b.p, b.n, "evil.tar", kind, NULL, lim, &a, &err), 0);
    assert_int_equal(qf_archive_unpack(a, &err), code);
    if (!strstr(err.msg, want) || strncmp(err.msg, "evil.tar: ", 10) != 0 || strchr(err.msg, '\n')) {
        print_error("message: %s\nwanted:  %s\n", err.msg, want);
        fail();
    }
    assert_null(qf_archive_dir(a));
    qf_archive_close(a);
    free(b.p);
}

static void test_refusals(void **state)
{
    const char *c = CONFIG;
    size_t cl = sizeof CONFIG - 1;
    (void)state;
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/../../x.json", 0, c, cl, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/../../x.json\": path traversal");
    }
    {
        ent e[] = { { "/etc/config.json", 0, c, cl, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 1, NULL, QF_EFORMAT, "member \"/etc/config.json\": absolute path");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/x.json", AE_IFLNK, NULL, 0, "/etc/passwd", 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/x.json\": symbolic link");
        refused(QF_ARCHIVE_ZIP, e, 2, NULL, QF_EFORMAT, "member \"m/x.json\": symbolic link");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/x.bin", -1, NULL, 0, "m/config.json", 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/x.bin\": hard link");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/dev", AE_IFCHR, NULL, 0, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/dev\": device node");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "./m/config.json", 0, c, cl, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/config.json\": appears twice");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/a/b/c.txt", 0, "x", 1, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/a/b/c.txt\": nested more than one");
    }
    {   /* one level below a root-level model is fine, two are not */
        ent e[] = { { "config.json", 0, c, cl, NULL, 0 }, { "a/b/c.txt", 0, "x", 1, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"a/b/c.txt\": nested more than one");
    }
    {
        ent e[] = { { "a/config.json", 0, c, cl, NULL, 0 }, { "b/model.safetensors", 0, "x", 1, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "two model folders: \"a\" and \"b\"");
    }
    {
        ent e[] = { { "README.md", 0, "x", 1, NULL, 0 }, { "docs/config.txt", 0, "x", 1, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_ENOTFOUND, "no model folder");
    }
    {
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/a\nb", 0, "x", 1, NULL, 0 } };
        refused(QF_ARCHIVE_TAR, e, 2, NULL, QF_EFORMAT, "member \"m/a\\x0ab\": control character");
    }
    {
        qf_archive_limits lim;
        ent e[] = { { "m/config.json", 0, c, cl, NULL, 0 }, { "m/a", 0, "x", 1, NULL, 0 },
                    { "m/b", 0, "x", 1, NULL, 0 } };
        qf_archive_limits_default(&lim);
        lim.max_members = 2;
        refused(QF_ARCHIVE_TAR, e, 3, &lim, QF_ELIMIT, "member \"m/b\": more than 2 members");
        qf_archive_limits_default(&lim);
        lim.max_bytes = cl;
        refused(QF_ARCHIVE_TAR, e, 3, &lim, QF_ELIMIT, "member \"m/a\": the members announce more than");
    }
}

/* A bomb whose headers pass (the archive is big enough for what they
 * announce) is stopped by the count of bytes out against bytes read, while
 * the bomb streams, long before its end. */
static void test_ratio_streaming(void **state)
{
    size_t z = 5u << 20, r = (9u << 20) / 2;
    uint8_t *zeros = calloc(1, z), *rnd = noise(r, 3);
    ent e[] = { { "m/config.json", 0, CONFIG, sizeof CONFIG - 1, NULL, 0 },
                { "m/pytorch_model.bin", 0, zeros, z, NULL, 0 },
                { "m/tokenizer.json", 0, rnd, r, NULL, 0 } };
    qf_archive_limits lim;
    char path[320];
    qf_archive *a = NULL;
    qf_err err = { 0 };
    buf b;
    (void)state;

    qf_archive_limits_default(&lim);
    lim.max_ratio = 2;
    b = build(QF_ARCHIVE_TAR_GZ, e, 3);
    assert_true(b.n > (z + r) / 2 - (1u << 20)); /* the header check lets it through */
    refused(QF_ARCHIVE_TAR_GZ, e, 3, &lim, QF_ELIMIT,
            "member \"m/pytorch_model.bin\": expands more than 2:1");
    /* the same from a file: nothing is left in the temp folder */
    snprintf(path, sizeof path, "%s/bomb.tar.gz", dir);
    save(path, b);
    assert_int_equal(qf_archive_open(path, tmp, &lim, &a, &err), 0);
    assert_int_equal(qf_archive_unpack(a, &err), QF_ELIMIT);
    assert_int_equal(tu_count_entries(tmp), 0);
    qf_archive_close(a);
    unlink(path);
    free(b.p);
    free(zeros);
    free(rnd);
}

static void test_remove_files(void **state)
{
    ent e[] = { { "m/config.json", 0, CONFIG, sizeof CONFIG - 1, NULL, 0 } };
    buf b = build(QF_ARCHIVE_TAR_GZ, e, 1);
    qf_archive *a = NULL;
    qf_err err = { 0 };
    (void)state;

    assert_int_equal(qf_archive_open_buffer(b.p, b.n, "m.tar.gz", QF_ARCHIVE_TAR_GZ, tmp, NULL, &a,
                                            &err), 0);
    assert_int_equal(qf_archive_unpack(a, &err), 0);
    assert_int_equal(qf_archive_member_count(a), 1);
    assert_int_equal(tu_count_entries(tmp), 1);
    qf_archive_remove_files(a); /* what a signal handler does */
    assert_int_equal(tu_count_entries(tmp), 0);
    assert_int_equal(qf_archive_unpack(a, &err), QF_EINVAL); /* once only */
    qf_archive_close(a);
    free(b.p);
}

static void test_not_archive(void **state)
{
    static const char text[] = "just some text, not an archive at all\n";
    qf_archive *a = NULL;
    qf_err err = { 0 };
    (void)state;

    assert_int_equal(qf_archive_open("model.safetensors", tmp, NULL, &a, &err), QF_EINVAL);
    assert_null(a);
    qf_err_clear(&err);
    assert_int_equal(qf_archive_open_buffer(text, sizeof text - 1, "x.zip", QF_ARCHIVE_ZIP, NULL, NULL,
                                            &a, &err), 0);
    assert_int_equal(qf_archive_unpack(a, &err), QF_EFORMAT);
    assert_non_null(strstr(err.msg, "x.zip: not a readable zip archive"));
    qf_archive_close(a);
    qf_archive_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_of),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_tar_in_place),
        cmocka_unit_test(test_compressed_extracted),
        cmocka_unit_test(test_zip_stored_in_place),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ratio_streaming),
        cmocka_unit_test(test_remove_files),
        cmocka_unit_test(test_not_archive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
