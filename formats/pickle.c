/*
 * formats/pickle.c - the pickle reader (see pickle.h for the opcodes read,
 * the ones refused and the limits).
 *
 * The machine: a value stack of object ids, a stack of MARK positions into
 * it, and a memo of ids. As in CPython's unpickler, the opcodes that take
 * their operands from the stack only see the part above the last MARK.
 * Objects live in one array, so freeing never recurses and cycles made
 * through the memo cost nothing.
 */
#include "formats/pickle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"


struct qf_pkl {
    char *name;
    const uint8_t *buf;
    uint64_t size;
    qf_pkl_obj *objs;     /* objs[0] unused */
    uint32_t *caps;       /* item capacity of each container */
    uint32_t *depth;      /* nesting depth of each object (scalars 0) */
    uint32_t n_objs, cap_objs;
    qf_pkl_global *globals;
    uint32_t n_globals, cap_globals;
    qf_pkl_id root;
    int protocol;
    /* parse state */
    const qf_pkl_allow *allow;
    size_t n_allow;
    qf_pkl_limits lim;
    qf_pkl_id *stack;
    uint64_t n_stack, cap_stack;
    uint64_t *marks;
    uint32_t n_marks, cap_marks;
    qf_pkl_id *memo;
    uint64_t cap_memo, n_memo_set;
    uint64_t at;          /* offset of the opcode being read */
    qf_err *err;
};

/* =====================================================================
 * Messages
 * ===================================================================== */

