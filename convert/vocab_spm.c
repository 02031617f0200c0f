/*
 * convert/vocab_spm.c - SentencePiece tokenizer.model, read without the
 * sentencepiece library, turned into the "llama" vocab that
 * convert_hf_to_gguf.py's _set_vocab_sentencepiece writes.
 *
 * The file is a protobuf ModelProto (sentencepiece_model.proto). Wire
 * format: a message is a run of fields, each a varint tag
 * (field_number << 3 | wire_type) then a value:
 *
 *   wire 0  varint     7 bits a byte, low group first, high bit = "more";
 *                      at most 10 bytes for 64 bits
 *   wire 1  fixed64    8 bytes little-endian
 *   wire 2  len-delim  varint length, then that many bytes (strings and
 *                      embedded messages)
 *   wire 5  fixed32    4 bytes little-endian (float)
 *   wire 3/4           groups: unused by sentencepiece, refused here
 *
 *   ModelProto      1 pieces (repeated SentencePiece, wire 2)
 *                   2 trainer_spec, 3 normalizer_spec, 4 self_test_data,
 *                   5 denormalizer_spec: skipped (llama.cpp's converter
 *                   writes nothing from them for the "llama" model)
 *   SentencePiece   1 piece (string)  2 score (float)  3 type (enum:
 *                   NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5
 *                   BYTE=6; absent = NORMAL)
 *
 * Unknown fields are skipped by wire type, every length is checked against
 * the bytes left, and the checks sentencepiece makes when it loads a model
 * are made too: no empty piece, no piece defined twice (normal-like pieces
 * and the others are two separate name spaces, as in sentencepiece), exactly
 * one UNKNOWN piece.
 *
 * The vocab (_create_vocab_sentencepiece): vocab_size = config.json's (the
 * caller's n_vocab) or the piece count; every slot starts as "[PAD<i>]",
 * score -10000, UNUSED; piece i then fills slot i with its text and score and
 * a token type: UNKNOWN -> 2, CONTROL -> 3, UNUSED -> 5, BYTE -> 6, and
 * NORMAL and USER_DEFINED -> NORMAL 1 (the converter has no user-defined
 * branch). added_tokens.json {text: id} then overrides slots below
 * vocab_size (score -1000, USER_DEFINED; ids beyond are skipped), and
 * tokenizer_config.json's added_tokens_decoder {"id": {content, special}}
 * overrides its slots: CONTROL if special or the text looks special, else
 * USER_DEFINED with U+2581 turned into spaces; score -1000.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert/vocab_impl.h"
#include "formats/file.h"


/* =====================================================================
 * Protobuf wire format
 * ===================================================================== */

