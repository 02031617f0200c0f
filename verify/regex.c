/*
 * verify/regex.c - a backtracking matcher for the ECMAScript subset of the
 * pre-tokenizer regexes, and llama.cpp's unicode_regex_split on top of it.
 * See verify/tokenizer_impl.h.
 *
 * Why a matcher of our own: llama.cpp runs every pre-tokenizer regex other
 * than GPT-2's and LLaMA-3's through std::regex (ECMAScript grammar), over a
 * "collapsed" text where each code point is one unit. To give the same
 * words we need the same semantics, not a POSIX or PCRE library: leftmost
 * match, alternatives tried in order (not longest), greedy repeats that
 * backtrack, lookahead that is atomic, and ECMAScript's rule that a repeat
 * iteration matching the empty string (once the minimum is met) fails.
 *
 * Matching is continuation-passing: each step gets "what to match next" as a
 * chain of small structs on the C stack. Repeats of one-character items
 * (a literal, a class, or a group that can only match one character, such as
 * tekken's ((?=[\p{L}])([^a-z]))) run without recursion per character, so the
 * depth stays small for the regexes llama.cpp uses; a depth and a step
 * budget turn pathological inputs into QF_ELIMIT instead of a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "verify/tokenizer_impl.h"

/* =====================================================================
 * Compiled form
 * ===================================================================== */

enum { N_CHAR, N_CLASS, N_ANY, N_BOL, N_EOL, N_GROUP, N_LOOK, N_REPEAT };

/* Class escapes usable inside and outside brackets. */
enum { E_SPACE = 1, E_NSPACE = 2, E_DIGIT = 4, E_NDIGIT = 8, E_WORD = 16, E_NWORD = 32 };

#define REP_INF UINT32_MAX

typedef struct rnode {
    int type;
    uint32_t c;        /* N_CHAR */
    int neg;           /* N_CLASS: [^...]; N_LOOK: (?!...) */
    unsigned esc;      /* N_CLASS: class escapes */
    size_t r0, nr;     /* N_CLASS: ranges [r0, r0 + nr) in re->ranges */
    size_t a0, na;     /* N_GROUP, N_LOOK: alternatives [a0, a0 + na) in re->alts */
    size_t child;      /* N_REPEAT */
    uint32_t min, max; /* N_REPEAT */
    int greedy;        /* N_REPEAT */
    int single;        /* matches exactly one character whenever it matches */
} rnode;

typedef struct rseq {
    size_t i0, n; /* node indexes re->items[i0, i0 + n) */
} rseq;

struct qf_regex {
    rnode *nodes;
    size_t nn, capn;
    uint32_t (*ranges)[2];
    size_t nrng, caprng;
    size_t *items;
    size_t nit, capit;
    rseq *alts;
    size_t nalt, capalt;
    size_t top; /* an N_GROUP node */
};

static int grow(void **p, size_t *cap, size_t need, size_t elt)
{
    size_t n = *cap ? *cap : 16;
    void *q;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    q = realloc(*p, n * elt);
    if (!q)
        return QF_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

void qf_regex_free(qf_regex *re)
{
    if (!re)
        return;
    free(re->nodes);
    free(re->ranges);
    free(re->items);
    free(re->alts);
    free(re);
}

/* =====================================================================
 * Parser
 * ===================================================================== */

typedef struct parser {
    qf_regex *re;
    const uint32_t *p;
    size_t n, i;
    int depth;
    qf_err *err;
} parser;

static int perr(parser *ps, int code, const char *what)
{
    return qf_err_set(ps->err, code, "regex: %s at offset %zu", what, ps->i);
}

static int new_node(parser *ps, int type, size_t *out)
{
    qf_regex *re = ps->re;
    if (grow((void **)&re->nodes, &re->capn, re->nn + 1, sizeof *re->nodes))
        return perr(ps, QF_ENOMEM, "out of memory");
    memset(&re->nodes[re->nn], 0, sizeof re->nodes[0]);
    re->nodes[re->nn].type = type;
    *out = re->nn++;
    return 0;
}

static int add_range(parser *ps, uint32_t lo, uint32_t hi)
{
    qf_regex *re = ps->re;
    if (grow((void **)&re->ranges, &re->caprng, re->nrng + 1, sizeof *re->ranges))
        return perr(ps, QF_ENOMEM, "out of memory");
    re->ranges[re->nrng][0] = lo;
    re->ranges[re->nrng][1] = hi;
    re->nrng++;
    return 0;
}

static int hexval(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

/*
 * An escape after '\' (ps->i at the letter). Sets *esc for a class escape,
 * else *c for a character. in_class: \b is backspace there.
 */
static int parse_escape(parser *ps, int in_class, unsigned *esc, uint32_t *c)
{
    uint32_t e;
    int k, nd, v;

    *esc = 0;
    if (ps->i >= ps->n)
        return perr(ps, QF_EFORMAT, "trailing backslash");
    e = ps->p[ps->i++];
    switch (e) {
    case 's': *esc = E_SPACE; return 0;
    case 'S': *esc = E_NSPACE; return 0;
    case 'd': *esc = E_DIGIT; return 0;
    case 'D': *esc = E_NDIGIT; return 0;
    case 'w': *esc = E_WORD; return 0;
    case 'W': *esc = E_NWORD; return 0;
    case 'r': *c = '\r'; return 0;
    case 'n': *c = '\n'; return 0;
    case 't': *c = '\t'; return 0;
    case 'v': *c = '\v'; return 0;
    case 'f': *c = '\f'; return 0;
    case '0': *c = 0; return 0;
    case 'x':
    case 'u':
        nd = e == 'x' ? 2 : 4;
        *c = 0;
        for (k = 0; k < nd; k++) {
            if (ps->i >= ps->n || (v = hexval(ps->p[ps->i])) < 0)
                return perr(ps, QF_EFORMAT, "bad \\x or \\u escape");
            *c = *c * 16 + (uint32_t)v;
            ps->i++;
        }
        return 0;
    case 'b':
        if (in_class) {
            *c = '\b';
            return 0;
        }
        return perr(ps, QF_EUNSUPPORTED, "\\b is not supported");
    case 'B':
        return perr(ps, QF_EUNSUPPORTED, "\\B is not supported");
    case 'p':
    case 'P':
        return perr(ps, QF_EUNSUPPORTED, "\\p is not supported (collapse it first)");
    default:
        if (e >= '1' && e <= '9')
            return perr(ps, QF_EUNSUPPORTED, "backreferences are not supported");
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))
            return perr(ps, QF_EUNSUPPORTED, "unknown escape");
        *c = e; /* identity escape: \[ \] \\ \- \$ ... */
        return 0;
    }
}

