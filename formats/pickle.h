/*
 * formats/pickle.h - a pickle READER, not an unpickler.
 *
 * A pickle is a program for a small stack machine. Python's unpickler runs it
 * and, on GLOBAL + REDUCE, imports any module and calls any function the file
 * names: loading a pickle can run arbitrary code. This reader interprets the
 * opcodes into a passive object graph instead. A GLOBAL is only a name that
 * the caller's allow-list must know; a REDUCE of an allowed function becomes
 * a CALL node (function + argument tuple) for the caller to interpret; the
 * only REDUCE that makes a container is that of a class the allow-list marks
 * as a dict type (collections.OrderedDict). Nothing is ever imported, called
 * or executed.
 *
 * The program (protocols 1..5; Lib/pickletools.py describes every opcode):
 *
 *   80 PROTO n       95 FRAME u64     2e STOP          28 MARK
 *   30 POP           31 POP_MARK      32 DUP
 *   4e NONE          88 NEWTRUE       89 NEWFALSE
 *   4a BININT i32    4b BININT1 u8    4d BININT2 u16   49 INT "<dec>\n"
 *   8a LONG1 n u8 + n bytes           8b LONG4 n u32 + n bytes (n <= 8 here)
 *   47 BINFLOAT f64 big-endian
 *   58 BINUNICODE u32   8c SHORT_BINUNICODE u8   8d BINUNICODE8 u64  (UTF-8)
 *   54 BINSTRING i32    55 SHORT_BINSTRING u8      (Python 2 str, read as UTF-8)
 *   42 BINBYTES u32     43 SHORT_BINBYTES u8       8e BINBYTES8 u64
 *   29 EMPTY_TUPLE  85 TUPLE1  86 TUPLE2  87 TUPLE3  74 TUPLE (from MARK)
 *   5d EMPTY_LIST   6c LIST    61 APPEND  65 APPENDS
 *   7d EMPTY_DICT   64 DICT    73 SETITEM 75 SETITEMS
 *   8f EMPTY_SET    90 ADDITEMS           91 FROZENSET
 *   71 BINPUT u8    72 LONG_BINPUT u32    94 MEMOIZE
 *   68 BINGET u8    6a LONG_BINGET u32
 *   63 GLOBAL "module\nname\n"            93 STACK_GLOBAL (module, name)
 *   52 REDUCE (callable, args)  62 BUILD (obj, state)  51 BINPERSID (pid)
 *
 * Refused, with the byte offset: INST, OBJ, NEWOBJ, NEWOBJ_EX (they build
 * instances of classes), EXT1/2/4 (the copyreg extension registry), the
 * protocol-0 text opcodes other than INT (PERSID, GET, PUT, STRING, UNICODE,
 * FLOAT, LONG), the protocol-5 out-of-band buffers (BYTEARRAY8, NEXT_BUFFER,
 * READONLY_BUFFER), unknown opcodes, PROTO > 5, a GLOBAL not in the
 * allow-list, REDUCE on anything but an allowed callable or dict type, BUILD
 * on anything but a dict (torch's state dicts carry their `_metadata` that
 * way), a STOP that leaves marks or more than one object, bytes after STOP,
 * and a program that ends without STOP.
 *
 * Limits (qf_pkl_limits; 0 means the default): objects made, memo index
 * (also never above the objects made so far: a memo slot is a reference to an
 * object), nesting depth of containers and of MARKs, integers of at most 8
 * bytes. Every length is checked against the bytes left before it is used.
 *
 * Note for consumers: the memo lets a list or dict contain itself, so the
 * graph may have cycles. Walk it with a depth bound.
 */
#ifndef QF_PICKLE_H
#define QF_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

typedef enum qf_pkl_kind {
    QF_PKL_NONE = 1,
    QF_PKL_BOOL,   /* i: 0 or 1 */
    QF_PKL_INT,    /* i */
    QF_PKL_FLOAT,  /* f */
    QF_PKL_STR,    /* s, len: valid UTF-8 (may hold NUL bytes) */
    QF_PKL_BYTES,  /* s, len */
    QF_PKL_TUPLE,  /* items[n] */
    QF_PKL_LIST,   /* items[n] */
    QF_PKL_SET,    /* items[n] (set or frozenset) */
    QF_PKL_DICT,   /* items[2n]: key0, value0, key1, ...; state: BUILD state or 0 */
    QF_PKL_GLOBAL, /* global: index into qf_pkl_global_at */
    QF_PKL_CALL,   /* global: the allowed callable; arg: the argument tuple */
    QF_PKL_PERSID  /* arg: the persistent id object (BINPERSID) */
} qf_pkl_kind;