/* Returns 0, QF_ETRUNC (ends inside the varint) or QF_ELIMIT (> 64 bits). */
static int rd_varint(qf_cur *c, uint64_t *v)
{
    uint64_t r = 0;
    int i;

    for (i = 0; i < 10; i++) {
        uint8_t b;
        if (qf_cur_u8(c, &b))
            return QF_ETRUNC;
        if (i == 9 && b > 1)
            return QF_ELIMIT;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return QF_ELIMIT;
}

/* Parsing context for messages: the file name and the buffer's start, so
 * that messages give absolute byte offsets. */
typedef struct pb {
    const char *name;
    const uint8_t *base;
    qf_err *err;
} pb;

static uint64_t off(const pb *p, const qf_cur *c)
{
    return (uint64_t)(c->base - p->base) + c->pos;
}

static int varint_err(const pb *p, int rc, uint64_t at, const char *what)
{
    if (rc == QF_ETRUNC)
        return qf_err_set(p->err, QF_ETRUNC, "%s: byte %" PRIu64 ": %s: the file ends inside a "
                          "varint", p->name, at, what);
    return qf_err_set(p->err, QF_EFORMAT, "%s: byte %" PRIu64 ": %s: varint overflows 64 bits",
                      p->name, at, what);
}

/* Read a tag. */
static int rd_tag(const pb *p, qf_cur *c, uint64_t *field, int *wire, const char *what)
{
    uint64_t at = off(p, c), t;
    int rc = rd_varint(c, &t);

    if (rc)
        return varint_err(p, rc, at, what);
    *field = t >> 3;
    *wire = (int)(t & 7);
    if (*field == 0 || *field > 0x1fffffff)
        return qf_err_set(p->err, QF_EFORMAT, "%s: byte %" PRIu64 ": %s: invalid field number "
                          "%" PRIu64, p->name, at, what, *field);
    return 0;
}

/* Read a length-delimited value: *sub covers its bytes. */
static int rd_len(const pb *p, qf_cur *c, qf_cur *sub, uint64_t field, const char *what)
{
    uint64_t at = off(p, c), n;
    const uint8_t *b;
    int rc = rd_varint(c, &n);

    if (rc)
        return varint_err(p, rc, at, what);
    if (n > qf_cur_left(c))
        return qf_err_set(p->err, QF_ETRUNC, "%s: byte %" PRIu64 ": %s: field %" PRIu64 " is "
                          "%" PRIu64 " bytes long but only %" PRIu64 " are left", p->name, at,
                          what, field, n, qf_cur_left(c));
    qf_cur_bytes(c, n, &b);
    *sub = qf_cur_make(b, n);
    return 0;
}

/* Skip the value of a field we do not use. */
static int skip_value(const pb *p, qf_cur *c, uint64_t field, int wire, const char *what)
{
    uint64_t at = off(p, c), v;
    qf_cur sub;
    int rc;

    switch (wire) {
    case 0:
        rc = rd_varint(c, &v);
        return rc ? varint_err(p, rc, at, what) : 0;
    case 1:
    case 5:
        if (qf_cur_skip(c, wire == 1 ? 8 : 4))
            return qf_err_set(p->err, QF_ETRUNC, "%s: byte %" PRIu64 ": %s: field %" PRIu64
                              ": the file ends inside a fixed-size value", p->name, at, what,
                              field);
        return 0;
    case 2:
        return rd_len(p, c, &sub, field, what);
    default:
        return qf_err_set(p->err, QF_EFORMAT, "%s: byte %" PRIu64 ": %s: field %" PRIu64 " has "
                          "wire type %d (%s)", p->name, at, what, field, wire,
                          wire == 3 || wire == 4 ? "groups are not supported" : "invalid");
    }
}

static int wrong_wire(const pb *p, uint64_t at, const char *what, uint64_t field, int wire,
                      int want)
{
    return qf_err_set(p->err, QF_EFORMAT, "%s: byte %" PRIu64 ": %s: field %" PRIu64 " has wire "
                      "type %d, expected %d", p->name, at, what, field, wire, want);
}

/* One SentencePiece message. */
static int parse_piece(const pb *p, qf_cur *c, uint64_t idx, qf_spm_piece *out)
{
    char what[48];

    snprintf(what, sizeof what, "piece %" PRIu64, idx);
    out->s = NULL;
    out->len = 0;
    out->score = 0.0f;
    out->type = 1;
    while (qf_cur_left(c)) {
        uint64_t at = off(p, c), field, v;
        int wire, rc;

        rc = rd_tag(p, c, &field, &wire, what);
        if (rc)
            return rc;
        if (field == 1) {
            qf_cur s;
            if (wire != 2)
                return wrong_wire(p, at, what, field, wire, 2);
            rc = rd_len(p, c, &s, field, what);
            if (rc)
                return rc;
            out->s = (const char *)s.base;
            out->len = s.size;
        } else if (field == 2) {
            uint32_t bits;
            if (wire != 5)
                return wrong_wire(p, at, what, field, wire, 5);
            if (qf_cur_u32(c, &bits))
                return qf_err_set(p->err, QF_ETRUNC, "%s: byte %" PRIu64 ": %s: the file ends "
                                  "inside the score", p->name, at, what);
            memcpy(&out->score, &bits, sizeof bits);
        } else if (field == 3) {
            uint64_t vat;
            if (wire != 0)
                return wrong_wire(p, at, what, field, wire, 0);
            vat = off(p, c);
            rc = rd_varint(c, &v);
            if (rc)
                return varint_err(p, rc, vat, what);
            if (v < 1 || v > 6)
                return qf_err_set(p->err, QF_EFORMAT, "%s: byte %" PRIu64 ": %s: unknown piece "
                                  "type %" PRIu64, p->name, vat, what, v);
            out->type = (int)v;
        } else {
            rc = skip_value(p, c, field, wire, what);
            if (rc)
                return rc;
        }
    }
    return 0;
}


int qf_vocab_spm_parse(const uint8_t *buf, uint64_t size, const char *name,
                       qf_spm_piece **pieces, uint64_t *n, qf_err *err)
{
    pb p = { name ? name : "tokenizer.model", buf, err };
    qf_cur c = qf_cur_make(buf, size);
    qf_spm_piece *a = NULL;
    qf_vmap normal = { 0 }, reserved = { 0 };
    uint64_t na = 0, cap = 0, unk = UINT64_MAX;
    int rc = 0;

    *pieces = NULL;
    *n = 0;
    if (!buf && size)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", p.name);
    while (qf_cur_left(&c)) {
        uint64_t at = off(&p, &c), field, prev;
        int wire;
        qf_cur sub;
        qf_spm_piece *pc;
        char sb[64];

        rc = rd_tag(&p, &c, &field, &wire, "ModelProto");
        if (rc)
            goto done;
        if (field != 1) {
            rc = skip_value(&p, &c, field, wire, "ModelProto");
            if (rc)
                goto done;
            continue;
        }
        if (wire != 2) {
            rc = wrong_wire(&p, at, "ModelProto", field, wire, 2);
            goto done;
        }
        rc = rd_len(&p, &c, &sub, field, "ModelProto");
        if (rc)
            goto done;
        if (na == cap) {
            uint64_t ncap = cap ? 2 * cap : 256;
            qf_spm_piece *g = realloc(a, (size_t)ncap * sizeof *a);
            if (!g) {
                rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", p.name);
                goto done;
            }
            a = g;
            cap = ncap;
        }
        if (na >= QF_VOCAB_MAX_TOKENS) {
            rc = qf_err_set(err, QF_ELIMIT, "%s: more than %u pieces", p.name,
                            QF_VOCAB_MAX_TOKENS);
            goto done;
        }
        pc = &a[na];
        rc = parse_piece(&p, &sub, na, pc);
        if (rc)
            goto done;
        if (!pc->s || pc->len == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: byte %" PRIu64 ": piece %" PRIu64 " is empty",
                            p.name, at, na);
            goto done;
        }
        if (!qf_utf8_valid(pc->s, (size_t)pc->len)) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: byte %" PRIu64 ": piece %" PRIu64 " is not "
                            "valid UTF-8", p.name, at, na);
            goto done;
        }
        if (pc->type == 2) {
            if (unk != UINT64_MAX) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: piece %" PRIu64 ": a second UNKNOWN piece "
                                "(piece %" PRIu64 " is one)", p.name, na, unk);
                goto done;
            }
            unk = na;
        }
        /* sentencepiece: NORMAL, USER_DEFINED and UNUSED share one name
         * space, the reserved types (UNKNOWN, CONTROL, BYTE) another */
        rc = qf_vmap_put(pc->type == 1 || pc->type == 4 || pc->type == 5 ? &normal : &reserved,
                         pc->s, pc->len, na, &prev);
        if (rc < 0) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", p.name);
            goto done;
        }
        if (rc == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: piece %" PRIu64 " \"%s\" is already defined "
                            "(piece %" PRIu64 ")", p.name, na,
                            qf_vocab_show(pc->s, pc->len, sb, sizeof sb),
                            prev);
            goto done;
        }
        na++;
    }
    if (na == 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: no pieces (not a SentencePiece model?)", p.name);
        goto done;
    }
    if (unk == UINT64_MAX) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: no piece has type UNKNOWN (sentencepiece requires "
                        "one)", p.name);
        goto done;
    }
    *pieces = a;
    *n = na;
    a = NULL;
    rc = 0;