/* "<name>: byte <at>: <message>" */
static int fail(qf_pkl *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(qf_pkl *p, int code, const char *fmt, ...)
{
    char msg[QF_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qf_err_set(p->err, code, "%s: byte %" PRIu64 ": %s", p->name, p->at, msg);
}

static int no_memory(qf_pkl *p) { return qf_err_set(p->err, QF_ENOMEM, "%s: out of memory", p->name); }

const char *qf_pkl_kind_name(qf_pkl_kind k)
{
    switch (k) {
    case QF_PKL_NONE: return "None";
    case QF_PKL_BOOL: return "bool";
    case QF_PKL_INT: return "int";
    case QF_PKL_FLOAT: return "float";
    case QF_PKL_STR: return "str";
    case QF_PKL_BYTES: return "bytes";
    case QF_PKL_TUPLE: return "tuple";
    case QF_PKL_LIST: return "list";
    case QF_PKL_SET: return "set";
    case QF_PKL_DICT: return "dict";
    case QF_PKL_GLOBAL: return "global";
    case QF_PKL_CALL: return "call";
    case QF_PKL_PERSID: return "persistent id";
    }
    return "?";
}

/* =====================================================================
 * Objects, stack, marks, memo
 * ===================================================================== */

static int new_obj(qf_pkl *p, qf_pkl_kind kind, qf_pkl_id *id)
{
    qf_pkl_obj *o;

    if ((uint64_t)p->n_objs >= p->lim.max_objects)
        return fail(p, QF_ELIMIT, "more than %" PRIu64 " objects", p->lim.max_objects);
    if (p->n_objs + 1 >= p->cap_objs) {
        uint32_t cap = p->cap_objs ? p->cap_objs * 2 : 256;
        qf_pkl_obj *no;
        uint32_t *nc, *nd;
        if (cap < p->cap_objs) /* cannot happen under max_objects, but stay exact */
            return fail(p, QF_ELIMIT, "too many objects");
        no = realloc(p->objs, (size_t)cap * sizeof *no);
        if (!no)
            return no_memory(p);
        p->objs = no;
        nc = realloc(p->caps, (size_t)cap * sizeof *nc);
        if (!nc)
            return no_memory(p);
        p->caps = nc;
        nd = realloc(p->depth, (size_t)cap * sizeof *nd);
        if (!nd)
            return no_memory(p);
        p->depth = nd;
        if (p->cap_objs == 0) { /* slot 0: "no object" */
            memset(&p->objs[0], 0, sizeof p->objs[0]);
            p->caps[0] = p->depth[0] = 0;
            p->n_objs = 0;
        }
        p->cap_objs = cap;
    }
    *id = ++p->n_objs;
    o = &p->objs[*id];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->offset = p->at;
    p->caps[*id] = 0;
    p->depth[*id] = 0;
    return 0;
}

static int push(qf_pkl *p, qf_pkl_id id)
{
    if (p->n_stack == p->cap_stack) {
        uint64_t cap = p->cap_stack ? p->cap_stack * 2 : 256;
        qf_pkl_id *ns;
        if (cap > p->lim.max_objects + 1024)
            cap = p->lim.max_objects + 1024;
        if (p->n_stack >= cap)
            return fail(p, QF_ELIMIT, "stack deeper than %" PRIu64 " objects", cap);
        ns = realloc(p->stack, (size_t)cap * sizeof *ns);
        if (!ns)
            return no_memory(p);
        p->stack = ns;
        p->cap_stack = cap;
    }
    p->stack[p->n_stack++] = id;
    return 0;
}

/* Stack index where the part above the last MARK starts. */
static uint64_t base_of(const qf_pkl *p) { return p->n_marks ? p->marks[p->n_marks - 1] : 0; }

/* Items above the last MARK. */
static uint64_t avail(const qf_pkl *p) { return p->n_stack - base_of(p); }

static int need(qf_pkl *p, uint64_t n, const char *op)
{
    if (avail(p) < n)
        return fail(p, QF_EFORMAT, "%s needs %" PRIu64 " object%s on the stack, %" PRIu64 " there",
                    op, n, n == 1 ? "" : "s", avail(p));
    return 0;
}

static qf_pkl_id pop(qf_pkl *p) { return p->stack[--p->n_stack]; }
static qf_pkl_id top(const qf_pkl *p) { return p->stack[p->n_stack - 1]; }

static int push_mark(qf_pkl *p)
{
    if (p->n_marks >= p->lim.max_depth)
        return fail(p, QF_ELIMIT, "more than %" PRIu32 " open MARKs", p->lim.max_depth);
    if (p->n_marks == p->cap_marks) {
        uint32_t cap = p->cap_marks ? p->cap_marks * 2 : 16;
        uint64_t *nm = realloc(p->marks, (size_t)cap * sizeof *nm);
        if (!nm)
            return no_memory(p);
        p->marks = nm;
        p->cap_marks = cap;
    }
    p->marks[p->n_marks++] = p->n_stack;
    return 0;
}

/* Pop to the last MARK: *first is the stack index of the first item above it. */
static int pop_mark(qf_pkl *p, const char *op, uint64_t *first)
{
    *first = 0;
    if (p->n_marks == 0)
        return fail(p, QF_EFORMAT, "%s without a MARK", op);
    *first = p->marks[--p->n_marks];
    return 0;
}

/* Depth bookkeeping: a container is one deeper than its deepest item. */
static int note_child(qf_pkl *p, qf_pkl_id parent, qf_pkl_id child)
{
    uint32_t d = p->depth[child] + 1;

    if (d > p->depth[parent]) {
        if (d > p->lim.max_depth)
            return fail(p, QF_ELIMIT, "objects nested deeper than %" PRIu32, p->lim.max_depth);
        p->depth[parent] = d;
    }
    return 0;
}

/* Append `k` ids to container `c` (LIST, SET, DICT pairs). */
static int add_items(qf_pkl *p, qf_pkl_id c, const qf_pkl_id *ids, uint64_t k)
{
    qf_pkl_obj *o = &p->objs[c];
    uint64_t have = o->kind == QF_PKL_DICT ? 2 * (uint64_t)o->n : o->n, want = have + k, i;

    if (want > p->lim.max_objects * 2 + 2)
        return fail(p, QF_ELIMIT, "a %s of more than %" PRIu64 " items", qf_pkl_kind_name(o->kind),
                    p->lim.max_objects);
    if (want > p->caps[c]) {
        uint64_t cap = p->caps[c] ? p->caps[c] : 4;
        qf_pkl_id *ni;
        while (cap < want)
            cap *= 2;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        if (cap < want)
            return fail(p, QF_ELIMIT, "a %s of more than 2^31 items", qf_pkl_kind_name(o->kind));
        ni = realloc((void *)o->items, (size_t)cap * sizeof *ni);
        if (!ni)
            return no_memory(p);
        o->items = ni;
        p->caps[c] = (uint32_t)cap;
    }
    for (i = 0; i < k; i++) {
        int rc;
        ((qf_pkl_id *)o->items)[have + i] = ids[i];
        if ((rc = note_child(p, c, ids[i])) != 0)
            return rc;
    }
    o->n = (uint32_t)(o->kind == QF_PKL_DICT ? want / 2 : want);
    return 0;
}

/* A new TUPLE of the k ids at ids (copied). */
static int make_tuple(qf_pkl *p, const qf_pkl_id *ids, uint64_t k, qf_pkl_id *out)
{
    qf_pkl_id t;
    qf_pkl_id *items = NULL;
    uint64_t i;
    int rc;

    if ((rc = new_obj(p, QF_PKL_TUPLE, &t)) != 0)
        return rc;
    if (k > 0) {
        if (k > UINT32_MAX)
            return fail(p, QF_ELIMIT, "a tuple of %" PRIu64 " items", k);
        items = malloc((size_t)k * sizeof *items);
        if (!items)
            return no_memory(p);
        memcpy(items, ids, (size_t)k * sizeof *items);
        p->objs[t].items = items;
        p->objs[t].n = (uint32_t)k;
        p->caps[t] = (uint32_t)k;
        for (i = 0; i < k; i++)
            if ((rc = note_child(p, t, ids[i])) != 0)
                return rc;
    }
    *out = t;
    return 0;
}

static int memo_put(qf_pkl *p, uint64_t idx, const char *op)
{
    if (avail(p) < 1)
        return fail(p, QF_EFORMAT, "%s %" PRIu64 " on an empty stack", op, idx);
    /* A memo slot names an object already made: an index beyond the objects
     * made so far (plus slack) only asks for memory. */
    if (idx >= p->lim.max_memo || idx > (uint64_t)p->n_objs + 64)
        return fail(p, QF_ELIMIT, "%s %" PRIu64 ": memo index out of range (%" PRIu32 " objects so far, limit %" PRIu32 ")",
                    op, idx, p->n_objs, p->lim.max_memo);
    if (idx >= p->cap_memo) {
        uint64_t cap = p->cap_memo ? p->cap_memo : 64;
        qf_pkl_id *nm;
        while (cap <= idx)
            cap *= 2;
        nm = realloc(p->memo, (size_t)cap * sizeof *nm);
        if (!nm)
            return no_memory(p);
        memset(nm + p->cap_memo, 0, (size_t)(cap - p->cap_memo) * sizeof *nm);
        p->memo = nm;
        p->cap_memo = cap;
    }
    if (p->memo[idx] == 0)
        p->n_memo_set++;
    p->memo[idx] = top(p);
    return 0;
}

static int memo_get(qf_pkl *p, uint64_t idx, const char *op)
{
    if (idx >= p->cap_memo || p->memo[idx] == 0)
        return fail(p, QF_EFORMAT, "%s %" PRIu64 ": memo slot is empty", op, idx);
    return push(p, p->memo[idx]);
}

/* =====================================================================
 * GLOBALs
 * ===================================================================== */

static int global_ok_text(const char *s, uint64_t n)
{
    uint64_t i;

    if (n == 0 || n > 256)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* Look `module`.`name` up in the allow-list and push a GLOBAL object. */
static int push_global(qf_pkl *p, const char *op, const char *mod, uint64_t mlen, const char *nm,
                       uint64_t nlen)
{
    char a[4 * QF_ERR_SHOW + 8], b[4 * QF_ERR_SHOW + 8];
    const qf_pkl_allow *hit = NULL;
    qf_pkl_global *g = NULL;
    qf_pkl_id id;
    uint32_t gi;
    size_t i;
    int rc;

    qf_err_show(a, sizeof a, mod, mlen);
    qf_err_show(b, sizeof b, nm, nlen);
    if (global_ok_text(mod, mlen) && global_ok_text(nm, nlen)) {
        for (i = 0; i < p->n_allow; i++) {
            const qf_pkl_allow *al = &p->allow[i];
            if (strlen(al->module) == mlen && memcmp(al->module, mod, mlen) == 0 &&
                strlen(al->name) == nlen && memcmp(al->name, nm, nlen) == 0) {
                hit = al;
                break;
            }
        }
    }
    if (!hit)
        return fail(p, QF_EFORMAT,
                    "%s %s.%s is not allowed (only torch tensor rebuilders, storage types, dtypes and collections.OrderedDict are; nothing is imported or run)",
                    op, a, b);
    for (gi = 0; gi < p->n_globals; gi++)
        if (strcmp(p->globals[gi].module, hit->module) == 0 && strcmp(p->globals[gi].name, hit->name) == 0) {
            g = &p->globals[gi];
            break;
        }
    if (!g) {
        if (p->n_globals == p->cap_globals) {
            uint32_t cap = p->cap_globals ? p->cap_globals * 2 : 16;
            qf_pkl_global *ng = realloc(p->globals, (size_t)cap * sizeof *ng);
            if (!ng)
                return no_memory(p);
            p->globals = ng;
            p->cap_globals = cap;
        }
        gi = p->n_globals++;
        g = &p->globals[gi];
        g->module = hit->module; /* the allow-list's strings: see qf_pkl_free */
        g->name = hit->name;
        g->role = hit->role;
        g->tag = hit->tag;
        g->count = 0;
        g->offset = p->at;
    }
    g->count++;
    if ((rc = new_obj(p, QF_PKL_GLOBAL, &id)) != 0)
        return rc;
    p->objs[id].global = gi;
    return push(p, id);
}

/* Name of the class an instance-making opcode would build, for its message. */
static const char *class_name(const qf_pkl *p, qf_pkl_id id, char *buf, size_t cap)
{
    if (id && id <= p->n_objs && p->objs[id].kind == QF_PKL_GLOBAL) {
        const qf_pkl_global *g = &p->globals[p->objs[id].global];
        snprintf(buf, cap, "%s.%s", g->module, g->name);
    } else if (id && id <= p->n_objs && p->objs[id].kind == QF_PKL_CALL) {
        const qf_pkl_global *g = &p->globals[p->objs[id].global];
        snprintf(buf, cap, "the result of %s.%s", g->module, g->name);
    } else {
        snprintf(buf, cap, "a %s", id && id <= p->n_objs ? qf_pkl_kind_name(p->objs[id].kind) : "missing object");
    }
    return buf;
}

/* =====================================================================
 * The opcode loop
 * ===================================================================== */

/* Read a text line (up to '\n') of at most `max` bytes. */
static int read_line(qf_pkl *p, qf_cur *c, uint64_t max, const char **s, uint64_t *n,
                     const char *op)
{
    const uint8_t *start = c->base + c->pos;
    uint64_t left = qf_cur_left(c), lim = left < max + 1 ? left : max + 1;
    const uint8_t *nl = memchr(start, '\n', (size_t)lim);

    if (!nl)
        return fail(p, left <= max ? QF_ETRUNC : QF_ELIMIT,
                    "%s: no newline within %" PRIu64 " bytes", op, lim);
    *s = (const char *)start;
    *n = (uint64_t)(nl - start);
    c->pos += *n + 1;
    return 0;
}

static int read_str(qf_pkl *p, qf_cur *c, uint64_t n, qf_pkl_kind kind, const char *op)
{
    const uint8_t *s;
    qf_pkl_id id;
    int rc;

    if (qf_cur_bytes(c, n, &s) != 0)
        return fail(p, QF_ETRUNC, "%s of %" PRIu64 " bytes, but only %" PRIu64 " are left", op, n,
                    qf_cur_left(c));
    if (kind == QF_PKL_STR && !qf_utf8_valid((const char *)s, (size_t)n))
        return fail(p, QF_EFORMAT, "%s is not valid UTF-8", op);
    if ((rc = new_obj(p, kind, &id)) != 0)
        return rc;
    p->objs[id].s = (const char *)s;
    p->objs[id].len = n;
    return push(p, id);
}

static int push_scalar(qf_pkl *p, qf_pkl_kind kind, int64_t v)
{
    qf_pkl_id id;
    int rc = new_obj(p, kind, &id);

    if (rc != 0)
        return rc;
    p->objs[id].i = v;
    return push(p, id);
}

/* Two's complement little-endian integer of n <= 8 bytes. */
static int push_long(qf_pkl *p, qf_cur *c, uint64_t n, const char *op)
{
    const uint8_t *b;
    uint64_t v = 0, i;

    if (n > 8)
        return fail(p, QF_ELIMIT, "%s of %" PRIu64 " bytes (integers beyond 64 bits are not read)",
                    op, n);
    if (qf_cur_bytes(c, n, &b) != 0)
        return fail(p, QF_ETRUNC, "%s of %" PRIu64 " bytes runs past the end", op, n);
    for (i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    if (n > 0 && n < 8 && (b[n - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return push_scalar(p, QF_PKL_INT, (int64_t)v);
}

/* INT "<decimal>\n": "00" and "01" are False and True (protocol 1 bools). */
static int read_int_text(qf_pkl *p, qf_cur *c)
{
    const char *s;
    uint64_t n, i, v = 0;
    int neg = 0, rc;

    if ((rc = read_line(p, c, 24, &s, &n, "INT")) != 0)
        return rc;
    if (n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1'))
        return push_scalar(p, QF_PKL_BOOL, s[1] == '1');
    i = 0;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return fail(p, QF_EFORMAT, "INT without digits");
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(p, QF_EFORMAT, "INT holds a non-digit");
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return fail(p, QF_ELIMIT, "INT beyond 64 bits");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
        return fail(p, QF_ELIMIT, "INT beyond 64 bits");
    return push_scalar(p, QF_PKL_INT, neg ? (int64_t)(0 - v) : (int64_t)v);
}

static int do_reduce(qf_pkl *p)
{
    qf_pkl_id args, fn, id;
    const qf_pkl_global *g;
    char cls[2 * 260];
    int rc;

    if ((rc = need(p, 2, "REDUCE")) != 0)
        return rc;
    args = pop(p);
    fn = pop(p);
    if (p->objs[fn].kind != QF_PKL_GLOBAL)
        return fail(p, QF_EFORMAT, "REDUCE calls a %s, not an allowed GLOBAL",
                    qf_pkl_kind_name(p->objs[fn].kind));
    g = &p->globals[p->objs[fn].global];
    class_name(p, fn, cls, sizeof cls);
    if (p->objs[args].kind != QF_PKL_TUPLE)
        return fail(p, QF_EFORMAT, "REDUCE of %s with a %s for arguments (a tuple is needed)", cls,
                    qf_pkl_kind_name(p->objs[args].kind));
    switch (g->role) {
    case QF_PKL_DICT_TYPE:
        if (p->objs[args].n != 0)
            return fail(p, QF_EFORMAT, "REDUCE of %s with %" PRIu32 " arguments (only an empty one is read)",
                        cls, p->objs[args].n);
        if ((rc = new_obj(p, QF_PKL_DICT, &id)) != 0)
            return rc;
        return push(p, id);
    case QF_PKL_CALLABLE:
        if ((rc = new_obj(p, QF_PKL_CALL, &id)) != 0)
            return rc;
        p->objs[id].global = p->objs[fn].global;
        p->objs[id].arg = args;
        if ((rc = note_child(p, id, args)) != 0)
            return rc;
        return push(p, id);
    default:
        return fail(p, QF_EFORMAT, "REDUCE calls %s, which is allowed as a value but not as a function",
                    cls);
    }
}

static int do_build(qf_pkl *p)
{
    qf_pkl_id state, obj;
    char cls[2 * 260];
    int rc;

    if ((rc = need(p, 2, "BUILD")) != 0)
        return rc;
    state = pop(p);
    obj = top(p);
    if (p->objs[obj].kind != QF_PKL_DICT)
        return fail(p, QF_EFORMAT, "BUILD sets the state of %s (only a dict's state is read)",
                    class_name(p, obj, cls, sizeof cls));
    if (p->objs[state].kind != QF_PKL_DICT && p->objs[state].kind != QF_PKL_NONE)
        return fail(p, QF_EFORMAT, "BUILD gives a dict a %s for state (a dict is needed)",
                    qf_pkl_kind_name(p->objs[state].kind));
    if (p->objs[obj].state != 0)
        return fail(p, QF_EFORMAT, "BUILD on a dict whose state is already set");
    p->objs[obj].state = state;
    return note_child(p, obj, state);
}

/* Refuse an opcode that would instantiate a class, naming the class. */
static int refuse_instance(qf_pkl *p, qf_cur *c, uint8_t op)
{
    char cls[2 * 260];
    const char *mod, *nm;
    uint64_t ml, nl;

    switch (op) {
    case 0x81: /* NEWOBJ: cls args */
        return fail(p, QF_EFORMAT, "NEWOBJ of %s refused (instances are never built)",
                    avail(p) >= 2 ? class_name(p, p->stack[p->n_stack - 2], cls, sizeof cls) : "a missing class");
    case 0x92: /* NEWOBJ_EX: cls args kwargs */
        return fail(p, QF_EFORMAT, "NEWOBJ_EX of %s refused (instances are never built)",
                    avail(p) >= 3 ? class_name(p, p->stack[p->n_stack - 3], cls, sizeof cls) : "a missing class");
    case 'i': /* INST "module\nname\n" */
    {
        char a[4 * QF_ERR_SHOW + 8], b[4 * QF_ERR_SHOW + 8];
        int rc;
        if ((rc = read_line(p, c, 256, &mod, &ml, "INST")) != 0 ||
            (rc = read_line(p, c, 256, &nm, &nl, "INST")) != 0)
            return rc;
        return fail(p, QF_EFORMAT, "INST of %s.%s refused (instances are never built)",
                    qf_err_show(a, sizeof a, mod, ml), qf_err_show(b, sizeof b, nm, nl));
    }
    default: /* 'o' OBJ: MARK cls args... */
        if (p->n_marks > 0 && p->n_stack > p->marks[p->n_marks - 1])
            return fail(p, QF_EFORMAT, "OBJ of %s refused (instances are never built)",
                        class_name(p, p->stack[p->marks[p->n_marks - 1]], cls, sizeof cls));
        return fail(p, QF_EFORMAT, "OBJ refused (instances are never built)");
    }
}

static int run(qf_pkl *p)
{
    qf_cur c = qf_cur_make(p->buf, p->size);
    int rc = 0;

    for (;;) {
        uint8_t op, u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64, first = 0, k;
        qf_pkl_id id, a, b, cc;

        p->at = c.pos;
        if (qf_cur_u8(&c, &op) != 0)
            return fail(p, QF_ETRUNC, "the pickle ends without STOP");
        switch (op) {
        case 0x80: /* PROTO */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "PROTO without its version");
            if (u8 > 5)
                return fail(p, QF_EUNSUPPORTED, "pickle protocol %u (at most 5 is read)", (unsigned)u8);
            if (u8 > p->protocol)
                p->protocol = u8;
            break;
        case 0x95: /* FRAME: a length hint; the opcodes inside are read as usual */
            if (qf_cur_u64(&c, &u64) != 0)
                return fail(p, QF_ETRUNC, "FRAME without its length");
            if (u64 > qf_cur_left(&c))
                return fail(p, QF_ETRUNC, "FRAME of %" PRIu64 " bytes, but only %" PRIu64 " are left",
                            u64, qf_cur_left(&c));
            break;
        case '.': /* STOP */
            if (p->n_marks != 0)
                return fail(p, QF_EFORMAT, "STOP with %" PRIu32 " MARK%s still open", p->n_marks,
                            p->n_marks == 1 ? "" : "s");
            if (p->n_stack != 1)
                return fail(p, QF_EFORMAT, "STOP with %" PRIu64 " objects on the stack (1 expected)",
                            p->n_stack);
            if (qf_cur_left(&c) != 0) {
                p->at = c.pos;
                return fail(p, QF_EFORMAT, "%" PRIu64 " bytes after STOP (a second pickle?)",
                            qf_cur_left(&c));
            }
            p->root = pop(p);
            return 0;
        case '(': /* MARK */
            if ((rc = push_mark(p)) != 0)
                return rc;
            break;
        case '0': /* POP: an item, or the mark when none is above it */
            if (avail(p) > 0)
                (void)pop(p);
            else if ((rc = pop_mark(p, "POP", &first)) != 0)
                return rc;
            break;
        case '1': /* POP_MARK */
            if ((rc = pop_mark(p, "POP_MARK", &first)) != 0)
                return rc;
            p->n_stack = first;
            break;
        case '2': /* DUP */
            if ((rc = need(p, 1, "DUP")) != 0 || (rc = push(p, top(p))) != 0)
                return rc;
            break;
        case 'N':
            if ((rc = push_scalar(p, QF_PKL_NONE, 0)) != 0)
                return rc;
            break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            if ((rc = push_scalar(p, QF_PKL_BOOL, op == 0x88)) != 0)
                return rc;
            break;
        case 'J': /* BININT */
            if (qf_cur_u32(&c, &u32) != 0)
                return fail(p, QF_ETRUNC, "BININT runs past the end");
            if ((rc = push_scalar(p, QF_PKL_INT, (int64_t)(int32_t)u32)) != 0)
                return rc;
            break;
        case 'K': /* BININT1 */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "BININT1 runs past the end");
            if ((rc = push_scalar(p, QF_PKL_INT, u8)) != 0)
                return rc;
            break;
        case 'M': /* BININT2 */
            if (qf_cur_u16(&c, &u16) != 0)
                return fail(p, QF_ETRUNC, "BININT2 runs past the end");
            if ((rc = push_scalar(p, QF_PKL_INT, u16)) != 0)
                return rc;
            break;
        case 0x8a: /* LONG1 */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "LONG1 runs past the end");
            if ((rc = push_long(p, &c, u8, "LONG1")) != 0)
                return rc;
            break;
        case 0x8b: /* LONG4 */
            if (qf_cur_u32(&c, &u32) != 0)
                return fail(p, QF_ETRUNC, "LONG4 runs past the end");
            if ((rc = push_long(p, &c, u32, "LONG4")) != 0)
                return rc;
            break;
        case 'I':
            if ((rc = read_int_text(p, &c)) != 0)
                return rc;
            break;
        case 'G': { /* BINFLOAT, big-endian */
            const uint8_t *f8;
            uint64_t bits = 0;
            int j;
            double d;
            if (qf_cur_bytes(&c, 8, &f8) != 0)
                return fail(p, QF_ETRUNC, "BINFLOAT runs past the end");
            for (j = 0; j < 8; j++)
                bits = bits << 8 | f8[j];
            memcpy(&d, &bits, sizeof d);
            if ((rc = new_obj(p, QF_PKL_FLOAT, &id)) != 0)
                return rc;
            p->objs[id].f = d;
            if ((rc = push(p, id)) != 0)
                return rc;
            break;
        }
        case 'X': case 'T': case 'B': /* BINUNICODE, BINSTRING, BINBYTES: 4-byte length */
            if (qf_cur_u32(&c, &u32) != 0)
                return fail(p, QF_ETRUNC, "string length runs past the end");
            if (op == 'T' && (int32_t)u32 < 0)
                return fail(p, QF_EFORMAT, "BINSTRING of negative length");
            if ((rc = read_str(p, &c, u32, op == 'B' ? QF_PKL_BYTES : QF_PKL_STR,
                               op == 'X' ? "BINUNICODE" : op == 'T' ? "BINSTRING" : "BINBYTES")) != 0)
                return rc;
            break;
        case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "string length runs past the end");
            if ((rc = read_str(p, &c, u8, op == 'C' ? QF_PKL_BYTES : QF_PKL_STR,
                               op == 0x8c ? "SHORT_BINUNICODE" : op == 'U' ? "SHORT_BINSTRING" : "SHORT_BINBYTES")) != 0)
                return rc;
            break;
        case 0x8d: case 0x8e: /* BINUNICODE8, BINBYTES8 */
            if (qf_cur_u64(&c, &u64) != 0)
                return fail(p, QF_ETRUNC, "string length runs past the end");
            if ((rc = read_str(p, &c, u64, op == 0x8e ? QF_PKL_BYTES : QF_PKL_STR,
                               op == 0x8d ? "BINUNICODE8" : "BINBYTES8")) != 0)
                return rc;
            break;
        case ')': /* EMPTY_TUPLE */
            if ((rc = make_tuple(p, NULL, 0, &id)) != 0 || (rc = push(p, id)) != 0)
                return rc;
            break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
            k = (uint64_t)(op - 0x84);
            if ((rc = need(p, k, "TUPLEn")) != 0)
                return rc;
            if ((rc = make_tuple(p, p->stack + p->n_stack - k, k, &id)) != 0)
                return rc;
            p->n_stack -= k;
            if ((rc = push(p, id)) != 0)
                return rc;
            break;
        case 't': /* TUPLE */
            if ((rc = pop_mark(p, "TUPLE", &first)) != 0)
                return rc;
            if ((rc = make_tuple(p, p->stack + first, p->n_stack - first, &id)) != 0)
                return rc;
            p->n_stack = first;
            if ((rc = push(p, id)) != 0)
                return rc;
            break;
        case ']': case '}': case 0x8f: /* EMPTY_LIST, EMPTY_DICT, EMPTY_SET */
            if ((rc = new_obj(p, op == ']' ? QF_PKL_LIST : op == '}' ? QF_PKL_DICT : QF_PKL_SET, &id)) != 0 ||
                (rc = push(p, id)) != 0)
                return rc;
            break;
        case 'l': case 'd': case 0x91: /* LIST, DICT, FROZENSET: from the items above MARK */
            if ((rc = pop_mark(p, op == 'l' ? "LIST" : op == 'd' ? "DICT" : "FROZENSET", &first)) != 0)
                return rc;
            k = p->n_stack - first;
            if (op == 'd' && k % 2 != 0)
                return fail(p, QF_EFORMAT, "DICT with an odd number (%" PRIu64 ") of items", k);
            if ((rc = new_obj(p, op == 'l' ? QF_PKL_LIST : op == 'd' ? QF_PKL_DICT : QF_PKL_SET, &id)) != 0)
                return rc;
            if ((rc = add_items(p, id, p->stack + first, k)) != 0)
                return rc;
            p->n_stack = first;
            if ((rc = push(p, id)) != 0)
                return rc;
            break;
        case 'a': /* APPEND */
            if ((rc = need(p, 2, "APPEND")) != 0)
                return rc;
            a = pop(p);
            cc = top(p);
            if (p->objs[cc].kind != QF_PKL_LIST)
                return fail(p, QF_EFORMAT, "APPEND to a %s", qf_pkl_kind_name(p->objs[cc].kind));
            if ((rc = add_items(p, cc, &a, 1)) != 0)
                return rc;
            break;
        case 'e': case 0x90: /* APPENDS, ADDITEMS */
            if ((rc = pop_mark(p, op == 'e' ? "APPENDS" : "ADDITEMS", &first)) != 0)
                return rc;
            if (first <= base_of(p))
                return fail(p, QF_EFORMAT, "%s with no container below the MARK", op == 'e' ? "APPENDS" : "ADDITEMS");
            cc = p->stack[first - 1];
            if (p->objs[cc].kind != (op == 'e' ? QF_PKL_LIST : QF_PKL_SET))
                return fail(p, QF_EFORMAT, "%s to a %s", op == 'e' ? "APPENDS" : "ADDITEMS",
                            qf_pkl_kind_name(p->objs[cc].kind));
            if ((rc = add_items(p, cc, p->stack + first, p->n_stack - first)) != 0)
                return rc;
            p->n_stack = first;
            break;
        case 's': /* SETITEM */
            if ((rc = need(p, 3, "SETITEM")) != 0)
                return rc;
            b = pop(p);
            a = pop(p);
            cc = top(p);
            if (p->objs[cc].kind != QF_PKL_DICT)
                return fail(p, QF_EFORMAT, "SETITEM on a %s", qf_pkl_kind_name(p->objs[cc].kind));
            {
                qf_pkl_id kv[2] = { a, b };
                if ((rc = add_items(p, cc, kv, 2)) != 0)
                    return rc;
            }
            break;
        case 'u': /* SETITEMS */
            if ((rc = pop_mark(p, "SETITEMS", &first)) != 0)
                return rc;
            if (first <= base_of(p))
                return fail(p, QF_EFORMAT, "SETITEMS with no dict below the MARK");
            cc = p->stack[first - 1];
            if (p->objs[cc].kind != QF_PKL_DICT)
                return fail(p, QF_EFORMAT, "SETITEMS on a %s", qf_pkl_kind_name(p->objs[cc].kind));
            if ((p->n_stack - first) % 2 != 0)
                return fail(p, QF_EFORMAT, "SETITEMS with an odd number (%" PRIu64 ") of items",
                            p->n_stack - first);
            if ((rc = add_items(p, cc, p->stack + first, p->n_stack - first)) != 0)
                return rc;
            p->n_stack = first;
            break;
        case 'q': /* BINPUT */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "BINPUT runs past the end");
            if ((rc = memo_put(p, u8, "BINPUT")) != 0)
                return rc;
            break;
        case 'r': /* LONG_BINPUT */
            if (qf_cur_u32(&c, &u32) != 0)
                return fail(p, QF_ETRUNC, "LONG_BINPUT runs past the end");
            if ((rc = memo_put(p, u32, "LONG_BINPUT")) != 0)
                return rc;
            break;
        case 0x94: /* MEMOIZE: the next slot is the memo's length */
            if ((rc = memo_put(p, p->n_memo_set, "MEMOIZE")) != 0)
                return rc;
            break;
        case 'h': /* BINGET */
            if (qf_cur_u8(&c, &u8) != 0)
                return fail(p, QF_ETRUNC, "BINGET runs past the end");
            if ((rc = memo_get(p, u8, "BINGET")) != 0)
                return rc;
            break;
        case 'j': /* LONG_BINGET */
            if (qf_cur_u32(&c, &u32) != 0)
                return fail(p, QF_ETRUNC, "LONG_BINGET runs past the end");
            if ((rc = memo_get(p, u32, "LONG_BINGET")) != 0)
                return rc;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const char *mod, *nm;
            uint64_t ml, nl;
            if ((rc = read_line(p, &c, 256, &mod, &ml, "GLOBAL")) != 0 ||
                (rc = read_line(p, &c, 256, &nm, &nl, "GLOBAL")) != 0)
                return rc;
            if ((rc = push_global(p, "GLOBAL", mod, ml, nm, nl)) != 0)
                return rc;
            break;
        }
        case 0x93: /* STACK_GLOBAL: module name */
            if ((rc = need(p, 2, "STACK_GLOBAL")) != 0)
                return rc;
            b = pop(p);
            a = pop(p);
            if (p->objs[a].kind != QF_PKL_STR || p->objs[b].kind != QF_PKL_STR)
                return fail(p, QF_EFORMAT, "STACK_GLOBAL of a %s and a %s (two str are needed)",
                            qf_pkl_kind_name(p->objs[a].kind), qf_pkl_kind_name(p->objs[b].kind));
            if ((rc = push_global(p, "STACK_GLOBAL", p->objs[a].s, p->objs[a].len, p->objs[b].s,
                                  p->objs[b].len)) != 0)
                return rc;
            break;
        case 'R':
            if ((rc = do_reduce(p)) != 0)
                return rc;
            break;
        case 'b':
            if ((rc = do_build(p)) != 0)
                return rc;
            break;
        case 'Q': /* BINPERSID */
            if ((rc = need(p, 1, "BINPERSID")) != 0)
                return rc;
            a = pop(p);
            if ((rc = new_obj(p, QF_PKL_PERSID, &id)) != 0)
                return rc;
            p->objs[id].arg = a;
            if ((rc = note_child(p, id, a)) != 0 || (rc = push(p, id)) != 0)
                return rc;
            break;
        case 0x81: case 0x92: case 'i': case 'o':
            return refuse_instance(p, &c, op);
        case 0x82: case 0x83: case 0x84:
            return fail(p, QF_EFORMAT, "EXT%d refused (the copyreg extension registry names code to run)",
                        op == 0x82 ? 1 : op == 0x83 ? 2 : 4);
        case 'P': case 'g': case 'p': case 'S': case 'V': case 'F': case 'L':
            return fail(p, QF_EUNSUPPORTED, "protocol-0 text opcode '%c' (0x%02x) is not read", op, op);
        case 0x96: case 0x97: case 0x98:
            return fail(p, QF_EUNSUPPORTED, "protocol-5 out-of-band buffer opcode 0x%02x is not read", op);
        default:
            return fail(p, QF_EFORMAT, "unknown opcode 0x%02x", op);
        }
    }
}

/* =====================================================================
 * Public
 * ===================================================================== */

void qf_pkl_free(qf_pkl *p)
{
    uint32_t i;

    if (!p)
        return;
    for (i = 1; i <= p->n_objs; i++) {
        qf_pkl_kind k = p->objs[i].kind;
        if (k == QF_PKL_TUPLE || k == QF_PKL_LIST || k == QF_PKL_SET || k == QF_PKL_DICT)
            free((void *)p->objs[i].items);
    }
    free(p->objs);
    free(p->caps);
    free(p->depth);
    free(p->globals); /* module/name strings belong to the caller's allow-list */
    free(p->stack);
    free(p->marks);
    free(p->memo);
    free(p->name);
    free(p);
}

int qf_pkl_read(const void *buf, uint64_t size, const char *name, const qf_pkl_allow *allow,
                size_t n_allow, const qf_pkl_limits *limits, qf_pkl **out, qf_err *err)
{
    qf_pkl *p;
    int rc;

    if (!name)
        name = "<pickle>";
    if (!out)
        return qf_err_set(err, QF_EINVAL, "%s: no output handle", name);
    *out = NULL;
    if (!buf && size > 0)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    }
    p->buf = buf;
    p->size = size;
    p->allow = allow;
    p->n_allow = allow ? n_allow : 0;
    p->err = err;
    if (limits)
        p->lim = *limits;
    if (p->lim.max_objects == 0 || p->lim.max_objects > QF_PKL_MAX_OBJECTS)
        p->lim.max_objects = QF_PKL_MAX_OBJECTS;
    if (p->lim.max_memo == 0 || p->lim.max_memo > QF_PKL_MAX_MEMO)
        p->lim.max_memo = QF_PKL_MAX_MEMO;
    if (p->lim.max_depth == 0)
        p->lim.max_depth = QF_PKL_MAX_DEPTH;
    /* Never NULL: opcodes take `stack + k` even when nothing is on it. */
    p->cap_stack = 256;
    p->stack = malloc((size_t)p->cap_stack * sizeof *p->stack);
    if (!p->stack) {
        qf_pkl_free(p);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    }
    rc = run(p);
    /* The parse state is not needed any more. */
    free(p->stack);
    free(p->marks);
    free(p->memo);
    p->stack = NULL;
    p->marks = NULL;
    p->memo = NULL;
    p->allow = NULL;
    p->err = NULL;
    if (rc != 0) {
        qf_pkl_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

qf_pkl_id qf_pkl_root(const qf_pkl *p) { return p ? p->root : 0; }

uint32_t qf_pkl_count(const qf_pkl *p) { return p ? p->n_objs : 0; }

const qf_pkl_obj *qf_pkl_get(const qf_pkl *p, qf_pkl_id id)
{
    return p && id >= 1 && id <= p->n_objs ? &p->objs[id] : NULL;
}

int qf_pkl_protocol(const qf_pkl *p) { return p ? p->protocol : 0; }

uint32_t qf_pkl_global_count(const qf_pkl *p) { return p ? p->n_globals : 0; }

const qf_pkl_global *qf_pkl_global_at(const qf_pkl *p, uint32_t i)
{
    return p && i < p->n_globals ? &p->globals[i] : NULL;
}
