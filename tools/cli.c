/*
 * tools/cli.c - shared CLI support (see cli.h).
 */
#include "tools/cli.h"

#include "formats/file.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int qf_cli_verbosity = 1;
static char prog[64] = "qforge";

void qf_cli_init(const char *argv0)
{
    const char *b = strrchr(argv0, '/');
    snprintf(prog, sizeof prog, "%s", b ? b + 1 : argv0);
}

const char *qf_cli_prog(void) { return prog; }

void qf_cli_error(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* what was printed so far comes first */
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void (*err_fixer)(qf_err *);
static void (*cleanup)(void);

void qf_cli_report(const qf_err *err)
{
    qf_err e;

    if (err && err->msg[0]) {
        e = *err;
        if (err_fixer)
            err_fixer(&e);
        qf_cli_error("%s", e.msg);
    } else {
        qf_cli_error("%s", qf_err_name(err ? err->code : QF_EINVAL));
    }
}

void qf_cli_set_err_fixer(void (*fn)(qf_err *err)) { err_fixer = fn; }

static void run_cleanup(void)
{
    if (cleanup)
        cleanup();
}

static void on_signal(int sig)
{
    run_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

void qf_cli_on_exit(void (*fn)(void))
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    struct sigaction sa;
    size_t i;

    if (cleanup) { /* once per process */
        cleanup = fn;
        return;
    }
    cleanup = fn;
    atexit(run_cleanup);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

int qf_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return QF_EXIT_USAGE;
}

void qf_cli_info(int level, const char *fmt, ...)
{
    va_list ap;
    if (qf_cli_verbosity < level)
        return;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qf_cli_version(void) { printf("%s %s\n", prog, QF_VERSION); }

int qf_cli_parse_u64(const char *s, uint64_t min, uint64_t max, int sizes, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;

    if (!s || !*s)
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (p == s)
        return -1;
    if (*p && sizes) {
        switch (*p) {
        case 'k': case 'K': mul = 1ull << 10; break;
        case 'm': case 'M': mul = 1ull << 20; break;
        case 'g': case 'G': mul = 1ull << 30; break;
        case 't': case 'T': mul = 1ull << 40; break;
        default: return -1;
        }
        p++;
        if (strcmp(p, "iB") == 0 || strcmp(p, "B") == 0 || strcmp(p, "b") == 0)
            p += strlen(p);
        if (v > UINT64_MAX / mul)
            return -1;
        v *= mul;
    }
    if (*p || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int qf_cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

const char *qf_cli_commas(uint64_t v, char *buf, size_t cap)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), i, o = 0;

    for (i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

const char *qf_cli_human(uint64_t v, char *buf, size_t cap)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double x = (double)v;
    int u = 0;

    while (x >= 1024.0 && u < 5) {
        x /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, cap, "%.2f %s", x, units[u]);
    return buf;
}

/* ---- progress ---------------------------------------------------------- */

struct qf_progress {
    char label[48];
    uint64_t total;
    _Atomic uint64_t done;
    pthread_mutex_t lock;
    double start, last_draw;
    int active;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

qf_progress *qf_progress_new(const char *label, uint64_t total)
{
    qf_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total ? total : 1;
    pthread_mutex_init(&p->lock, NULL);
    p->start = p->last_draw = now_s();
    p->active = qf_cli_verbosity >= 1 && isatty(STDERR_FILENO);
    return p;
}

static void draw(qf_progress *p, uint64_t done)
{
    int width = 30, fill = (int)((double)width * (double)done / (double)p->total), i;
    double el = now_s() - p->start;
    char hb[32];

    if (fill > width)
        fill = width;
    fprintf(stderr, "\r%s %-12s [", prog, p->label);
    for (i = 0; i < width; i++)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%%  %s/s ", (int)(100.0 * (double)done / (double)p->total),
            qf_cli_human(el > 0 ? (uint64_t)((double)done / el) : 0, hb, sizeof hb));
    fflush(stderr);
}

void qf_progress_add(qf_progress *p, uint64_t n)
{
    uint64_t d;
    double t;

    if (!p)
        return;
    d = atomic_fetch_add(&p->done, n) + n;
    if (!p->active)
        return;
    t = now_s();
    if (t - p->last_draw < 0.1 && d < p->total)
        return;
    if (pthread_mutex_trylock(&p->lock) != 0)
        return;
    p->last_draw = t;
    draw(p, d);
    pthread_mutex_unlock(&p->lock);
}

void qf_progress_free(qf_progress *p)
{
    if (!p)
        return;
    if (p->active)
        fprintf(stderr, "\r\033[K");
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- JSON -------------------------------------------------------------- */

void qf_json_init(qf_json *j, FILE *f, int pretty)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->pretty = pretty;
    j->first[0] = 1;
}

static void indent(qf_json *j)
{
    int i;
    if (!j->pretty)
        return;
    fputc('\n', j->f);
    for (i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

static void before_value(qf_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = 0;
    if (j->depth > 0)
        indent(j);
}

static void open_level(qf_json *j, int c)
{
    before_value(j);
    fputc(c, j->f);
    if (j->depth < 63)
        j->depth++;
    j->first[j->depth] = 1;
}

static void close_level(qf_json *j, int c)
{
    int empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!empty)
        indent(j);
    fputc(c, j->f);
}

void qf_json_obj_begin(qf_json *j) { open_level(j, '{'); }
void qf_json_obj_end(qf_json *j) { close_level(j, '}'); }
void qf_json_arr_begin(qf_json *j) { open_level(j, '['); }
void qf_json_arr_end(qf_json *j) { close_level(j, ']'); }

/* Length of the valid UTF-8 sequence at s (0 if invalid). */
static size_t utf8_len(const unsigned char *s, uint64_t left)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
             : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > left || !qf_utf8_valid((const char *)s, n))
        return 0;
    return n;
}

static void put_escaped(FILE *f, const char *str, uint64_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint64_t i = 0;

    fputc('"', f);
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\t': fputs("\\t", f); break;
            case '\r': fputs("\\r", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else if ((n = utf8_len(s + i, len - i)) > 0) {
            fwrite(s + i, 1, n, f);
            i += n;
        } else {
            fputs("\\ufffd", f);
            i++;
        }
    }
    fputc('"', f);
}

void qf_json_key(qf_json *j, const char *key)
{
    before_value(j);
    put_escaped(j->f, key, strlen(key));
    fputs(j->pretty ? ": " : ":", j->f);
    j->after_key = 1;
}

void qf_json_str(qf_json *j, const char *s) { qf_json_strn(j, s, strlen(s)); }

void qf_json_strn(qf_json *j, const char *s, uint64_t len)
{
    before_value(j);
    put_escaped(j->f, s, len);
}

void qf_json_u64(qf_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void qf_json_i64(qf_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->f, "%lld", (long long)v);
}

void qf_json_f64(qf_json *j, double v)
{
    char buf[40];
    before_value(j);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    fputs(buf, j->f);
}

void qf_json_f32(qf_json *j, float v)
{
    char buf[40];
    before_value(j);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    snprintf(buf, sizeof buf, "%.6g", (double)v);
    if (strtof(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.9g", (double)v);
    fputs(buf, j->f);
}

void qf_json_bool(qf_json *j, int v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->f);
}

void qf_json_null(qf_json *j)
{
    before_value(j);
    fputs("null", j->f);
}

void qf_json_end(qf_json *j) { fputc('\n', j->f); }

void qf_cli_print_escaped(FILE *f, const char *str, uint64_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint64_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        if (c == '\n') { fputs("\\n", f); i++; }
        else if (c == '\t') { fputs("\\t", f); i++; }
        else if (c == '\r') { fputs("\\r", f); i++; }
        else if (c == '\\') { fputs("\\\\", f); i++; }
        else if (c < 0x20 || c == 0x7F) { fprintf(f, "\\x%02x", c); i++; }
        else if (c < 0x80) { fputc(c, f); i++; }
        else if ((n = utf8_len(s + i, len - i)) > 0) { fwrite(s + i, 1, n, f); i += n; }
        else { fprintf(f, "\\x%02x", c); i++; }
    }
}