done:
    free(a);
    qf_vmap_free(&normal);
    qf_vmap_free(&reserved);
    return rc;
}

/* =====================================================================
 * _create_vocab_sentencepiece
 * ===================================================================== */

static const int32_t SPM_TO_TOKEN_TYPE[7] = {
    0, QF_TOK_NORMAL, QF_TOK_UNKNOWN, QF_TOK_CONTROL,
    QF_TOK_NORMAL, /* USER_DEFINED: the converter leaves it NORMAL */
    QF_TOK_UNUSED, QF_TOK_BYTE,
};

/* Parse a decimal id key of added_tokens_decoder ("12"). */
static int parse_id_key(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

static int added_tokens_json(qf_vocab *v, const char *dir, qf_err *err)
{
    char *path = qf_path_join(dir, "added_tokens.json");
    cJSON *root = NULL;
    const cJSON *e;
    char sb[64];
    int rc = 0;

    if (!path)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if (!qf_path_is_regular(path))
        goto done;
    rc = qf_vocab_json_load(path, &root, err);
    if (rc)
        goto done;
    for (e = root->child; e; e = e->next) {
        int64_t id;
        uint64_t klen = strlen(e->string);
        if (!qf_vocab_json_int(e, 0, INT64_MAX, &id)) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: token \"%s\": the id is not a non-negative "
                            "integer", path, qf_vocab_show(e->string, klen, sb, sizeof sb));
            goto done;
        }
        if ((uint64_t)id >= v->n)
            continue; /* converter: "ignore token N: id is out of range" */
        rc = qf_vocab_set_tok(v, (uint64_t)id, e->string, klen, err);
        if (rc)
            goto done;
        v->score[id] = -1000.0f;
        v->type[id] = QF_TOK_USER_DEFINED;
    }