/* Object ids: 1 .. qf_pkl_count; 0 means "no object". */
typedef uint32_t qf_pkl_id;

/* One object (plain value struct, borrowed from the reader). */
typedef struct qf_pkl_obj {
    qf_pkl_kind kind;
    uint32_t n;                  /* TUPLE, LIST, SET: items; DICT: pairs */
    uint64_t offset;             /* byte offset of the opcode that made it */
    union {
        int64_t i;               /* BOOL, INT */
        double f;                /* FLOAT */
        struct {
            const char *s;       /* STR, BYTES: in the caller's buffer, not NUL-ended */
            uint64_t len;        /* STR, BYTES: bytes */
        };
        const qf_pkl_id *items;  /* TUPLE, LIST, SET, DICT: see the kinds */
    };
    uint32_t global;             /* GLOBAL, CALL: index for qf_pkl_global_at */
    qf_pkl_id arg;               /* CALL: the argument tuple; PERSID: the id object */
    qf_pkl_id state;             /* DICT: the state given by BUILD, or 0 */
} qf_pkl_obj;

/* How the caller lets a GLOBAL in. */
enum {
    QF_PKL_VALUE = 1,     /* a name that may appear as a value (a class, a dtype) */
    QF_PKL_CALLABLE = 2,  /* may also be REDUCEd: gives a CALL node */
    QF_PKL_DICT_TYPE = 3  /* REDUCE with () gives an empty DICT (OrderedDict) */
};

typedef struct qf_pkl_allow {
    const char *module; /* "torch._utils" */
    const char *name;   /* "_rebuild_tensor_v2" */
    int role;           /* QF_PKL_VALUE / QF_PKL_CALLABLE / QF_PKL_DICT_TYPE */
    int tag;            /* the caller's value, given back in qf_pkl_global */
} qf_pkl_allow;

/* A distinct GLOBAL the pickle references (module and name NUL-terminated). */
typedef struct qf_pkl_global {
    const char *module, *name;
    int role, tag;      /* from the allow-list entry */
    uint64_t count;     /* GLOBAL / STACK_GLOBAL opcodes naming it */
    uint64_t offset;    /* byte offset of the first one */
} qf_pkl_global;

typedef struct qf_pkl_limits {
    uint64_t max_objects; /* default QF_PKL_MAX_OBJECTS */
    uint32_t max_memo;    /* largest memo index + 1; default QF_PKL_MAX_MEMO */
    uint32_t max_depth;   /* container nesting and open MARKs; default QF_PKL_MAX_DEPTH */
} qf_pkl_limits;

#define QF_PKL_MAX_OBJECTS 16000000u
#define QF_PKL_MAX_MEMO 16000000u
#define QF_PKL_MAX_DEPTH 200u

typedef struct qf_pkl qf_pkl;

/*
 * Read the pickle in buf[0, size) (borrowed: strings point into it, so it
 * must outlive the reader). `name` prefixes every message ("x.pt: data.pkl").
 * `allow` lists the n_allow GLOBALs accepted (borrowed: qf_pkl_global_at
 * hands out its strings, so it must outlive the reader; usually a static
 * table); anything else is refused at its GLOBAL opcode:
 * "<name>: byte 2: GLOBAL os.system is not allowed ...".
 * `limits` may be NULL. Returns 0 and sets *out (owned by the caller:
 * qf_pkl_free), or QF_EFORMAT / QF_ETRUNC / QF_ELIMIT / QF_EUNSUPPORTED /
 * QF_ENOMEM.
 */
int qf_pkl_read(const void *buf, uint64_t size, const char *name, const qf_pkl_allow *allow,
                size_t n_allow, const qf_pkl_limits *limits, qf_pkl **out, qf_err *err);

/* Free; accepts NULL. */
void qf_pkl_free(qf_pkl *p);

/* The object STOP returned. */
qf_pkl_id qf_pkl_root(const qf_pkl *p);

/* Objects made (ids 1..count) and one of them (NULL for 0 or out of range). */
uint32_t qf_pkl_count(const qf_pkl *p);
const qf_pkl_obj *qf_pkl_get(const qf_pkl *p, qf_pkl_id id);

/* The highest PROTO seen (0 if none). */
int qf_pkl_protocol(const qf_pkl *p);

/* Distinct GLOBALs, in order of first appearance. */
uint32_t qf_pkl_global_count(const qf_pkl *p);
const qf_pkl_global *qf_pkl_global_at(const qf_pkl *p, uint32_t i); /* NULL if out of range */

/* Short name of a kind ("dict", "tuple", ...). */
const char *qf_pkl_kind_name(qf_pkl_kind k);

#endif /* QF_PICKLE_H */
