/*
 * tools/cli.h - what every qforge-<verb> shares: the program name, messages,
 * verbosity, checked number parsing, a progress bar, and a streaming JSON
 * writer. Tools only; the library never prints.
 *
 * Exit codes (every tool):
 *   0  success
 *   1  runtime error (bad input file, I/O, a check that failed)
 *   2  usage error (unknown option, missing argument)
 */
#ifndef QF_TOOLS_CLI_H
#define QF_TOOLS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "formats/error.h"

enum { QF_EXIT_OK = 0, QF_EXIT_FAIL = 1, QF_EXIT_USAGE = 2 };

/* Verbosity: 0 quiet (-q), 1 normal, 2+ verbose (-v). */
extern int qf_cli_verbosity;

/* Set the program name used in messages (basename of argv[0]). */
void qf_cli_init(const char *argv0);
const char *qf_cli_prog(void);

/* "prog: message" on stderr. */
void qf_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: <err->msg>" on stderr (or the code's name if no message). */
void qf_cli_report(const qf_err *err);
/* A function applied to a copy of every error qf_cli_report prints (the
 * archive support rewrites temp paths into archive member names). */
void qf_cli_set_err_fixer(void (*fn)(qf_err *err));

/*
 * Run fn at exit and on SIGINT, SIGTERM, SIGHUP and SIGQUIT (then the signal
 * is raised again with its default action). fn must be async-signal-safe.
 * A second call replaces fn.
 */
void qf_cli_on_exit(void (*fn)(void));

/* Usage error: "prog: message" + "Try 'prog --help'." on stderr; returns 2. */
int qf_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Informational message on stderr when verbosity >= level. */
void qf_cli_info(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "prog VERSION" on stdout. */
void qf_cli_version(void);

/*
 * Parse a non-negative integer in [min, max]; a size suffix K, M, G, T
 * (powers of 1024; "KiB"/"MB" forms accepted) is allowed when `sizes` is set.
 * Returns 0 or -1 (the caller reports a usage error).
 */
int qf_cli_parse_u64(const char *s, uint64_t min, uint64_t max, int sizes, uint64_t *out);

/* Thread count: -t N, default: online CPUs (at least 1). */
int qf_cli_default_threads(void);

/* "1,234,567" into buf; returns buf. */
const char *qf_cli_commas(uint64_t v, char *buf, size_t cap);
/* "1.50 GiB" into buf; returns buf. */
const char *qf_cli_human(uint64_t v, char *buf, size_t cap);

/* ---------------------------------------------------------------------
 * Progress bar on stderr, drawn only when stderr is a terminal and
 * verbosity >= 1. Safe to call from several threads (updates are atomic,
 * drawing is rate-limited and locked).
 * ------------------------------------------------------------------- */
typedef struct qf_progress qf_progress;
qf_progress *qf_progress_new(const char *label, uint64_t total);
void qf_progress_add(qf_progress *p, uint64_t n);
void qf_progress_free(qf_progress *p); /* clears the line; accepts NULL */

/* ---------------------------------------------------------------------
 * Streaming JSON writer: keeps commas and nesting right. Strings are escaped
 * and invalid UTF-8 bytes are written as U+FFFD. Numbers: integers exactly,
 * floats with the shortest %.9g/%.17g form that reads back the same.
 * ------------------------------------------------------------------- */
typedef struct qf_json {
    FILE *f;
    int depth;
    int first[64];   /* per level: nothing written yet */
    int after_key;
    int pretty;
} qf_json;

void qf_json_init(qf_json *j, FILE *f, int pretty);
void qf_json_obj_begin(qf_json *j);
void qf_json_obj_end(qf_json *j);
void qf_json_arr_begin(qf_json *j);
void qf_json_arr_end(qf_json *j);
void qf_json_key(qf_json *j, const char *key);
void qf_json_str(qf_json *j, const char *s);
void qf_json_strn(qf_json *j, const char *s, uint64_t len);
void qf_json_u64(qf_json *j, uint64_t v);
void qf_json_i64(qf_json *j, int64_t v);
void qf_json_f64(qf_json *j, double v);   /* NaN/Inf written as null */
void qf_json_f32(qf_json *j, float v);
void qf_json_bool(qf_json *j, int v);
void qf_json_null(qf_json *j);
void qf_json_end(qf_json *j);             /* final newline */

/* Write s[0..len) escaped for a terminal listing: printable UTF-8 as is,
 * control bytes and invalid UTF-8 as \n, \t, \xNN. */
void qf_cli_print_escaped(FILE *f, const char *s, uint64_t len);

#endif /* QF_TOOLS_CLI_H */