done:
    cJSON_Delete(root);
    free(path);
    return rc;
}

static int added_tokens_decoder(qf_vocab *v, const cJSON *tcfg, const char *path, qf_err *err)
{
    const cJSON *dec = qf_vocab_json_get(tcfg, "added_tokens_decoder");
    const cJSON *e;
    char sb[64];

    if (!dec)
        return 0;
    if (!cJSON_IsObject(dec))
        return qf_err_set(err, QF_EFORMAT, "%s: added_tokens_decoder is not an object", path);
    for (e = dec->child; e; e = e->next) {
        const cJSON *content = qf_vocab_json_get(e, "content");
        const char *s;
        uint64_t id, len;
        int rc;

        if (!parse_id_key(e->string, &id))
            return qf_err_set(err, QF_EFORMAT, "%s: added_tokens_decoder: \"%s\" is not a token "
                              "id", path, qf_vocab_show(e->string, strlen(e->string), sb, sizeof sb));
        if (id >= v->n)
            return qf_err_set(err, QF_EFORMAT, "%s: added_tokens_decoder: token id %" PRIu64
                              " is beyond the vocabulary (%" PRIu64 " tokens)", path, id, v->n);
        if (!cJSON_IsObject(e) || !cJSON_IsString(content))
            return qf_err_set(err, QF_EFORMAT, "%s: added_tokens_decoder: token %" PRIu64
                              " has no \"content\" string", path, id);
        s = content->valuestring;
        len = strlen(s);
        if (qf_vocab_json_truthy(qf_vocab_json_get(e, "special")) ||
            qf_vocab_looks_special(s, len)) {
            rc = qf_vocab_set_tok(v, id, s, len, err);
            v->type[id] = QF_TOK_CONTROL;
        } else {
            uint64_t nlen;
            char *u = qf_vocab_unmark_spaces(s, len, &nlen);
            if (!u)
                return qf_err_set(err, QF_ENOMEM, "out of memory");
            rc = qf_vocab_set_tok(v, id, u, nlen, err);
            free(u);
            v->type[id] = QF_TOK_USER_DEFINED;
        }
        if (rc)
            return rc;
        v->score[id] = -1000.0f;
    }
    return 0;
}

int qf_vocab_load_spm(qf_vocab *v, const char *dir, const cJSON *tcfg, const char *tcfg_path,
                      uint64_t n_vocab, qf_err *err)
{
    char *path = qf_path_join(dir, "tokenizer.model");
    qf_map *m = NULL;
    qf_spm_piece *pc = NULL;
    uint64_t np = 0, size, i;
    int rc;

    if (!path)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    rc = qf_map_open(path, &m, err);
    if (rc)
        goto done;
    size = qf_map_size(m);
    if (size > QF_VOCAB_MAX_FILE) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: %" PRIu64 " bytes is more than a tokenizer.model "
                        "may hold here", path, size);
        goto done;
    }
    rc = qf_vocab_spm_parse(qf_map_data(m), size, path, &pc, &np, err);
    if (rc)
        goto done;
    if (n_vocab && np > n_vocab) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %" PRIu64 " pieces, more than the model's "
                        "vocab_size %" PRIu64, path, np, n_vocab);
        goto done;
    }
    rc = qf_vocab_alloc(v, n_vocab ? n_vocab : np, 1, err);
    if (rc)
        goto done;
    memcpy(v->model, "llama", 6);
    memcpy(v->pre, "default", 8);
    for (i = 0; i < v->n; i++) {
        if (i < np) {
            rc = qf_vocab_set_tok(v, i, pc[i].s, pc[i].len, err);
            v->score[i] = pc[i].score;
            v->type[i] = SPM_TO_TOKEN_TYPE[pc[i].type];
        } else {
            rc = qf_vocab_set_pad(v, i, err);
            v->score[i] = -10000.0f;
            v->type[i] = QF_TOK_UNUSED;
        }
        if (rc)
            goto done;
    }
    rc = added_tokens_json(v, dir, err);
    if (!rc && tcfg)
        rc = added_tokens_decoder(v, tcfg, tcfg_path, err);
done:
    free(pc);
    qf_map_close(m);
    free(path);
    return rc;
}
