#include "formats/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void qf_err_clear(qf_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

int qf_err_set(qf_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err || err->code != 0)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return code;
}

int qf_err_prefix(qf_err *err, const char *prefix)
{
    char tmp[QF_ERR_MSG_MAX];
    size_t plen;

    if (!err || err->code == 0 || !prefix || !*prefix)
        return err ? err->code : 0;
    plen = strlen(prefix);
    if (strncmp(err->msg, prefix, plen) == 0 && err->msg[plen] == ':')
        return err->code;
    {   /* "<prefix>: <msg>", cut to fit */
        size_t mlen = strlen(err->msg), n = 0;
        if (plen > sizeof tmp - 3)
            plen = sizeof tmp - 3;
        memcpy(tmp, prefix, plen);
        n = plen;
        tmp[n++] = ':';
        tmp[n++] = ' ';
        if (mlen > sizeof tmp - 1 - n)
            mlen = sizeof tmp - 1 - n;
        memcpy(tmp + n, err->msg, mlen);
        tmp[n + mlen] = '\0';
    }
    memcpy(err->msg, tmp, sizeof tmp);
    one_line(err->msg);
    return err->code;
}

const char *qf_err_name(int code)
{
    switch (code) {
    case QF_OK: return "success";
    case QF_EINVAL: return "invalid argument";
    case QF_ENOMEM: return "out of memory";
    case QF_EIO: return "I/O error";
    case QF_EEXIST: return "file exists";
    case QF_EFORMAT: return "format error";
    case QF_ETRUNC: return "truncated input";
    case QF_ELIMIT: return "limit exceeded";
    case QF_EUNSUPPORTED: return "unsupported";
    case QF_ENOTFOUND: return "not found";
    case QF_EMISMATCH: return "mismatch";
    default: return "unknown error";
    }
}

const char *qf_err_show(char *buf, size_t cap, const void *s, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s;
    size_t i, k = 0;

    for (i = 0; i < n && i < QF_ERR_SHOW && k + 5 < cap; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf[k++] = (char)c;
        } else {
            buf[k++] = '\\';
            buf[k++] = 'x';
            buf[k++] = hex[c >> 4];
            buf[k++] = hex[c & 15];
        }
    }
    if (i < n && k + 4 < cap) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}
