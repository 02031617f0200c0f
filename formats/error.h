/*
 * formats/error.h - error codes and the error record every fallible call fills.
 *
 * Conventions (shared by the whole library):
 *   - A fallible function returns int: 0 on success, a negative QF_E* code on
 *     failure. Iterators return 1 (an item), 0 (the end) or a negative code.
 *   - It also takes a `qf_err *err` (may be NULL). On failure the record gets
 *     the code and one human line naming the file and the item, e.g.
 *       model.safetensors: tensor "lm_head.weight": data_offsets [0, 8192) overlap "model.norm.weight"
 *     The first error set wins: callers may add context only if the record is
 *     still empty, so the innermost, most precise message survives.
 *   - The library never prints and never exits; tools print "prog: <msg>".
 *
 * Codes have gaps so that finer codes can be added later without renumbering.
 */
#ifndef QF_ERROR_H
#define QF_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include <stddef.h>

enum {
    QF_OK = 0,
    QF_EINVAL = -10,       /* bad argument from the caller (our bug or a usage error) */
    QF_ENOMEM = -20,       /* allocation failed */
    QF_EIO = -30,          /* the OS refused: open, read, write, mmap, fsync, rename */
    QF_EEXIST = -31,       /* output exists and force was not given */
    QF_EFORMAT = -40,      /* the input is not a valid file of the expected format */
    QF_ETRUNC = -41,       /* the input ends before a structure it announces */
    QF_ELIMIT = -42,       /* the input asks for more than a sane limit allows */
    QF_EUNSUPPORTED = -50, /* valid input that qforge cannot handle (yet) */
    QF_ENOTFOUND = -60,    /* a named item (key, tensor, file) does not exist */
    QF_EMISMATCH = -70,    /* a checksum or a comparison did not match */
};

#define QF_ERR_MSG_MAX 512

/* Plain value struct: zero it (or call qf_err_clear) before use. */
typedef struct qf_err {
    int code;                  /* 0 while no error has been recorded */
    char msg[QF_ERR_MSG_MAX];  /* NUL-terminated, one line, no trailing newline */
} qf_err;

/* Reset the record to "no error". Accepts NULL. */
void qf_err_clear(qf_err *err);

/*
 * Record an error unless one is already recorded; returns `code` so that
 * callers can write `return qf_err_set(err, QF_EFORMAT, "...", ...)`.
 * Accepts err == NULL (then it only returns code). Newlines in the formatted
 * text are replaced by spaces so the message stays one line.
 */
int qf_err_set(qf_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Prefix the recorded message with "<prefix>: " (e.g. a file name) if one is
 * recorded and the prefix is not already there. Returns err->code, or 0.
 */
int qf_err_prefix(qf_err *err, const char *prefix);

/* Short static name of a code ("format error", "I/O error", ...). */
const char *qf_err_name(int code);

#define QF_ERR_SHOW 60 /* bytes of a hostile name that qf_err_show shows */

/*
 * `n` bytes of a string read from a file, made safe for a one-line message
 * into buf (cap bytes): printable ASCII other than '"' and '\' kept, every
 * other byte as \xHH, at most QF_ERR_SHOW bytes, then "..." if cut.
 * Returns buf.
 */
const char *qf_err_show(char *buf, size_t cap, const void *s, uint64_t n);

#endif /* QF_ERROR_H */