/* A bracket class; ps->i just after '['. */
static int parse_class(parser *ps, size_t *out)
{
    qf_regex *re = ps->re;
    size_t id, r0 = re->nrng;
    unsigned esc_all = 0;
    int neg = 0, rc;

    if (ps->i < ps->n && ps->p[ps->i] == '^') {
        neg = 1;
        ps->i++;
    }
    for (;;) {
        uint32_t lo, hi;
        unsigned esc = 0;

        if (ps->i >= ps->n)
            return perr(ps, QF_EFORMAT, "unterminated [");
        if (ps->p[ps->i] == ']') {
            ps->i++;
            break;
        }
        lo = ps->p[ps->i++];
        if (lo == '\\' && (rc = parse_escape(ps, 1, &esc, &lo)) != 0)
            return rc;
        if (esc) {
            esc_all |= esc;
            continue;
        }
        hi = lo;
        /* a-b, unless '-' is last ("[a-]") */
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            unsigned esc2 = 0;
            ps->i++;
            hi = ps->p[ps->i++];
            if (hi == '\\' && (rc = parse_escape(ps, 1, &esc2, &hi)) != 0)
                return rc;
            if (esc2)
                return perr(ps, QF_EFORMAT, "class escape as a range end");
            if (hi < lo)
                return perr(ps, QF_EFORMAT, "range out of order");
        }
        if ((rc = add_range(ps, lo, hi)) != 0)
            return rc;
    }
    if ((rc = new_node(ps, N_CLASS, &id)) != 0)
        return rc;
    re->nodes[id].neg = neg;
    re->nodes[id].esc = esc_all;
    re->nodes[id].r0 = r0;
    re->nodes[id].nr = re->nrng - r0;
    re->nodes[id].single = 1;
    *out = id;
    return 0;
}

static int parse_disjunction(parser *ps, size_t *a0, size_t *na);

/* A growable list of node indexes (one alternative being parsed). */
typedef struct idlist {
    size_t *v;
    size_t n, cap;
} idlist;

static int parse_number(parser *ps, uint32_t *v)
{
    uint64_t x = 0;
    size_t start = ps->i;

    while (ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9') {
        x = x * 10 + (ps->p[ps->i++] - '0');
        if (x > 100000)
            return perr(ps, QF_ELIMIT, "repeat count too large");
    }
    if (ps->i == start)
        return 1;
    *v = (uint32_t)x;
    return 0;
}

/* Is "{" at ps->i a quantifier {n}, {n,}, {n,m}? (Otherwise a literal.) */
static int parse_braces(parser *ps, uint32_t *min, uint32_t *max)
{
    size_t save = ps->i;
    int rc;

    ps->i++; /* '{' */
    if ((rc = parse_number(ps, min)) != 0) {
        ps->i = save;
        return rc < 0 ? rc : 1;
    }
    *max = *min;
    if (ps->i < ps->n && ps->p[ps->i] == ',') {
        ps->i++;
        *max = REP_INF;
        if (ps->i < ps->n && ps->p[ps->i] != '}') {
            if ((rc = parse_number(ps, max)) != 0) {
                ps->i = save;
                return rc < 0 ? rc : 1;
            }
        }
    }
    if (ps->i >= ps->n || ps->p[ps->i] != '}') {
        ps->i = save;
        return 1;
    }
    ps->i++;
    if (*max < *min)
        return perr(ps, QF_EFORMAT, "repeat {n,m} with m < n");
    return 0;
}

static int compute_single(qf_regex *re, size_t id);

