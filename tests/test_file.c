/*
 * tests/test_file.c - mapped files, the cursor, UTF-8 checks, atomic output.
 */
#include "tests/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/error.h"
#include "formats/file.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "file");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rm_tree(dir);
}

static void test_map(void **state)
{
    char path[300];
    qf_map *m = NULL;
    qf_err e = { 0 };
    (void)state;

    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(qf_map_open(path, &m, &e), QF_EIO);
    assert_null(m);
    assert_non_null(strstr(e.msg, "missing: No such file"));

    qf_err_clear(&e);
    assert_int_equal(qf_map_open(dir, &m, &e), QF_EIO);
    assert_non_null(strstr(e.msg, "is a directory"));

    snprintf(path, sizeof path, "%s/empty", dir);
    tu_write_text(path, "");
    assert_int_equal(qf_map_open(path, &m, NULL), 0);
    assert_int_equal(qf_map_size(m), 0);
    qf_map_release(m, 0, 100); /* harmless */
    qf_map_close(m);

    snprintf(path, sizeof path, "%s/abc", dir);
    tu_write_text(path, "abcdef");
    assert_int_equal(qf_map_open(path, &m, NULL), 0);
    assert_int_equal(qf_map_size(m), 6);
    assert_memory_equal(qf_map_data(m), "abcdef", 6);
    assert_string_equal(qf_map_path(m), path);
    qf_map_release(m, 0, 6);
    qf_map_prefetch(m, 2, 1000);
    assert_memory_equal(qf_map_data(m), "abcdef", 6); /* still readable */
    qf_map_close(m);
    qf_map_close(NULL);
}

static void test_cursor(void **state)
{
    const uint8_t buf[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    qf_cur c = qf_cur_make(buf, sizeof buf);
    uint8_t b;
    uint16_t h;
    uint32_t w;
    uint64_t q;
    const uint8_t *p;
    (void)state;

    assert_int_equal(qf_cur_u8(&c, &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(qf_cur_u16(&c, &h), 0);
    assert_int_equal(h, 0x0302);
    assert_int_equal(qf_cur_u64(&c, &q), 0);
    assert_int_equal(q, 0x0B0A090807060504ull);
    assert_int_equal(qf_cur_u32(&c, &w), QF_ETRUNC);
    assert_int_equal(c.pos, 11); /* a failed read does not move */
    c.pos = 9;
    assert_int_equal(qf_cur_bytes(&c, 3, &p), QF_ETRUNC);
    assert_int_equal(qf_cur_bytes(&c, 2, &p), 0);
    assert_int_equal(p[1], 11);
    assert_int_equal(qf_cur_left(&c), 0);
    assert_int_equal(qf_cur_skip(&c, UINT64_MAX), QF_ETRUNC);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(qf_utf8_valid("plain", 5));
    assert_true(qf_utf8_valid("\xE2\x96\x81x", 4));         /* U+2581 */
    assert_true(qf_utf8_valid("\xF0\x9F\x98\x80", 4));      /* U+1F600 */
    assert_false(qf_utf8_valid("\xC0\xAF", 2));             /* overlong */
    assert_false(qf_utf8_valid("\xED\xA0\x80", 3));         /* surrogate */
    assert_false(qf_utf8_valid("\xF4\x90\x80\x80", 4));     /* > U+10FFFF */
    assert_false(qf_utf8_valid("\xE2\x96", 2));             /* truncated */
    assert_false(qf_utf8_valid("\xFF", 1));
    assert_true(qf_utf8_valid("a\0b", 3));                  /* NUL is valid UTF-8 */
}

static void test_out(void **state)
{
    char path[300];
    qf_out *o = NULL;
    qf_err e = { 0 };
    qf_map *m = NULL;
    struct stat st;
    (void)state;

    snprintf(path, sizeof path, "%s/out.bin", dir);
    unlink(path);
    assert_int_equal(qf_out_open(path, 0, &o, &e), 0);
    assert_int_equal(tu_count_entries(dir) >= 1, 1);
    assert_int_equal(stat(path, &st), -1); /* nothing under the target name yet */
    assert_int_equal(qf_out_write(o, "hello", 5, &e), 0);
    assert_int_equal(qf_out_zeros(o, 10000, &e), 0);
    assert_int_equal(qf_out_tell(o), 10005);
    assert_int_equal(qf_out_commit(o, &e), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 10005);
    assert_int_equal(qf_map_open(path, &m, NULL), 0);
    assert_memory_equal(qf_map_data(m), "hello\0\0", 7);
    qf_map_close(m);

    /* exists, no force: refused, file untouched */
    qf_err_clear(&e);
    assert_int_equal(qf_out_open(path, 0, &o, &e), QF_EEXIST);
    assert_non_null(strstr(e.msg, "--force"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 10005);

    /* force: replaced */
    assert_int_equal(qf_out_open(path, QF_OUT_FORCE, &o, NULL), 0);
    assert_int_equal(qf_out_write(o, "x", 1, NULL), 0);
    assert_int_equal(qf_out_commit(o, NULL), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 1);

    /* abandoned: no trace, target untouched */
    assert_int_equal(qf_out_open(path, QF_OUT_FORCE, &o, NULL), 0);
    assert_int_equal(qf_out_zeros(o, 20u << 20, NULL), 0); /* past the buffer */
    qf_out_close(o);
    assert_int_equal(tu_count_entries(dir), 3); /* empty, abc, out.bin */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 1);

    /* the target appears while writing without force: commit refuses */
    snprintf(path, sizeof path, "%s/race.bin", dir);
    assert_int_equal(qf_out_open(path, 0, &o, NULL), 0);
    tu_write_text(path, "theirs");
    qf_err_clear(&e);
    assert_int_equal(qf_out_commit(o, &e), QF_EEXIST);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 6);
    assert_int_equal(tu_count_entries(dir), 4);

    /* a folder that does not exist */
    qf_err_clear(&e);
    assert_int_equal(qf_out_open("/nonexistent-qf/x.gguf", 0, &o, &e), QF_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent-qf/x.gguf"));
    qf_out_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_out),
    };
    return cmocka_run_group_tests_name("file", tests, setup, teardown);
}