static int parse_alternative(parser *ps, idlist *L)
{
    qf_regex *re = ps->re;
    int rc;

    while (ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        uint32_t c = ps->p[ps->i];
        size_t id = 0;
        int quantifiable = 1;

        if (c == '(') {
            int type = N_GROUP, neg = 0;
            size_t a0, na;
            ps->i++;
            if (ps->i < ps->n && ps->p[ps->i] == '?') {
                uint32_t k = ps->i + 1 < ps->n ? ps->p[ps->i + 1] : 0;
                if (k == ':') {
                    ps->i += 2;
                } else if (k == '=' || k == '!') {
                    type = N_LOOK;
                    neg = k == '!';
                    ps->i += 2;
                } else {
                    return perr(ps, QF_EUNSUPPORTED, "(? form not supported");
                }
            }
            if (++ps->depth > 64)
                return perr(ps, QF_ELIMIT, "groups nested too deep");
            if ((rc = parse_disjunction(ps, &a0, &na)) != 0)
                return rc;
            ps->depth--;
            if (ps->i >= ps->n || ps->p[ps->i] != ')')
                return perr(ps, QF_EFORMAT, "missing )");
            ps->i++;
            if ((rc = new_node(ps, type, &id)) != 0)
                return rc;
            re->nodes[id].neg = neg;
            re->nodes[id].a0 = a0;
            re->nodes[id].na = na;
        } else if (c == '[') {
            ps->i++;
            if ((rc = parse_class(ps, &id)) != 0)
                return rc;
        } else if (c == '.') {
            ps->i++;
            if ((rc = new_node(ps, N_ANY, &id)) != 0)
                return rc;
        } else if (c == '^' || c == '$') {
            ps->i++;
            if ((rc = new_node(ps, c == '^' ? N_BOL : N_EOL, &id)) != 0)
                return rc;
            quantifiable = 0;
        } else if (c == '*' || c == '+' || c == '?') {
            return perr(ps, QF_EFORMAT, "nothing to repeat");
        } else if (c == '{') {
            uint32_t mn, mx;
            if (parse_braces(ps, &mn, &mx) == 0)
                return perr(ps, QF_EFORMAT, "nothing to repeat");
            ps->i++;
            if ((rc = new_node(ps, N_CHAR, &id)) != 0)
                return rc;
            re->nodes[id].c = c;
        } else if (c == '\\') {
            unsigned esc;
            uint32_t ch = 0;
            ps->i++;
            if ((rc = parse_escape(ps, 0, &esc, &ch)) != 0)
                return rc;
            if (esc) {
                if ((rc = new_node(ps, N_CLASS, &id)) != 0)
                    return rc;
                re->nodes[id].esc = esc;
                re->nodes[id].r0 = re->nrng;
            } else {
                if ((rc = new_node(ps, N_CHAR, &id)) != 0)
                    return rc;
                re->nodes[id].c = ch;
            }
        } else {
            ps->i++;
            if ((rc = new_node(ps, N_CHAR, &id)) != 0)
                return rc;
            re->nodes[id].c = c;
        }
        compute_single(re, id);

        /* quantifier */
        if (quantifiable && ps->i < ps->n) {
            uint32_t q = ps->p[ps->i], mn = 0, mx = 0;
            int have = 1;
            if (q == '*') {
                mn = 0, mx = REP_INF, ps->i++;
            } else if (q == '+') {
                mn = 1, mx = REP_INF, ps->i++;
            } else if (q == '?') {
                mn = 0, mx = 1, ps->i++;
            } else if (q == '{') {
                rc = parse_braces(ps, &mn, &mx);
                if (rc < 0)
                    return rc;
                have = rc == 0;
            } else {
                have = 0;
            }
            if (have) {
                size_t rid;
                int greedy = 1;
                if (ps->i < ps->n && ps->p[ps->i] == '?') {
                    greedy = 0;
                    ps->i++;
                }
                if ((rc = new_node(ps, N_REPEAT, &rid)) != 0)
                    return rc;
                re->nodes[rid].child = id;
                re->nodes[rid].min = mn;
                re->nodes[rid].max = mx;
                re->nodes[rid].greedy = greedy;
                id = rid;
                if (ps->i < ps->n &&
                    (ps->p[ps->i] == '*' || ps->p[ps->i] == '+' || ps->p[ps->i] == '?'))
                    return perr(ps, QF_EFORMAT, "nothing to repeat");
            }
        }
        if (grow((void **)&L->v, &L->cap, L->n + 1, sizeof *L->v))
            return perr(ps, QF_ENOMEM, "out of memory");
        L->v[L->n++] = id;
    }
    return 0;
}

/* alternatives separated by '|'; stored contiguously in re->alts. */
static int parse_disjunction(parser *ps, size_t *a0, size_t *na)
{
    qf_regex *re = ps->re;
    rseq *tmp = NULL;
    size_t nt = 0, capt = 0, k;
    int rc = 0;

    for (;;) {
        idlist L = { NULL, 0, 0 };
        if ((rc = parse_alternative(ps, &L)) != 0) {
            free(L.v);
            goto done;
        }
        if (grow((void **)&re->items, &re->capit, re->nit + L.n, sizeof *re->items) ||
            grow((void **)&tmp, &capt, nt + 1, sizeof *tmp)) {
            free(L.v);
            rc = perr(ps, QF_ENOMEM, "out of memory");
            goto done;
        }
        if (L.n)
            memcpy(re->items + re->nit, L.v, L.n * sizeof *L.v);
        tmp[nt].i0 = re->nit;
        tmp[nt].n = L.n;
        nt++;
        re->nit += L.n;
        free(L.v);
        if (ps->i < ps->n && ps->p[ps->i] == '|') {
            ps->i++;
            continue;
        }
        break;
    }
    if (grow((void **)&re->alts, &re->capalt, re->nalt + nt, sizeof *re->alts)) {
        rc = perr(ps, QF_ENOMEM, "out of memory");
        goto done;
    }
    *a0 = re->nalt;
    *na = nt;
    for (k = 0; k < nt; k++)
        re->alts[re->nalt++] = tmp[k];
done:
    free(tmp);
    return rc;
}

/*
 * A node matches exactly one character when it is a literal, a class, '.',
 * or a group each of whose alternatives is some lookaheads over one-character
 * bodies followed by one one-character item: then (?=X)Y at a character c is
 * X(c) && Y(c), and alternatives of such items are their union.
 */
static int compute_single(qf_regex *re, size_t id)
{
    rnode *nd = &re->nodes[id];
    size_t a, k;

    if (nd->type == N_CHAR || nd->type == N_CLASS || nd->type == N_ANY) {
        nd->single = 1;
        return 1;
    }
    nd->single = 0;
    if (nd->type != N_GROUP || nd->na == 0)
        return 0;
    for (a = 0; a < nd->na; a++) {
        const rseq *s = &re->alts[nd->a0 + a];
        if (s->n == 0)
            return 0;
        for (k = 0; k < s->n; k++) {
            const rnode *it = &re->nodes[re->items[s->i0 + k]];
            if (k + 1 < s->n) {
                const rseq *b;
                size_t j;
                if (it->type != N_LOOK)
                    return 0;
                for (j = 0; j < it->na; j++) {
                    b = &re->alts[it->a0 + j];
                    if (b->n != 1 || !re->nodes[re->items[b->i0]].single)
                        return 0;
                }
            } else if (!it->single) {
                return 0;
            }
        }
    }
    nd->single = 1;
    return 1;
}

int qf_regex_compile(const uint32_t *pat, size_t n, qf_regex **out, qf_err *err)
{
    parser ps;
    qf_regex *re = calloc(1, sizeof *re);
    size_t a0, na, top;
    int rc;

    *out = NULL;
    if (!re)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    ps.re = re;
    ps.p = pat;
    ps.n = n;
    ps.i = 0;
    ps.depth = 0;
    ps.err = err;
    if ((rc = parse_disjunction(&ps, &a0, &na)) != 0)
        goto fail;
    if (ps.i != n) {
        rc = perr(&ps, QF_EFORMAT, "unmatched )");
        goto fail;
    }
    if ((rc = new_node(&ps, N_GROUP, &top)) != 0)
        goto fail;
    re->nodes[top].a0 = a0;
    re->nodes[top].na = na;
    compute_single(re, top);
    re->top = top;
    *out = re;
    return 0;
fail:
    qf_regex_free(re);
    return rc;
}

/* =====================================================================
 * Matcher
 * ===================================================================== */

enum { K_DONE, K_LOOK, K_SEQ, K_REP };

typedef struct kont {
    int kind;
    size_t seq, i;       /* K_SEQ: alternative and next item */
    size_t rep;          /* K_REP: repeat node */
    uint32_t count;      /* K_REP: iterations done, counting the one just matched */
    size_t start;        /* K_REP: where that iteration started */
    const struct kont *next;
} kont;

typedef struct mstate {
    const qf_regex *re;
    const uint32_t *t;
    size_t begin, end;
    size_t match_end;
    uint64_t steps, budget;
    unsigned depth;
    int limited;
    size_t not_null_at; /* a match starting here must not be empty */
} mstate;

#define MAX_DEPTH 4000

static int is_space(uint32_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

static int is_word(uint32_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int class_match(const qf_regex *re, const rnode *nd, uint32_t c)
{
    size_t k;
    int in = 0;

    if (nd->esc) {
        if (((nd->esc & E_SPACE) && is_space(c)) || ((nd->esc & E_NSPACE) && !is_space(c)) ||
            ((nd->esc & E_DIGIT) && is_digit(c)) || ((nd->esc & E_NDIGIT) && !is_digit(c)) ||
            ((nd->esc & E_WORD) && is_word(c)) || ((nd->esc & E_NWORD) && !is_word(c)))
            in = 1;
    }
    for (k = 0; !in && k < nd->nr; k++)
        if (c >= re->ranges[nd->r0 + k][0] && c <= re->ranges[nd->r0 + k][1])
            in = 1;
    return in != nd->neg;
}

/* c matches the one-character node nd (nd->single). */
static int char_match(const qf_regex *re, const rnode *nd, uint32_t c)
{
    size_t a, k;

    switch (nd->type) {
    case N_CHAR:
        return c == nd->c;
    case N_CLASS:
        return class_match(re, nd, c);
    case N_ANY:
        return !(c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029);
    case N_GROUP:
        for (a = 0; a < nd->na; a++) {
            const rseq *s = &re->alts[nd->a0 + a];
            int ok = 1;
            for (k = 0; ok && k < s->n; k++) {
                const rnode *it = &re->nodes[re->items[s->i0 + k]];
                if (it->type == N_LOOK) {
                    size_t j;
                    int any = 0;
                    for (j = 0; j < it->na && !any; j++)
                        any = char_match(re, &re->nodes[re->items[re->alts[it->a0 + j].i0]], c);
                    ok = any != it->neg;
                } else {
                    ok = char_match(re, it, c);
                }
            }
            if (ok)
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static int run(mstate *m, const kont *k, size_t pos);

static int rep(mstate *m, size_t r, uint32_t count, size_t pos, const kont *next);

/* Match node id at pos, then continuation k. */
static int step(mstate *m, size_t id, const kont *k, size_t pos)
{
    const qf_regex *re = m->re;
    const rnode *nd = &re->nodes[id];
    size_t a;
    int rc = 0;

    if (++m->steps > m->budget || m->depth >= MAX_DEPTH) {
        m->limited = 1;
        return 0;
    }
    m->depth++;
    switch (nd->type) {
    case N_CHAR:
    case N_CLASS:
    case N_ANY:
        rc = pos < m->end && char_match(re, nd, m->t[pos]) ? run(m, k, pos + 1) : 0;
        break;
    case N_BOL:
        rc = pos == m->begin ? run(m, k, pos) : 0;
        break;
    case N_EOL:
        rc = pos == m->end ? run(m, k, pos) : 0;
        break;
    case N_GROUP:
        if (nd->single) {
            rc = pos < m->end && char_match(re, nd, m->t[pos]) ? run(m, k, pos + 1) : 0;
            break;
        }
        for (a = 0; a < nd->na && !rc && !m->limited; a++) {
            kont ka = { K_SEQ, nd->a0 + a, 0, 0, 0, 0, k };
            rc = run(m, &ka, pos);
        }
        break;
    case N_LOOK: {
        static const kont look_end = { K_LOOK, 0, 0, 0, 0, 0, NULL };
        int found = 0;
        for (a = 0; a < nd->na && !found && !m->limited; a++) {
            kont ka = { K_SEQ, nd->a0 + a, 0, 0, 0, 0, &look_end };
            found = run(m, &ka, pos);
        }
        rc = !m->limited && found != nd->neg ? run(m, k, pos) : 0;
        break;
    }
    case N_REPEAT: {
        const rnode *ch = &re->nodes[nd->child];
        if (ch->single) {
            /* one character per iteration: count the run, then try the
             * continuation from the longest (greedy) or shortest end */
            size_t len = 0, j;
            while (pos + len < m->end && len < nd->max && char_match(re, ch, m->t[pos + len]))
                len++;
            if (len < nd->min)
                break;
            if (nd->greedy) {
                for (j = len + 1; j-- > nd->min && !rc && !m->limited;)
                    rc = run(m, k, pos + j);
            } else {
                for (j = nd->min; j <= len && !rc && !m->limited; j++)
                    rc = run(m, k, pos + j);
            }
        } else {
            rc = rep(m, id, 0, pos, k);
        }
        break;
    }
    }
    m->depth--;
    return rc;
}

/* ECMAScript's RepeatMatcher for a repeat whose item is not one character. */
static int rep(mstate *m, size_t r, uint32_t count, size_t pos, const kont *next)
{
    const rnode *nd = &m->re->nodes[r];
    kont kr = { K_REP, 0, 0, r, count + 1, pos, next };

    if (nd->greedy) {
        if (count < nd->max && step(m, nd->child, &kr, pos))
            return 1;
        return count >= nd->min && !m->limited ? run(m, next, pos) : 0;
    }
    if (count >= nd->min && run(m, next, pos))
        return 1;
    return count < nd->max && !m->limited ? step(m, nd->child, &kr, pos) : 0;
}

static int run(mstate *m, const kont *k, size_t pos)
{
    const qf_regex *re = m->re;

    if (m->limited)
        return 0;
    switch (k->kind) {
    case K_DONE:
        if (pos == m->not_null_at)
            return 0;
        m->match_end = pos;
        return 1;
    case K_LOOK:
        return 1;
    case K_REP: {
        const rnode *nd = &re->nodes[k->rep];
        /* an empty iteration once the minimum is met fails */
        if (pos == k->start && k->count > nd->min)
            return 0;
        return rep(m, k->rep, k->count, pos, k->next);
    }
    default: {
        const rseq *s = &re->alts[k->seq];
        kont k2;
        if (k->i == s->n)
            return run(m, k->next, pos);
        k2 = *k;
        k2.i = k->i + 1;
        return step(m, re->items[s->i0 + k->i], &k2, pos);
    }
    }
}

/*
 * Leftmost match from pos; not_null_here: only a non-empty match starting at
 * pos (std::regex's match_not_null | match_continuous). 1, 0 or QF_ELIMIT.
 */
static int search(const qf_regex *re, const uint32_t *text, size_t begin, size_t end, size_t pos,
                  int not_null_here, size_t *ms, size_t *me)
{
    static const kont done = { K_DONE, 0, 0, 0, 0, 0, NULL };
    mstate m;
    size_t s;

    m.re = re;
    m.t = text;
    m.begin = begin;
    m.end = end;
    m.match_end = 0;
    m.steps = 0;
    m.budget = 1000000 + (uint64_t)(end - begin) * 20000;
    m.depth = 0;
    m.limited = 0;
    m.not_null_at = not_null_here ? pos : SIZE_MAX;
    for (s = pos; s <= end; s++) {
        if (step(&m, re->top, &done, s)) {
            *ms = s;
            *me = m.match_end;
            return 1;
        }
        if (m.limited)
            return QF_ELIMIT;
        if (not_null_here)
            break;
    }
    return 0;
}

int qf_regex_search(const qf_regex *re, const uint32_t *text, size_t begin, size_t end, size_t pos,
                    size_t *ms, size_t *me)
{
    return search(re, text, begin, end, pos, 0, ms, me);
}

/* =====================================================================
 * Pre-tokenizer (llama.cpp's unicode_regex_split)
 * ===================================================================== */

enum { CUSTOM_NONE, CUSTOM_GPT2, CUSTOM_LLAMA3 };

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char RE_LLAMA3_ORIG[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The \p{..} classes llama.cpp collapses: the unit standing for the class
 * and the ASCII members spelled out (bytes, as its k_ucat_cpt/k_ucat_map). */
static const struct {
    const char *name;
    unsigned flag;
    unsigned char unit;
    const char *ascii;
} UCAT[] = {
    { "\\p{N}", QF_UCP_NUMBER, 0xD1, "\x30-\x39" },
    { "\\p{L}", QF_UCP_LETTER, 0xD2, "\x41-\x5A\x61-\x7A" },
    { "\\p{P}", QF_UCP_PUNCT, 0xD3,
      "\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\\\x5B-\\\x5D\x5F\\\x7B\\\x7D" },
    { "\\p{M}", QF_UCP_MARK, 0xD4, "" },
    { "\\p{S}", QF_UCP_SYMBOL, 0xD5, "\\\x24\\\x2B\x3C-\x3E\x5E\x60\\\x7C" },
};
#define N_UCAT (sizeof UCAT / sizeof UCAT[0])

typedef struct pre_re {
    int custom;    /* CUSTOM_* */
    int collapsed; /* match over the collapsed text */
    qf_regex *re;  /* NULL for a custom regex we could not compile */
} pre_re;

struct qf_pretok {
    pre_re *r;
    size_t n;
    int need_collapse;
    int generic;
};

void qf_pretok_free(qf_pretok *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->n; i++)
        qf_regex_free(p->r[i].re);
    free(p->r);
    free(p);
}

void qf_pretok_set_generic(qf_pretok *p, int generic) { p->generic = generic; }

static int uses_ucat(const char *e)
{
    size_t k;
    for (k = 0; k < N_UCAT; k++)
        if (strstr(e, UCAT[k].name))
            return 1;
    return 0;
}

/* The regex with each \p{X} replaced as llama.cpp does (its bracket
 * tracking included), as byte units. */
static int collapse_regex(const char *e, uint32_t **out, size_t *n_out)
{
    size_t len = strlen(e), i, o = 0, k;
    uint32_t *u = malloc((len * 30 + 1) * sizeof *u);
    int inside = 0;

    if (!u)
        return QF_ENOMEM;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)e[i];
        if (c == '[' && (i == 0 || e[i - 1] != '\\')) {
            u[o++] = '[';
            inside = 1;
            continue;
        }
        if (inside && c == ']' && e[i - 1] != '\\') {
            u[o++] = ']';
            inside = 0;
            continue;
        }
        if (c == '\\' && i + 4 < len && e[i + 1] == 'p' && e[i + 2] == '{' && e[i + 4] == '}') {
            for (k = 0; k < N_UCAT; k++)
                if (!strncmp(e + i, UCAT[k].name, 5))
                    break;
            if (k < N_UCAT) {
                const char *a;
                if (!inside)
                    u[o++] = '[';
                u[o++] = UCAT[k].unit;
                for (a = UCAT[k].ascii; *a; a++)
                    u[o++] = (unsigned char)*a;
                if (!inside)
                    u[o++] = ']';
                i += 4;
                continue;
            }
        }
        u[o++] = c;
    }
    *out = u;
    *n_out = o;
    return 0;
}

int qf_pretok_new(const char *const *exprs, size_t n, qf_pretok **out, qf_err *err)
{
    qf_pretok *p = calloc(1, sizeof *p);
    size_t i;
    int rc = 0;

    *out = NULL;
    if (!p || !(p->r = calloc(n ? n : 1, sizeof *p->r))) {
        free(p);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    p->n = n;
    for (i = 0; i < n; i++) {
        const char *e = exprs[i];
        pre_re *r = &p->r[i];
        uint32_t *u = NULL;
        size_t nu = 0, k;
        qf_err sub = { 0 };

        if (uses_ucat(e))
            p->need_collapse = 1;
        if (!strcmp(e, RE_GPT2))
            r->custom = CUSTOM_GPT2;
        else if (!strcmp(e, RE_LLAMA3) || !strcmp(e, RE_LLAMA3_ORIG))
            r->custom = CUSTOM_LLAMA3;
        /* (?i:...) is not ECMAScript: the matcher uses the spelled-out form */
        if (r->custom == CUSTOM_LLAMA3)
            e = RE_LLAMA3;
        r->collapsed = uses_ucat(e);
        if (r->collapsed) {
            for (k = 0; e[k]; k++) {
                if ((unsigned char)e[k] >= 0x80) {
                    rc = qf_err_set(err, QF_EUNSUPPORTED,
                                    "pre-tokenizer regex %zu: unicode categories and non-ASCII "
                                    "characters together are not supported (as in llama.cpp)", i);
                    goto done;
                }
            }
            if (collapse_regex(e, &u, &nu)) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
        } else {
            size_t len = strlen(e);
            u = malloc((len + 1) * sizeof *u);
            if (!u) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
            nu = qf_unicode_decode(e, len, u);
        }
        rc = qf_regex_compile(u, nu, &r->re, &sub);
        free(u);
        if (rc) {
            if (r->custom != CUSTOM_NONE) {
                rc = 0; /* only the generic mode would need it */
                continue;
            }
            rc = qf_err_set(err, rc, "pre-tokenizer regex %zu: %s", i, sub.msg);
            goto done;
        }
    }
    *out = p;
    p = NULL;
done:
    qf_pretok_free(p);
    return rc;
}

/* Word lengths being built. */
typedef struct lens {
    size_t *v;
    size_t n, cap;
} lens;

static int lens_add(lens *L, size_t len)
{
    if (grow((void **)&L->v, &L->cap, L->n + 1, sizeof *L->v))
        return QF_ENOMEM;
    L->v[L->n++] = len;
    return 0;
}

/* Flags of the code point at pos inside [ini, end), else 0 (llama.cpp's
 * out-of-range "unicode_cpt_flags{}"), and the code point or OUT. */
#define OUT_OF_RANGE 0xFFFFFFFFu

typedef struct scan {
    const uint32_t *c;
    const unsigned *f;
    size_t ini, end, prev_end;
    lens *out;
    int oom;
} scan;

static uint32_t cpt_at(const scan *s, size_t pos)
{
    return pos >= s->ini && pos < s->end ? s->c[pos] : OUT_OF_RANGE;
}

static unsigned flags_at(const scan *s, size_t pos)
{
    return pos >= s->ini && pos < s->end ? s->f[pos] : 0;
}

static size_t add_token(scan *s, size_t end)
{
    size_t len = end - s->prev_end;
    if (len > 0 && lens_add(s->out, len))
        s->oom = 1;
    s->prev_end = end;
    return len;
}

#define IS_L(f) ((f) & QF_UCP_LETTER)
#define IS_N(f) ((f) & QF_UCP_NUMBER)
#define IS_WS(f) ((f) & QF_UCP_WHITESPACE)

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(scan *s)
{
    size_t pos = s->ini;

    while (pos < s->end) {
        uint32_t cpt = cpt_at(s, pos);
        unsigned flags = flags_at(s, pos), flags2;
        size_t nws = 0;

        if (cpt == '\'' && pos + 1 < s->end) {
            uint32_t n1 = cpt_at(s, pos + 1);
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                pos += add_token(s, pos + 2);
                continue;
            }
            if (pos + 2 < s->end) {
                uint32_t n2 = cpt_at(s, pos + 2);
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
                    (n1 == 'l' && n2 == 'l')) {
                    pos += add_token(s, pos + 3);
                    continue;
                }
            }
        }
        flags2 = cpt == ' ' ? flags_at(s, pos + 1) : flags;
        if (IS_L(flags2)) {
            pos += cpt == ' ';
            while (IS_L(flags2))
                flags2 = flags_at(s, ++pos);
            add_token(s, pos);
            continue;
        }
        if (IS_N(flags2)) {
            pos += cpt == ' ';
            while (IS_N(flags2))
                flags2 = flags_at(s, ++pos);
            add_token(s, pos);
            continue;
        }
        if (!(IS_WS(flags2) || IS_L(flags2) || IS_N(flags2)) && flags2) {
            pos += cpt == ' ';
            while (!(IS_WS(flags2) || IS_L(flags2) || IS_N(flags2)) && flags2)
                flags2 = flags_at(s, ++pos);
            add_token(s, pos);
            continue;
        }
        while (IS_WS(flags_at(s, pos + nws)))
            nws++;
        if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            add_token(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add_token(s, pos);
            continue;
        }
        add_token(s, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(scan *s)
{
    size_t pos = s->ini;

    while (pos < s->end) {
        uint32_t cpt = cpt_at(s, pos);
        unsigned flags = flags_at(s, pos), flags2;
        size_t nws = 0, last_rn = 0;

        if (cpt == '\'' && pos + 1 < s->end) {
            uint32_t n1 = ascii_lower(cpt_at(s, pos + 1));
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                pos += add_token(s, pos + 2);
                continue;
            }
            if (pos + 2 < s->end) {
                uint32_t n2 = ascii_lower(cpt_at(s, pos + 2));
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
                    (n1 == 'l' && n2 == 'l')) {
                    pos += add_token(s, pos + 3);
                    continue;
                }
            }
        }
        if (!(cpt == '\r' || cpt == '\n' || IS_N(flags))) {
            if (IS_L(flags) || IS_L(flags_at(s, pos + 1))) {
                pos++;
                while (IS_L(flags_at(s, pos)))
                    pos++;
                add_token(s, pos);
                continue;
            }
        }
        if (IS_N(flags)) {
            size_t ini = pos;
            while (IS_N(flags_at(s, pos))) {
                if (++pos - ini >= 3) {
                    add_token(s, pos);
                    ini = pos;
                }
            }
            add_token(s, pos);
            continue;
        }
        flags2 = cpt == ' ' ? flags_at(s, pos + 1) : flags;
        if (!(IS_WS(flags2) || IS_L(flags2) || IS_N(flags2)) && flags) {
            uint32_t c2;
            pos += cpt == ' ';
            while (!(IS_WS(flags2) || IS_L(flags2) || IS_N(flags2)) && flags2)
                flags2 = flags_at(s, ++pos);
            c2 = cpt_at(s, pos);
            while (c2 == '\r' || c2 == '\n')
                c2 = cpt_at(s, ++pos);
            add_token(s, pos);
            continue;
        }
        while (IS_WS(flags_at(s, pos + nws))) {
            uint32_t c2 = cpt_at(s, pos + nws);
            if (c2 == '\r' || c2 == '\n')
                last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            add_token(s, pos);
            continue;
        }
        if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            add_token(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add_token(s, pos);
            continue;
        }
        add_token(s, ++pos);
    }
}

int qf_pretok_split(const qf_pretok *p, const uint32_t *cpts, size_t n, size_t **lens_out,
                    size_t *n_words, qf_err *err)
{
    unsigned *flags = NULL;
    uint32_t *units_c = NULL, *units_w = NULL;
    lens cur = { NULL, 0, 0 }, nxt = { NULL, 0, 0 };
    size_t i, r;
    int rc = 0;

    *lens_out = NULL;
    *n_words = 0;
    flags = malloc((n ? n : 1) * sizeof *flags);
    units_w = malloc((n ? n : 1) * sizeof *units_w);
    if (!flags || !units_w || lens_add(&cur, n)) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        flags[i] = qf_unicode_flags(cpts[i]);
        /* the std::wregex text: non-ASCII whitespace as \v */
        units_w[i] = cpts[i] > 0x7F && (flags[i] & QF_UCP_WHITESPACE) ? 0x0B : cpts[i];
    }
    if (p->need_collapse) {
        if (!(units_c = malloc((n ? n : 1) * sizeof *units_c))) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        for (i = 0; i < n; i++) {
            unsigned cat = flags[i] & QF_UCP_CATEGORIES, k;
            uint32_t u = 0xD0;
            if (cpts[i] < 128) {
                u = cpts[i];
            } else if (flags[i] & QF_UCP_WHITESPACE) {
                u = 0x0B;
            } else {
                for (k = 0; k < N_UCAT; k++)
                    if (UCAT[k].flag == cat)
                        u = UCAT[k].unit;
            }
            units_c[i] = u;
        }
    }

    for (r = 0; r < p->n; r++) {
        const pre_re *pr = &p->r[r];
        size_t start = 0, w;

        nxt.n = 0;
        if (pr->custom != CUSTOM_NONE && !(p->generic && pr->re)) {
            for (w = 0; w < cur.n; w++) {
                scan s = { cpts, flags, start, start + cur.v[w], start, &nxt, 0 };
                if (pr->custom == CUSTOM_GPT2)
                    split_gpt2(&s);
                else
                    split_llama3(&s);
                if (s.oom) {
                    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                    goto done;
                }
                start += cur.v[w];
            }
        } else {
            const uint32_t *u = pr->collapsed ? units_c : units_w;
            for (w = 0; w < cur.n; w++) {
                size_t b = start, e = start + cur.v[w], gap = b, at = b, ms, me;
                for (;;) {
                    int m = search(pr->re, u, b, e, at, 0, &ms, &me);
                    if (m == 1 && me == ms) {
                        /* as std::regex_iterator after an empty match: a
                         * non-empty match at the same place, else search on
                         * from the next unit (empty matches give no word) */
                        m = search(pr->re, u, b, e, ms, 1, &ms, &me);
                        if (m == 0) {
                            at = ms + 1;
                            if (at > e)
                                break;
                            continue;
                        }
                    }
                    if (m < 0) {
                        rc = qf_err_set(err, m, "pre-tokenizer regex %zu: too much backtracking "
                                        "on a %zu-character piece", r, e - b);
                        goto done;
                    }
                    if (m == 0)
                        break;
                    if ((ms > gap && lens_add(&nxt, ms - gap)) || lens_add(&nxt, me - ms)) {
                        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                        goto done;
                    }
                    gap = at = me;
                }
                if (gap < e && lens_add(&nxt, e - gap)) {
                    rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                    goto done;
                }
                start = e;
            }
        }
        {
            lens t = cur;
            cur = nxt;
            nxt = t;
        }
    }
    *lens_out = cur.v;
    *n_words = cur.n;
    cur.v = NULL;
done:
    free(cur.v);
    free(nxt.v);
    free(flags);
    free(units_c);
    free(units_w);
    return rc;
}
