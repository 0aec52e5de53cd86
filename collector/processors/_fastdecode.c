/*
 * _fastdecode: OTLP ExportTraceServiceRequest bytes straight to Arrow column buffers.
 *
 * The pure-Python normalizer (normalize.py::_decode_traces_python) spends ~40 us per span reading protobuf fields
 * one by one and building attribute dicts for orjson. This module walks the protobuf wire format once and writes
 * each column of the spans / span_events / span_links tables into a growing buffer laid out as Arrow expects
 * (validity bitmap, int32 offsets, UTF-8 data, or fixed-width values). Python wraps those buffers with
 * pyarrow.Array.from_buffers without copying.
 *
 * It reproduces the Python path exactly, including protobuf's parsing rules that matter for values:
 *   - the last occurrence of a scalar field wins; a field with an unexpected wire type is an unknown field;
 *   - repeated occurrences of a singular message field (Span.status, ScopeSpans.scope, KeyValue.value) merge,
 *     and inside the AnyValue oneof, consecutive array_value / kvlist_value occurrences concatenate;
 *   - attribute objects keep a repeated key in the position of its first occurrence with the last value
 *     (Python dict semantics), and every value, even an overwritten one, counts for the depth limit;
 *   - attribute count limits as the OpenTelemetry SDK applies them (anyvalue.key_values): an object keeps its
 *     first `limit` distinct keys; every other KeyValue is dropped unread and counted in dropped_attributes_count.
 * Keys are de-duplicated through SipHash-1-3 with a key drawn per process, so no request can be built to collide.
 * Callers parse the same bytes with upb first (which validates the wire format and UTF-8), but this code still
 * bounds-checks every read and validates UTF-8 itself, so ANY input gives either a result or a ValueError.
 * Doubles are written with the digits of Python's repr (the shortest that read back as the value), found with
 * glibc's correctly rounded printf and strtod so no Python call is needed, and laid out the way orjson writes them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Why a span is rejected; normalize.py maps the codes to its messages. */
enum { REJECT_TRACE_ID = 0, REJECT_SPAN_ID, REJECT_PARENT_ID, REJECT_DEPTH, REJECT_TIMESTAMP, N_REJECT };

/* Return codes: 0 ok, ERR a Python exception is set; REJECT (a value nested too deeply) and REJECT_TIME (an
 * event time past int64) mean the span must be dropped. */
#define ERR (-1)
#define REJECT (-2)
#define REJECT_TIME (-3)

#define MAX_GROUP_DEPTH 64

/* Errors can happen while the GIL is released (decode_request runs without it, so the gRPC loop and the store
 * writer keep running while a request is decoded): these take the GIL just to set the exception. */
static int raise_error(PyObject *type, const char *message)
{
    PyGILState_STATE state = PyGILState_Ensure();
    PyErr_SetString(type, message);
    PyGILState_Release(state);
    return ERR;
}

static int raise_no_memory(void)
{
    PyGILState_STATE state = PyGILState_Ensure();
    PyErr_NoMemory();
    PyGILState_Release(state);
    return ERR;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* ------------------------------------------------------------------------------------------------------------ */
/* Growable byte buffers                                                                                         */

typedef struct {
    char *ptr;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > (size_t)PY_SSIZE_T_MAX - b->len) {
        return raise_no_memory();
    }
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)PY_SSIZE_T_MAX / 2 ? need : cap * 2;
    /* Raw allocator: Arrow may free exported buffers from any thread, without the GIL. */
    char *p = PyMem_RawRealloc(b->ptr, cap);
    if (p == NULL) {
        return raise_no_memory();
    }
    b->ptr = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_reserve(b, n) < 0)
        return ERR;
    memcpy(b->ptr + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buf *b, char c)
{
    if (b->len == b->cap && buf_reserve(b, 1) < 0)
        return ERR;
    b->ptr[b->len++] = c;
    return 0;
}

#define buf_lit(b, s) buf_put((b), (s), sizeof(s) - 1)

static void buf_free(Buf *b)
{
    PyMem_RawFree(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Arrow columns: string (validity + int32 offsets + data), int64, uint32                                       */

enum { COL_STR, COL_I64, COL_U32 };

typedef struct {
    int type;
    Py_ssize_t length, null_count, mark_null_count;
    Buf data, offsets, validity;
} Column;

typedef struct {
    Column *cols;
    int ncols;
    Py_ssize_t rows, mark_rows;
} Table;

static int table_init(Table *t, const int *types, int ncols)
{
    t->cols = PyMem_Calloc((size_t)ncols, sizeof(Column));
    if (t->cols == NULL) {
        return raise_no_memory();
    }
    t->ncols = ncols;
    t->rows = t->mark_rows = 0;
    for (int i = 0; i < ncols; i++) {
        t->cols[i].type = types[i];
        if (types[i] == COL_STR) {
            int32_t zero = 0;
            if (buf_put(&t->cols[i].offsets, &zero, sizeof zero) < 0)
                return ERR;
        }
    }
    return 0;
}

static void table_free(Table *t)
{
    if (t->cols == NULL)
        return;
    for (int i = 0; i < t->ncols; i++) {
        buf_free(&t->cols[i].data);
        buf_free(&t->cols[i].offsets);
        buf_free(&t->cols[i].validity);
    }
    PyMem_Free(t->cols);
    t->cols = NULL;
}

static int col_set_valid(Column *c, int valid)
{
    size_t byte = (size_t)c->length >> 3;
    while (c->validity.len <= byte)
        if (buf_byte(&c->validity, 0) < 0)
            return ERR;
    uint8_t bit = (uint8_t)(1u << (c->length & 7));
    if (valid)
        c->validity.ptr[byte] |= bit;
    else {
        c->validity.ptr[byte] &= (uint8_t)~bit;
        c->null_count++;
    }
    return 0;
}

/* Ends the string value whose bytes were appended to c->data since the previous commit. */
static int col_str_commit(Column *c, int valid)
{
    if (c->data.len > INT32_MAX) {
        raise_error(PyExc_ValueError, "request too large: a string column passed 2 GiB");
        return ERR;
    }
    int32_t end = (int32_t)c->data.len;
    if (col_set_valid(c, valid) < 0 || buf_put(&c->offsets, &end, sizeof end) < 0)
        return ERR;
    c->length++;
    return 0;
}

static int col_str(Column *c, const void *s, size_t n)
{
    if (buf_put(&c->data, s, n) < 0)
        return ERR;
    return col_str_commit(c, 1);
}

static int col_null(Column *c)
{
    if (c->type == COL_STR)
        return col_str_commit(c, 0);
    size_t width = c->type == COL_I64 ? 8 : 4;
    static const char zeros[8] = {0};
    if (col_set_valid(c, 0) < 0 || buf_put(&c->data, zeros, width) < 0)
        return ERR;
    c->length++;
    return 0;
}

static int col_i64(Column *c, int64_t v)
{
    if (col_set_valid(c, 1) < 0 || buf_put(&c->data, &v, sizeof v) < 0)
        return ERR;
    c->length++;
    return 0;
}

static int col_u32(Column *c, uint32_t v)
{
    if (col_set_valid(c, 1) < 0 || buf_put(&c->data, &v, sizeof v) < 0)
        return ERR;
    c->length++;
    return 0;
}

/* A mark before a span's rows, so a span rejected half-way leaves no event, link or attribute bytes behind. */
static void table_mark(Table *t)
{
    t->mark_rows = t->rows;
    for (int i = 0; i < t->ncols; i++)
        t->cols[i].mark_null_count = t->cols[i].null_count;
}

static void table_rollback(Table *t)
{
    Py_ssize_t rows = t->mark_rows;
    for (int i = 0; i < t->ncols; i++) {
        Column *c = &t->cols[i];
        c->length = rows;
        c->null_count = c->mark_null_count;
        if (c->type == COL_STR) {
            int32_t end;
            memcpy(&end, c->offsets.ptr + (size_t)rows * 4, 4);
            c->data.len = (size_t)end;
            c->offsets.len = ((size_t)rows + 1) * 4;
        }
        else
            c->data.len = (size_t)rows * (c->type == COL_I64 ? 8 : 4);
    }
    t->rows = rows;
}

/* (length, null_count, validity or None, offsets or None, data) for pyarrow.Array.from_buffers. */
static PyObject *column_to_python(Column *c)
{
    PyObject *validity = Py_None, *offsets = Py_None, *data = NULL, *result = NULL;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    if (c->null_count) {
        Py_DECREF(validity);
        validity = PyBytes_FromStringAndSize(c->validity.ptr, (Py_ssize_t)(((size_t)c->length + 7) / 8));
        if (validity == NULL)
            goto done;
    }
    if (c->type == COL_STR) {
        Py_DECREF(offsets);
        offsets = PyBytes_FromStringAndSize(c->offsets.ptr, (Py_ssize_t)c->offsets.len);
        if (offsets == NULL)
            goto done;
    }
    data = PyBytes_FromStringAndSize(c->data.ptr ? c->data.ptr : "", (Py_ssize_t)c->data.len);
    if (data == NULL)
        goto done;
    result = Py_BuildValue("(nnOOO)", c->length, c->null_count, validity, offsets, data);
done:
    Py_XDECREF(validity);
    Py_XDECREF(offsets);
    Py_XDECREF(data);
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Export as an Arrow C data interface struct array (https://arrow.apache.org/docs/format/CDataInterface.html)   */

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* Everything one exported table owns; freed together by the top-level release. */
typedef struct {
    struct ArrowArray *children;
    struct ArrowArray **child_pointers;
    const void **buffers;
    void **owned;
    int n_owned;
} Exported;

static void release_child(struct ArrowArray *array)
{
    array->release = NULL; /* the parent owns the memory */
}

static void release_exported(struct ArrowArray *array)
{
    Exported *e = array->private_data;
    for (int i = 0; i < e->n_owned; i++)
        PyMem_RawFree(e->owned[i]);
    PyMem_RawFree(e->owned);
    PyMem_RawFree(e->buffers);
    PyMem_RawFree(e->child_pointers);
    PyMem_RawFree(e->children);
    PyMem_RawFree(e);
    array->release = NULL;
}

static void destroy_capsule(PyObject *capsule)
{
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, "arrow_array");
    if (array == NULL) {
        PyErr_Clear();
        return;
    }
    if (array->release != NULL) /* never imported (or the import failed) */
        array->release(array);
    PyMem_RawFree(array);
}

/*
 * Moves the table's buffers into an "arrow_array" PyCapsule holding a struct array: one child per column, then one
 * more per entry of `views`, each the int64 column it names seen again (Python's schema types those as timestamps).
 * On success the table's columns are left empty; the capsule frees the buffers once Arrow is done with them.
 */
static PyObject *table_export(Table *t, const int *views, int n_views)
{
    int n = t->ncols + n_views;
    for (int i = 0; i < t->ncols; i++) /* Arrow wants a data buffer even for an empty column */
        if (t->cols[i].data.ptr == NULL && buf_reserve(&t->cols[i].data, 1) < 0)
            return NULL;
    struct ArrowArray *top = PyMem_RawCalloc(1, sizeof *top);
    Exported *e = PyMem_RawCalloc(1, sizeof *e);
    if (e != NULL) {
        e->children = PyMem_RawCalloc((size_t)n, sizeof *e->children);
        e->child_pointers = PyMem_RawCalloc((size_t)n, sizeof *e->child_pointers);
        e->buffers = PyMem_RawCalloc(3 * (size_t)n + 1, sizeof *e->buffers);
        e->owned = PyMem_RawCalloc(3 * (size_t)t->ncols, sizeof *e->owned);
    }
    if (top == NULL || e == NULL || e->children == NULL || e->child_pointers == NULL || e->buffers == NULL ||
        e->owned == NULL) {
        if (e != NULL) {
            PyMem_RawFree(e->children);
            PyMem_RawFree(e->child_pointers);
            PyMem_RawFree(e->buffers);
            PyMem_RawFree(e->owned);
        }
        PyMem_RawFree(e);
        PyMem_RawFree(top);
        PyErr_NoMemory();
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int source = i < t->ncols ? i : views[i - t->ncols];
        Column *c = &t->cols[source];
        struct ArrowArray *child = &e->children[i];
        const void **buffers = e->buffers + 3 * i;
        child->length = c->length;
        child->null_count = c->null_count;
        child->n_buffers = c->type == COL_STR ? 3 : 2;
        buffers[0] = c->null_count ? c->validity.ptr : NULL;
        buffers[1] = c->type == COL_STR ? (const void *)c->offsets.ptr : (const void *)c->data.ptr;
        buffers[2] = c->data.ptr;
        child->buffers = buffers;
        child->release = release_child;
        e->child_pointers[i] = child;
    }
    for (int i = 0; i < t->ncols; i++) {
        Column *c = &t->cols[i];
        Buf *owned[3] = {&c->validity, &c->offsets, &c->data};
        for (int k = 0; k < 3; k++) {
            if (owned[k]->ptr != NULL)
                e->owned[e->n_owned++] = owned[k]->ptr;
            owned[k]->ptr = NULL;
            owned[k]->len = owned[k]->cap = 0;
        }
    }
    top->length = t->rows;
    top->n_buffers = 1;
    top->buffers = e->buffers + 3 * n; /* no validity: every row is there */
    top->n_children = n;
    top->children = e->child_pointers;
    top->release = release_exported;
    top->private_data = e;
    PyObject *capsule = PyCapsule_New(top, "arrow_array", destroy_capsule);
    if (capsule == NULL) {
        top->release(top);
        PyMem_RawFree(top);
    }
    return capsule;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Protobuf wire format                                                                                          */

typedef struct {
    const uint8_t *p, *end;
} Reader;

typedef struct {
    uint32_t num;
    int wt;
    uint64_t v;          /* varint, fixed64 or fixed32 value */
    const uint8_t *ptr;  /* length-delimited payload */
    size_t len;
} Field;

static int fail(const char *message)
{
    return raise_error(PyExc_ValueError, message);
}

static int read_varint_slow(Reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return fail("malformed protobuf: truncated varint");
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift; /* bits past 64 drop out, as in upb */
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return fail("malformed protobuf: varint longer than 10 bytes");
}

/* Tags, lengths and small numbers are one byte: keep that case inline. */
static inline int read_varint(Reader *r, uint64_t *out)
{
    if (r->p < r->end && *r->p < 0x80) {
        *out = *r->p++;
        return 0;
    }
    return read_varint_slow(r, out);
}

static uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define END_GROUP 2

static int read_tagged(Reader *r, Field *f, int group_depth);

/* Skips the rest of a group opened by field `num` (groups only ever appear here as unknown fields). */
static int skip_group(Reader *r, uint32_t num, int group_depth)
{
    if (group_depth >= MAX_GROUP_DEPTH)
        return fail("malformed protobuf: groups nested too deeply");
    Field f;
    for (;;) {
        int rc = read_tagged(r, &f, group_depth);
        if (rc < 0)
            return ERR;
        if (rc == 0)
            return fail("malformed protobuf: unterminated group");
        if (rc == END_GROUP)
            return f.num == num ? 0 : fail("malformed protobuf: mismatched end of group");
    }
}

/* Reads one field: 1, 0 at the end of the message, END_GROUP for an end-group tag, ERR when malformed. */
static int read_tagged(Reader *r, Field *f, int group_depth)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (read_varint(r, &key) < 0)
        return ERR;
    uint64_t num = key >> 3;
    /* upb takes field number 0 inside an unknown group (it only checks the group's end), so this does too. */
    if ((num == 0 && group_depth == 0) || num > 536870911u)
        return fail("malformed protobuf: invalid field number");
    f->num = (uint32_t)num;
    f->wt = (int)(key & 7);
    switch (f->wt) {
    case 0:
        return read_varint(r, &f->v) < 0 ? ERR : 1;
    case 1:
        if (r->end - r->p < 8)
            return fail("malformed protobuf: truncated fixed64");
        f->v = load_le(r->p, 8);
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4)
            return fail("malformed protobuf: truncated fixed32");
        f->v = load_le(r->p, 4);
        r->p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (read_varint(r, &len) < 0)
            return ERR;
        if (len > (uint64_t)(r->end - r->p))
            return fail("malformed protobuf: length past the end of the message");
        f->ptr = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    case 3:
        return skip_group(r, f->num, group_depth + 1) < 0 ? ERR : 1;
    case 4:
        return END_GROUP;
    default:
        return fail("malformed protobuf: invalid wire type");
    }
}

static inline int next_field(Reader *r, Field *f)
{
    int rc = read_tagged(r, f, 0);
    return rc == END_GROUP ? fail("malformed protobuf: end of a group that was not opened") : rc;
}

/*
 * The fields of a message that may arrive in several pieces: protobuf merges repeated occurrences of a singular
 * message field, which is the same as reading the concatenation of their payloads. With fnum == 0 it reads the
 * single message in `inner`; otherwise the payloads of every `fnum` field found in `outer`, one after another.
 */
typedef struct {
    Reader outer, inner;
    uint32_t fnum;
} Pieces;

static Pieces pieces_of(const uint8_t *container, size_t len, uint32_t fnum)
{
    Pieces m;
    m.outer.p = container;
    m.outer.end = container + len;
    m.inner.p = m.inner.end = container;
    m.fnum = fnum;
    return m;
}

static Pieces single_piece(const uint8_t *msg, size_t len)
{
    Pieces m;
    m.outer.p = m.outer.end = msg;
    m.inner.p = msg;
    m.inner.end = msg + len;
    m.fnum = 0;
    return m;
}

static int pieces_next(Pieces *m, Field *f)
{
    for (;;) {
        int rc = next_field(&m->inner, f);
        if (rc != 0 || m->fnum == 0)
            return rc;
        Field outer_field;
        do {
            rc = next_field(&m->outer, &outer_field);
            if (rc <= 0)
                return rc;
        } while (outer_field.num != m->fnum || outer_field.wt != 2);
        m->inner.p = outer_field.ptr;
        m->inner.end = outer_field.ptr + outer_field.len;
    }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Text encodings                                                                                                */

static const char HEX[] = "0123456789abcdef";

static int put_hex(Buf *b, const uint8_t *s, size_t n)
{
    if (buf_reserve(b, 2 * n) < 0)
        return ERR;
    char *o = b->ptr + b->len;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = HEX[s[i] >> 4];
        o[2 * i + 1] = HEX[s[i] & 15];
    }
    b->len += 2 * n;
    return 0;
}

static int put_base64(Buf *b, const uint8_t *s, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > ((size_t)PY_SSIZE_T_MAX / 4) * 3 - 3) {
        return raise_no_memory();
    }
    size_t out = (n + 2) / 3 * 4;
    if (buf_reserve(b, out) < 0)
        return ERR;
    char *o = b->ptr + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *o++ = A[v >> 18];
        *o++ = A[(v >> 12) & 63];
        *o++ = A[(v >> 6) & 63];
        *o++ = A[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = A[v >> 18];
        *o++ = A[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        *o++ = A[v >> 18];
        *o++ = A[(v >> 12) & 63];
        *o++ = A[(v >> 6) & 63];
        *o++ = '=';
    }
    b->len += out;
    return 0;
}

/* Length of the well-formed UTF-8 sequence starting at s[0] >= 0x80 (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_sequence(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[2] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi ? 4 : 0;
    }
    return 0;
}

static int check_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_sequence(s + i, n - i);
        if (k == 0)
            return fail("malformed protobuf: string field is not valid UTF-8");
        i += k;
    }
    return 0;
}

/* What each byte becomes inside a JSON string as orjson writes it: JSON_PLAIN (itself), JSON_UTF8 (a byte of a
 * multibyte UTF-8 sequence: itself, once the sequence is checked), or the letter after the backslash of its
 * escape: '"', '\\', the short forms b t n f r, and 'u' for \u00XX (the other control characters). */
enum { JSON_PLAIN = 0, JSON_UTF8 = 1 };
static uint8_t JSON_ESCAPE[256];

/* Input bytes escaped per buffer reservation: each reservation is for the worst case (six bytes out per byte in),
 * so the loop writes without checks, and a long string never reserves more than six times this. */
#define ESCAPE_CHUNK 4096

/* The high bit of each byte of `w` that needs a look of its own: a control character, '"', '\\' or a byte of a
 * multibyte UTF-8 sequence. The first flagged byte in memory order is such a byte on a little-endian machine;
 * elsewhere a flagged byte may be a plain one, which costs time, not correctness (see plain_prefix). */
static inline uint64_t special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    return ((w - ones * 0x20) | (quote - ones) | (backslash - ones) | w) & highs;
}

/* How many bytes of the word in front of the first flagged one are plain: counted with GCC's and Clang's
 * count-trailing-zeros on a little-endian machine; elsewhere 0, and put_json_string looks at the bytes one by one. */
static inline size_t plain_prefix(uint64_t flags)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(flags) / 8;
#else
    (void)flags;
    return 0;
#endif
}

/* A JSON string literal, escaped as orjson does (short forms for \b \t \n \f \r, \u00XX for other controls),
 * checking that the text is well-formed UTF-8. Plain bytes are copied a word at a time, so the cost is in the
 * escapes (a quote every few bytes in message JSON recorded as a string). */
static int put_json_string(Buf *b, const uint8_t *s, size_t n)
{
    if (buf_byte(b, '"') < 0)
        return ERR;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > ESCAPE_CHUNK ? i + ESCAPE_CHUNK : n;
        if (buf_reserve(b, 6 * (end - i)) < 0)
            return ERR;
        char *o = b->ptr + b->len;
        while (i < end) {
            if (end - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                memcpy(o, &w, 8); /* in the reserved room; whatever follows the plain prefix is written over */
                uint64_t flags = special_bytes(w);
                if (flags == 0) {
                    i += 8;
                    o += 8;
                    continue;
                }
                size_t plain = plain_prefix(flags);
                i += plain;
                o += plain;
            }
            uint8_t c = s[i], e = JSON_ESCAPE[c];
            if (e == JSON_PLAIN) {
                *o++ = (char)c;
                i++;
            }
            else if (e == JSON_UTF8) {
                /* A sequence may run past `end` (not past n): at most 4 bytes out for the 6 reserved at s[i]. */
                size_t k = utf8_sequence(s + i, n - i);
                if (k == 0)
                    return fail("malformed protobuf: string field is not valid UTF-8");
                memcpy(o, s + i, k);
                o += k;
                i += k;
            }
            else if (e == 'u') {
                memcpy(o, "\\u00", 4);
                o[4] = HEX[c >> 4];
                o[5] = HEX[c & 15];
                o += 6;
                i++;
            }
            else {
                o[0] = '\\';
                o[1] = (char)e;
                o += 2;
                i++;
            }
        }
        b->len = (size_t)(o - b->ptr);
    }
    return buf_byte(b, '"');
}

static int put_i64(Buf *b, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    return buf_put(b, tmp + sizeof tmp - n, (size_t)n);
}

/* A finite double as orjson writes it: Python's shortest round-trip digits (repr), but exponents without zero
 * padding ("1e-7", not "1e-07") and numbers of magnitude 1e-5 written out ("0.00001"). Non-finite doubles are the
 * JSON strings "NaN", "Infinity", "-Infinity" (what the Python path stores). */
/* repr(d) for a finite d, as CPython writes it (PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0)), into
 * `out` (at least 32 bytes). Without the GIL: CPython's dtoa keeps a freelist that needs it, so the digits come from
 * glibc's correctly rounded printf and strtod instead. repr's digits are the shortest that read back as d, the
 * closest to d among those: at each length the correctly rounded digits, or, where d is a power of two (its lower
 * rounding interval is half the upper one), the next decimal up. */
/* The double that `n` digits read as d0.d1d2... x 10^exponent give. Written as an integer mantissa ("15e-1"), so no
 * decimal point is involved: printf and strtod use the C locale's, which an application may have changed. */
static double decimal_value(const char *digits, int n, int exponent)
{
    char text[48];
    snprintf(text, sizeof text, "%.*se%d", n, digits, exponent - (n - 1));
    return strtod(text, NULL);
}

static void double_repr(double d, char *out)
{
    char text[40], digits[20];
    int n_digits = 0, exponent = 0;
    double magnitude = fabs(d);
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision - 1, magnitude);
        /* text is "D.DDDe+XX" (or "De+XX"; the point is the locale's): split into digits and exponent */
        n_digits = 0;
        const char *p = text;
        for (; *p != 'e'; p++)
            if (*p >= '0' && *p <= '9')
                digits[n_digits++] = *p;
        exponent = (int)strtol(p + 1, NULL, 10);
        double back = decimal_value(digits, n_digits, exponent);
        if (back == magnitude)
            break;
        if (back < magnitude) {
            /* the decimal one unit up in the last digit, carried */
            char up[20];
            memcpy(up, digits, (size_t)n_digits);
            int i = n_digits - 1, up_exponent = exponent;
            while (i >= 0 && up[i] == '9')
                up[i--] = '0';
            if (i >= 0)
                up[i]++;
            else {
                memmove(up + 1, up, (size_t)n_digits - 1);
                up[0] = '1';
                up_exponent++;
            }
            if (decimal_value(up, n_digits, up_exponent) == magnitude) {
                memcpy(digits, up, (size_t)n_digits);
                exponent = up_exponent;
                break;
            }
        }
    }
    while (n_digits > 1 && digits[n_digits - 1] == '0')
        n_digits--;
    char *o = out;
    if (signbit(d))
        *o++ = '-';
    int point = exponent + 1; /* digits before the decimal point */
    if (magnitude == 0.0) {
        memcpy(o, "0.0", 4);
        return;
    }
    if (point <= -4 || point > 16) { /* repr's switch to exponent notation */
        *o++ = digits[0];
        if (n_digits > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)n_digits - 1);
            o += n_digits - 1;
        }
        snprintf(o, 8, "e%c%02d", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
        return;
    }
    if (point <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -point; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)n_digits);
        o += n_digits;
    }
    else if (point >= n_digits) {
        memcpy(o, digits, (size_t)n_digits);
        o += n_digits;
        for (int i = n_digits; i < point; i++)
            *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    }
    else {
        memcpy(o, digits, (size_t)point);
        o += point;
        *o++ = '.';
        memcpy(o, digits + point, (size_t)(n_digits - point));
        o += n_digits - point;
    }
    *o = '\0';
}

static int put_double(Buf *b, double d)
{
    if (isnan(d))
        return buf_lit(b, "\"NaN\"");
    if (isinf(d))
        return d > 0 ? buf_lit(b, "\"Infinity\"") : buf_lit(b, "\"-Infinity\"");
    char text[48];
    double_repr(d, text);
    int rc;
    char *e = strchr(text, 'e');
    if (e == NULL)
        rc = buf_put(b, text, strlen(text));
    else {
        long exponent = strtol(e + 1, NULL, 10);
        if (exponent == -5) {
            rc = buf_put(b, text[0] == '-' ? "-0.0000" : "0.0000", text[0] == '-' ? 7 : 6);
            for (char *p = text; p < e && rc == 0; p++)
                if (*p >= '0' && *p <= '9')
                    rc = buf_byte(b, *p);
        }
        else {
            rc = buf_put(b, text, (size_t)(e - text));
            if (rc == 0)
                rc = buf_put(b, exponent < 0 ? "e-" : "e+", 2);
            if (rc == 0)
                rc = put_i64(b, exponent < 0 ? -exponent : exponent);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* AnyValue / KeyValue                                                                                           */

enum { AV_NONE = 0, AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES, AV_STRINDEX };

/* The oneof member a field sets, or AV_NONE when it is not one (unknown number, or a wire type that makes it an
 * unknown field). */
static int oneof_case(const Field *f)
{
    static const int WIRE[9] = {-1, 2, 0, 0, 1, 2, 2, 2, 0};
    return f->num >= 1 && f->num <= 8 && f->wt == WIRE[f->num] ? (int)f->num : AV_NONE;
}

typedef struct {
    int which;      /* AV_* */
    Field last;     /* the field that set it (the value for scalars) */
    Pieces run;     /* for arrays and kvlists: where the merged run of that member starts */
} AnyValue;

static int resolve_value(Pieces src, AnyValue *out)
{
    Pieces m = src, before;
    Field f;
    int rc;
    out->which = AV_NONE;
    memset(&out->last, 0, sizeof out->last);
    for (;;) {
        before = m;
        rc = pieces_next(&m, &f);
        if (rc <= 0)
            return rc;
        int which = oneof_case(&f);
        if (which == AV_NONE)
            continue;
        /* A message member seen again merges into the current one; anything else replaces it. */
        if (!((which == AV_ARRAY || which == AV_KVLIST) && which == out->which))
            out->run = before;
        out->which = which;
        out->last = f;
    }
}

typedef struct {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *kv; /* the whole KeyValue message */
    size_t kv_len;
    const uint8_t *value; /* its value field, when it occurs once (the usual case) */
    size_t value_len, value_count;
    size_t slot;       /* index of the first entry with this key */
    size_t final;      /* for a slot: index of the entry whose value wins */
    /* filled for slots of a span's own attributes, for the typed columns */
    int which;
    uint64_t bits;
    const uint8_t *str;
    size_t str_len;
    size_t json_start, json_end;
} Entry;

typedef struct {
    const uint8_t *key;
    size_t len;
    int column;  /* index among the typed columns (string ones first, then integer ones) */
} TypedKey;

typedef struct {
    int decided; /* a key of this column had a value that is not None */
    int kind;    /* 0 null, 1 raw bytes at ptr, 2 bytes [start, start + len) of the attributes JSON, 3 int64 */
    const uint8_t *ptr;
    size_t start, len;
    int64_t number;
} TypedValue;

typedef struct {
    Table spans, events, links;
    Entry *entries;
    size_t n_entries, cap_entries;
    Py_ssize_t *hash;
    size_t hash_cap;
    int max_depth;
    size_t limit_span, limit_event, limit_link, limit_kvlist; /* attribute count limits */
    uint64_t dropped;  /* attributes dropped by the limits in the item being written */
    TypedKey *typed_keys;
    int n_typed_keys, n_typed_str, n_typed_int;
    uint64_t typed_key_lengths; /* bit n set when some typed key is n bytes long (n < 64) */
    size_t *typed_match;        /* per typed key: the entry holding it, or SIZE_MAX */
    TypedValue *typed_values;
    Py_ssize_t reject_counts[N_REJECT];
    int reject_order[N_REJECT], n_reject_kinds;
} Ctx;

static int push_entry(Ctx *ctx, const uint8_t *kv, size_t kv_len)
{
    if (ctx->n_entries == ctx->cap_entries) {
        size_t cap = ctx->cap_entries ? ctx->cap_entries * 2 : 64;
        if (cap > (size_t)PY_SSIZE_T_MAX / sizeof(Entry)) {
            return raise_no_memory();
        }
        Entry *p = PyMem_RawRealloc(ctx->entries, cap * sizeof(Entry));
        if (p == NULL) {
            return raise_no_memory();
        }
        ctx->entries = p;
        ctx->cap_entries = cap;
    }
    Entry *e = &ctx->entries[ctx->n_entries];
    e->key = (const uint8_t *)"";
    e->key_len = 0;
    e->value_count = 0;
    Reader r = {kv, kv + kv_len};
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0)
        if (f.num == 1 && f.wt == 2) {
            e->key = f.ptr;
            e->key_len = f.len;
        }
        else if (f.num == 2 && f.wt == 2) {
            e->value = f.ptr;
            e->value_len = f.len;
            e->value_count++;
        }
    if (rc < 0)
        return ERR;
    e->kv = kv;
    e->kv_len = kv_len;
    ctx->n_entries++;
    return 0;
}

/* Appends the KeyValue messages found as field `fnum` of `msg` to ctx->entries. */
static int collect_entries(Ctx *ctx, const uint8_t *msg, size_t len, uint32_t fnum)
{
    Reader r = {msg, msg + len};
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0)
        if (f.num == fnum && f.wt == 2 && push_entry(ctx, f.ptr, f.len) < 0)
            return ERR;
    return rc;
}

/* SipHash-1-3 keyed per process (set at import from os.urandom): attribute keys cannot be chosen to collide. */
static uint64_t HASH_K0, HASH_K1;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                           \
    do {                                                                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                          \
    } while (0)

static uint64_t hash_key(const uint8_t *s, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ HASH_K0, v1 = 0x646f72616e646f6dull ^ HASH_K1;
    uint64_t v2 = 0x6c7967656e657261ull ^ HASH_K0, v3 = 0x7465646279746573ull ^ HASH_K1;
    const uint8_t *end = s + (n & ~(size_t)7);
    for (; s < end; s += 8) {
        uint64_t m = 0;
        for (int i = 0; i < 8; i++)
            m |= (uint64_t)s[i] << (8 * i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)s[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#define DROPPED SIZE_MAX /* Entry.slot of a KeyValue the count limit dropped */

static inline int same_key(const Entry *a, const Entry *b)
{
    return a->key_len == b->key_len && (a->key_len == 0 || memcmp(a->key, b->key, a->key_len) == 0);
}

/* Sets slot/final for entries[base:]: Python dict semantics (first position, last value), keeping the first
 * `limit` distinct keys; the KeyValues of any other key get slot DROPPED and are counted in ctx->dropped. */
static int dedupe(Ctx *ctx, size_t base, size_t limit)
{
    size_t n = ctx->n_entries - base, kept = 0;
    Entry *e = ctx->entries + base;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) {
            e[i].slot = base + i;
            e[i].final = base + i;
            for (size_t j = 0; j < i; j++)
                if (e[j].slot == base + j && same_key(&e[i], &e[j])) {
                    e[i].slot = base + j;
                    e[j].final = base + i;
                    break;
                }
            if (e[i].slot == base + i && kept++ >= limit) {
                e[i].slot = DROPPED;
                ctx->dropped++;
            }
        }
        return 0;
    }
    /* The table holds at most `limit` keys, so however many KeyValues arrive, probing stays short. */
    size_t cap = 32, distinct = n < limit ? n : limit;
    while (cap < 2 * distinct)
        cap *= 2;
    if (cap > ctx->hash_cap) {
        Py_ssize_t *p = PyMem_RawRealloc(ctx->hash, cap * sizeof(Py_ssize_t));
        if (p == NULL) {
            return raise_no_memory();
        }
        ctx->hash = p;
        ctx->hash_cap = cap;
    }
    for (size_t i = 0; i < cap; i++)
        ctx->hash[i] = -1;
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)hash_key(e[i].key, e[i].key_len) & (cap - 1);
        e[i].slot = e[i].final = base + i;
        for (;;) {
            Py_ssize_t j = ctx->hash[h];
            if (j < 0) {
                if (kept >= limit) {
                    e[i].slot = DROPPED;
                    ctx->dropped++;
                }
                else {
                    ctx->hash[h] = (Py_ssize_t)i;
                    kept++;
                }
                break;
            }
            if (same_key(&e[i], &e[j])) {
                e[i].slot = base + (size_t)j;
                e[j].final = base + i;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
    }
    return 0;
}

static Pieces value_of_entry(const Entry *e)
{
    if (e->value_count == 1)
        return single_piece(e->value, e->value_len);
    return pieces_of(e->kv, e->kv_len, 2); /* absent (no pieces) or several occurrences to merge */
}

/* The depth rule of anyvalue.any_value: scalars and unset values pass; anything else at depth >= max rejects. */
static int check_value(Ctx *ctx, const AnyValue *v, int depth)
{
    if (v->which <= AV_DOUBLE)
        return 0;
    if (depth >= ctx->max_depth)
        return REJECT;
    if (v->which != AV_ARRAY && v->which != AV_KVLIST)
        return 0;
    Pieces m = v->run;
    Field f, item;
    int rc;
    while ((rc = pieces_next(&m, &f)) > 0) {
        if ((int)f.num != v->which || f.wt != 2)
            continue;
        Reader r = {f.ptr, f.ptr + f.len};
        while ((rc = next_field(&r, &item)) > 0) {
            if (item.num != 1 || item.wt != 2)
                continue;
            AnyValue inner;
            Pieces src = v->which == AV_ARRAY ? single_piece(item.ptr, item.len) : pieces_of(item.ptr, item.len, 2);
            if (resolve_value(src, &inner) < 0)
                return ERR;
            int checked = check_value(ctx, &inner, depth + 1);
            if (checked)
                return checked;
        }
        if (rc < 0)
            return ERR;
    }
    return rc;
}

static int write_object(Ctx *ctx, Buf *out, size_t base, int depth, int record, size_t limit);

/* One AnyValue as JSON at `depth` (attribute values of a span are at depth 1). */
static int write_value(Ctx *ctx, Buf *out, const AnyValue *v, int depth)
{
    switch (v->which) {
    case AV_STRING:
        return put_json_string(out, v->last.ptr, v->last.len);
    case AV_BOOL:
        return v->last.v ? buf_lit(out, "true") : buf_lit(out, "false");
    case AV_INT:
        return put_i64(out, (int64_t)v->last.v);
    case AV_DOUBLE: {
        double d;
        memcpy(&d, &v->last.v, sizeof d);
        return put_double(out, d);
    }
    case AV_NONE:
        return buf_lit(out, "null");
    }
    if (depth >= ctx->max_depth)
        return REJECT;
    if (v->which == AV_BYTES) {
        if (buf_byte(out, '"') < 0 || put_base64(out, v->last.ptr, v->last.len) < 0)
            return ERR;
        return buf_byte(out, '"');
    }
    if (v->which == AV_STRINDEX)
        return buf_lit(out, "null");
    Pieces m = v->run;
    Field f;
    int rc;
    if (v->which == AV_ARRAY) {
        int first = 1;
        if (buf_byte(out, '[') < 0)
            return ERR;
        while ((rc = pieces_next(&m, &f)) > 0) {
            if (f.num != AV_ARRAY || f.wt != 2)
                continue;
            Reader r = {f.ptr, f.ptr + f.len};
            Field item;
            while ((rc = next_field(&r, &item)) > 0) {
                if (item.num != 1 || item.wt != 2)
                    continue;
                AnyValue inner;
                if (resolve_value(single_piece(item.ptr, item.len), &inner) < 0)
                    return ERR;
                if (!first && buf_byte(out, ',') < 0)
                    return ERR;
                first = 0;
                int written = write_value(ctx, out, &inner, depth + 1);
                if (written)
                    return written;
            }
            if (rc < 0)
                return ERR;
        }
        if (rc < 0)
            return ERR;
        return buf_byte(out, ']');
    }
    /* AV_KVLIST: the KeyValues of every merged KeyValueList, as one object */
    size_t base = ctx->n_entries;
    while ((rc = pieces_next(&m, &f)) > 0)
        if (f.num == AV_KVLIST && f.wt == 2 && collect_entries(ctx, f.ptr, f.len, 1) < 0)
            return ERR;
    if (rc < 0)
        return ERR;
    rc = write_object(ctx, out, base, depth + 1, 0, ctx->limit_kvlist);
    ctx->n_entries = base;
    return rc;
}

/*
 * The entries[base:] as one JSON object whose values are at `depth`. With `record`, each slot also keeps what
 * the typed columns need (its value's kind, raw string and the span of its JSON text in `out`).
 */
static int write_object(Ctx *ctx, Buf *out, size_t base, int depth, int record, size_t limit)
{
    if (dedupe(ctx, base, limit) < 0)
        return ERR;
    size_t end = ctx->n_entries;
    AnyValue v;
    /* Python evaluates every value, including ones a later duplicate overwrites: they count for the depth rule
     * (values of dropped keys are never read). */
    for (size_t i = base; i < end; i++) {
        if (ctx->entries[i].slot == DROPPED || ctx->entries[ctx->entries[i].slot].final == i)
            continue;
        if (resolve_value(value_of_entry(&ctx->entries[i]), &v) < 0)
            return ERR;
        int checked = check_value(ctx, &v, depth);
        if (checked)
            return checked;
    }
    if (buf_byte(out, '{') < 0)
        return ERR;
    int first = 1;
    for (size_t i = base; i < end; i++) {
        if (ctx->entries[i].slot != i)
            continue;
        if (!first && buf_byte(out, ',') < 0)
            return ERR;
        first = 0;
        if (put_json_string(out, ctx->entries[i].key, ctx->entries[i].key_len) < 0 || buf_byte(out, ':') < 0)
            return ERR;
        if (resolve_value(value_of_entry(&ctx->entries[ctx->entries[i].final]), &v) < 0)
            return ERR;
        size_t start = out->len;
        int written = write_value(ctx, out, &v, depth); /* may grow ctx->entries: index it afresh below */
        if (written)
            return written;
        if (record) {
            Entry *e = &ctx->entries[i];
            e->which = v.which;
            e->bits = v.last.v;
            e->str = v.last.ptr;
            e->str_len = v.last.len;
            e->json_start = start;
            e->json_end = out->len;
        }
    }
    return buf_byte(out, '}');
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Spans                                                                                                         */

enum {
    S_TRACE_ID, S_SPAN_ID, S_PARENT, S_TRACE_STATE, S_FLAGS, S_NAME, S_KIND, S_START, S_END, S_DURATION,
    S_STATUS_CODE, S_STATUS_MESSAGE, S_RESOURCE_ID, S_SERVICE_NAME, S_SCOPE_NAME, S_SCOPE_VERSION, S_ATTRIBUTES,
    S_EVENT_COUNT, S_LINK_COUNT, S_DROPPED_ATTRIBUTES, S_DROPPED_EVENTS, S_DROPPED_LINKS, S_TYPED
};
static const int SPAN_TYPES[S_TYPED] = {
    COL_STR, COL_STR, COL_STR, COL_STR, COL_U32, COL_STR, COL_STR, COL_I64, COL_I64, COL_I64,
    COL_STR, COL_STR, COL_I64, COL_STR, COL_STR, COL_STR, COL_STR,
    COL_U32, COL_U32, COL_U32, COL_U32, COL_U32};

enum { E_TRACE_ID, E_SPAN_ID, E_INDEX, E_TIME, E_NAME, E_ATTRIBUTES, E_DROPPED, E_NCOLS };
static const int EVENT_TYPES[E_NCOLS] = {COL_STR, COL_STR, COL_U32, COL_I64, COL_STR, COL_STR, COL_U32};

enum {
    L_TRACE_ID, L_SPAN_ID, L_INDEX, L_LINKED_TRACE_ID, L_LINKED_SPAN_ID, L_TRACE_STATE, L_FLAGS, L_ATTRIBUTES,
    L_DROPPED, L_NCOLS
};
static const int LINK_TYPES[L_NCOLS] = {COL_STR, COL_STR, COL_U32, COL_STR, COL_STR, COL_STR, COL_U32, COL_STR,
                                        COL_U32};

static const char *const SPAN_KINDS[6] = {"UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
static const char *const STATUS_CODES[3] = {"UNSET", "OK", "ERROR"};

typedef struct {
    const uint8_t *ptr;
    size_t len;
    int present;
} Str;

typedef struct {
    int64_t resource_id;
    Str service_name, scope_name, scope_version; /* present == 0 means NULL */
} Owner;

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int col_opt_str(Column *c, Str s)
{
    return s.present && s.len ? col_str(c, s.ptr, s.len) : col_null(c);
}

static int col_hex(Column *c, const uint8_t *p, size_t n)
{
    if (put_hex(&c->data, p, n) < 0)
        return ERR;
    return col_str_commit(c, 1);
}

static void count_reject(Ctx *ctx, int code)
{
    if (ctx->reject_counts[code]++ == 0)
        ctx->reject_order[ctx->n_reject_kinds++] = code;
}

#define TRY(expr)                 \
    do {                          \
        int rc_ = (expr);         \
        if (rc_)                  \
            return rc_;           \
    } while (0)

/* The sender's dropped count plus ours, in the uint32 column (as normalize.py clamps it). */
static uint32_t clamp_u32(uint64_t n)
{
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* One event row; REJECT when its time does not fit int64 or its attributes nest too deeply. */
static int write_event(Ctx *ctx, const uint8_t *msg, size_t len, const uint8_t *ids, uint32_t index)
{
    uint64_t time = 0, dropped = 0;
    Str name = {(const uint8_t *)"", 0, 1};
    Reader r = {msg, msg + len};
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.num == 1 && f.wt == 1)
            time = f.v;
        else if (f.num == 2 && f.wt == 2)
            name = (Str){f.ptr, f.len, 1};
        else if (f.num == 4 && f.wt == 0)
            dropped = (uint32_t)f.v;  /* a uint32 field: protobuf keeps a longer varint's low 32 bits */
    }
    if (rc < 0)
        return ERR;
    if (time > (uint64_t)INT64_MAX)
        return REJECT_TIME;
    Column *c = ctx->events.cols;
    size_t base = ctx->n_entries;
    TRY(collect_entries(ctx, msg, len, 3));
    ctx->dropped = dropped;
    rc = write_object(ctx, &c[E_ATTRIBUTES].data, base, 1, 0, ctx->limit_event);
    ctx->n_entries = base;
    if (rc)
        return rc;
    TRY(col_str_commit(&c[E_ATTRIBUTES], 1));
    TRY(check_utf8(name.ptr, name.len));
    TRY(col_hex(&c[E_TRACE_ID], ids, 16));
    TRY(col_hex(&c[E_SPAN_ID], ids + 16, 8));
    TRY(col_u32(&c[E_INDEX], index));
    TRY(col_i64(&c[E_TIME], (int64_t)time));
    TRY(col_str(&c[E_NAME], name.ptr, name.len));
    TRY(col_u32(&c[E_DROPPED], clamp_u32(ctx->dropped)));
    ctx->events.rows++;
    return 0;
}

/* One link row; links whose ids have the wrong length are skipped (their attributes are not even read). */
static int write_link(Ctx *ctx, const uint8_t *msg, size_t len, const uint8_t *ids, uint32_t index)
{
    Str trace_id = {NULL, 0, 0}, span_id = {NULL, 0, 0}, trace_state = {NULL, 0, 0};
    uint64_t flags = 0, dropped = 0;
    Reader r = {msg, msg + len};
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.num == 1 && f.wt == 2)
            trace_id = (Str){f.ptr, f.len, 1};
        else if (f.num == 2 && f.wt == 2)
            span_id = (Str){f.ptr, f.len, 1};
        else if (f.num == 3 && f.wt == 2)
            trace_state = (Str){f.ptr, f.len, 1};
        else if (f.num == 5 && f.wt == 0)
            dropped = (uint32_t)f.v;
        else if (f.num == 6 && f.wt == 5)
            flags = f.v;
    }
    if (rc < 0)
        return ERR;
    if (trace_id.len != 16 || span_id.len != 8)
        return 0;
    Column *c = ctx->links.cols;
    size_t base = ctx->n_entries;
    TRY(collect_entries(ctx, msg, len, 4));
    ctx->dropped = dropped;
    rc = write_object(ctx, &c[L_ATTRIBUTES].data, base, 1, 0, ctx->limit_link);
    ctx->n_entries = base;
    if (rc)
        return rc;
    TRY(col_str_commit(&c[L_ATTRIBUTES], 1));
    if (trace_state.present)
        TRY(check_utf8(trace_state.ptr, trace_state.len));
    TRY(col_hex(&c[L_TRACE_ID], ids, 16));
    TRY(col_hex(&c[L_SPAN_ID], ids + 16, 8));
    TRY(col_u32(&c[L_INDEX], index));
    TRY(col_hex(&c[L_LINKED_TRACE_ID], trace_id.ptr, 16));
    TRY(col_hex(&c[L_LINKED_SPAN_ID], span_id.ptr, 8));
    TRY(col_opt_str(&c[L_TRACE_STATE], trace_state));
    TRY(col_u32(&c[L_FLAGS], (uint32_t)flags));
    TRY(col_u32(&c[L_DROPPED], clamp_u32(ctx->dropped)));
    ctx->links.rows++;
    return 0;
}

/* The typed columns from the span's deduplicated attributes (slots in entries[base:]); first present key wins. */
static void pick_typed_values(Ctx *ctx, size_t base, const Buf *json)
{
    int n_columns = ctx->n_typed_str + ctx->n_typed_int;
    for (int i = 0; i < n_columns; i++)
        ctx->typed_values[i].decided = ctx->typed_values[i].kind = 0;
    /* Which slot holds each typed key; most attribute keys are ruled out by their length alone. */
    for (int k = 0; k < ctx->n_typed_keys; k++)
        ctx->typed_match[k] = SIZE_MAX;
    for (size_t i = base; i < ctx->n_entries; i++) {
        const Entry *e = &ctx->entries[i];
        if (e->slot != i || e->key_len >= 64 || !(ctx->typed_key_lengths >> e->key_len & 1))
            continue;
        for (int k = 0; k < ctx->n_typed_keys; k++)
            if (ctx->typed_keys[k].len == e->key_len && memcmp(e->key, ctx->typed_keys[k].key, e->key_len) == 0)
                ctx->typed_match[k] = i;
    }
    /* typed_keys are in priority order within each column, so the first present value per column wins */
    for (int k = 0; k < ctx->n_typed_keys; k++) {
        const TypedKey *key = &ctx->typed_keys[k];
        TypedValue *out = &ctx->typed_values[key->column];
        if (out->decided || ctx->typed_match[k] == SIZE_MAX)
            continue;
        {
            const Entry *e = &ctx->entries[ctx->typed_match[k]];
            if (e->which == AV_NONE || e->which == AV_STRINDEX)
                continue; /* present but None: the next key of this column decides */
            out->decided = 1;
            if (key->column < ctx->n_typed_str) {
                if (e->which == AV_STRING) {
                    out->kind = 1;
                    out->ptr = e->str;
                    out->len = e->str_len;
                }
                else {
                    /* JSON text; bytes (base64) and non-finite doubles are strings in Python: no quotes */
                    out->kind = 2;
                    out->start = e->json_start;
                    out->len = e->json_end - e->json_start;
                    if (json->ptr[out->start] == '"') {
                        out->start++;
                        out->len -= 2;
                    }
                }
            }
            else {
                /* ints (not bools) and integral doubles that fit int64; anything else is NULL */
                if (e->which == AV_INT) {
                    out->kind = 3;
                    out->number = (int64_t)e->bits;
                }
                else if (e->which == AV_DOUBLE) {
                    double d;
                    memcpy(&d, &e->bits, sizeof d);
                    if (isfinite(d) && d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
                        out->kind = 3;
                        out->number = (int64_t)d;
                    }
                }
            }
        }
    }
}

static int write_span(Ctx *ctx, const uint8_t *msg, size_t len, const Owner *owner)
{
    Str trace_id = {NULL, 0, 0}, span_id = {NULL, 0, 0}, parent = {NULL, 0, 0}, trace_state = {NULL, 0, 0};
    Str name = {(const uint8_t *)"", 0, 1};
    uint64_t flags = 0, kind = 0, start = 0, end = 0, dropped_attributes = 0, dropped_events = 0,
             dropped_links = 0;
    size_t n_events = 0, n_links = 0, n_status = 0;
    Str status_piece = {NULL, 0, 0};
    size_t base = ctx->n_entries; /* this span's attributes, collected in the same pass */
    Reader r = {msg, msg + len};
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        switch (f.num) {
        case 1: if (f.wt == 2) trace_id = (Str){f.ptr, f.len, 1}; break;
        case 2: if (f.wt == 2) span_id = (Str){f.ptr, f.len, 1}; break;
        case 3: if (f.wt == 2) trace_state = (Str){f.ptr, f.len, 1}; break;
        case 4: if (f.wt == 2) parent = (Str){f.ptr, f.len, 1}; break;
        case 5: if (f.wt == 2) name = (Str){f.ptr, f.len, 1}; break;
        case 6: if (f.wt == 0) kind = f.v; break;
        case 7: if (f.wt == 1) start = f.v; break;
        case 8: if (f.wt == 1) end = f.v; break;
        case 10: if (f.wt == 0) dropped_attributes = (uint32_t)f.v; break;  /* uint32: low 32 bits, as upb */
        case 11: if (f.wt == 2) n_events++; break;
        case 12: if (f.wt == 0) dropped_events = (uint32_t)f.v; break;
        case 13: if (f.wt == 2) n_links++; break;
        case 14: if (f.wt == 0) dropped_links = (uint32_t)f.v; break;
        case 16: if (f.wt == 5) flags = f.v; break;
        case 9:
            if (f.wt == 2 && push_entry(ctx, f.ptr, f.len) < 0)
                return ERR;
            break;
        case 15:
            if (f.wt == 2) {
                status_piece = (Str){f.ptr, f.len, 1};
                n_status++;
            }
            break;
        }
    }
    if (rc < 0)
        return ERR;
    int outcome = 0;
    TRY(check_utf8(name.ptr, name.len));
    if (trace_state.present)
        TRY(check_utf8(trace_state.ptr, trace_state.len));

    int refused = -1;
    if (trace_id.len != 16 || all_zero(trace_id.ptr, 16))
        refused = REJECT_TRACE_ID;
    else if (span_id.len != 8 || all_zero(span_id.ptr, 8))
        refused = REJECT_SPAN_ID;
    else if (parent.len != 0 && parent.len != 8)
        refused = REJECT_PARENT_ID;
    else if (start > (uint64_t)INT64_MAX || end > (uint64_t)INT64_MAX)
        refused = REJECT_TIMESTAMP;
    if (refused >= 0) {
        ctx->n_entries = base;
        count_reject(ctx, refused);
        return 0;
    }

    /* Status is a message: several occurrences merge field by field. */
    Str status_message = {NULL, 0, 0};
    uint64_t status_code = 0;
    Pieces status = n_status == 1 ? single_piece(status_piece.ptr, status_piece.len) : pieces_of(msg, len, 15);
    rc = 0;
    while (n_status && (rc = pieces_next(&status, &f)) > 0) {
        if (f.num == 2 && f.wt == 2)
            status_message = (Str){f.ptr, f.len, 1};
        else if (f.num == 3 && f.wt == 0)
            status_code = f.v;
    }
    if (rc < 0)
        outcome = ERR;
    if (outcome == 0 && status_message.present)
        outcome = check_utf8(status_message.ptr, status_message.len);
    if (outcome) {
        ctx->n_entries = base;
        return outcome;
    }

    uint8_t ids[24];
    memcpy(ids, trace_id.ptr, 16);
    memcpy(ids + 16, span_id.ptr, 8);
    table_mark(&ctx->spans);
    table_mark(&ctx->events);
    table_mark(&ctx->links);
    Column *c = ctx->spans.cols;

    ctx->dropped = dropped_attributes;
    outcome = write_object(ctx, &c[S_ATTRIBUTES].data, base, 1, 1, ctx->limit_span);
    dropped_attributes = ctx->dropped;
    if (outcome == 0)
        pick_typed_values(ctx, base, &c[S_ATTRIBUTES].data);
    ctx->n_entries = base;

    /* All events, then all links, as the Python path does: the first problem found names the rejection. */
    uint32_t event_index = 0, link_index = 0;
    for (int pass = 0; pass < 2 && outcome == 0; pass++) {
        if ((pass == 0 && n_events == 0) || (pass == 1 && n_links == 0))
            continue;
        r = (Reader){msg, msg + len};
        while (outcome == 0 && (rc = next_field(&r, &f)) > 0) {
            if (pass == 0 && f.num == 11 && f.wt == 2)
                outcome = write_event(ctx, f.ptr, f.len, ids, event_index++);
            else if (pass == 1 && f.num == 13 && f.wt == 2)
                outcome = write_link(ctx, f.ptr, f.len, ids, link_index++);
        }
        if (outcome == 0 && rc < 0)
            outcome = ERR;
    }
    if (outcome == REJECT || outcome == REJECT_TIME) {
        table_rollback(&ctx->spans);
        table_rollback(&ctx->events);
        table_rollback(&ctx->links);
        count_reject(ctx, outcome == REJECT ? REJECT_DEPTH : REJECT_TIMESTAMP);
        return 0;
    }
    if (outcome)
        return outcome;

    TRY(col_str_commit(&c[S_ATTRIBUTES], 1));
    TRY(col_hex(&c[S_TRACE_ID], ids, 16));
    TRY(col_hex(&c[S_SPAN_ID], ids + 16, 8));
    TRY(parent.len ? col_hex(&c[S_PARENT], parent.ptr, 8) : col_null(&c[S_PARENT]));
    TRY(col_opt_str(&c[S_TRACE_STATE], trace_state));
    TRY(col_u32(&c[S_FLAGS], (uint32_t)flags));
    TRY(col_str(&c[S_NAME], name.ptr, name.len));
    int32_t kind32 = (int32_t)(uint32_t)kind, code32 = (int32_t)(uint32_t)status_code;
    const char *kind_text = kind32 >= 0 && kind32 < 6 ? SPAN_KINDS[kind32] : SPAN_KINDS[0];
    const char *code_text = code32 >= 0 && code32 < 3 ? STATUS_CODES[code32] : STATUS_CODES[0];
    TRY(col_str(&c[S_KIND], kind_text, strlen(kind_text)));
    TRY(col_i64(&c[S_START], (int64_t)start));
    TRY(col_i64(&c[S_END], (int64_t)end));
    TRY(col_i64(&c[S_DURATION], end >= start ? (int64_t)(end - start) : 0));
    TRY(col_str(&c[S_STATUS_CODE], code_text, strlen(code_text)));
    TRY(col_opt_str(&c[S_STATUS_MESSAGE], status_message));
    TRY(col_i64(&c[S_RESOURCE_ID], owner->resource_id));
    TRY(owner->service_name.present ? col_str(&c[S_SERVICE_NAME], owner->service_name.ptr, owner->service_name.len)
                                    : col_null(&c[S_SERVICE_NAME]));
    TRY(col_opt_str(&c[S_SCOPE_NAME], owner->scope_name));
    TRY(col_opt_str(&c[S_SCOPE_VERSION], owner->scope_version));
    TRY(col_u32(&c[S_EVENT_COUNT], (uint32_t)n_events));
    TRY(col_u32(&c[S_LINK_COUNT], (uint32_t)n_links));
    TRY(col_u32(&c[S_DROPPED_ATTRIBUTES], clamp_u32(dropped_attributes)));
    TRY(col_u32(&c[S_DROPPED_EVENTS], (uint32_t)dropped_events));
    TRY(col_u32(&c[S_DROPPED_LINKS], (uint32_t)dropped_links));
    for (int i = 0; i < ctx->n_typed_str + ctx->n_typed_int; i++) {
        const TypedValue *v = &ctx->typed_values[i];
        Column *column = &c[S_TYPED + i];
        if (v->kind == 1)
            TRY(col_str(column, v->ptr, v->len));
        else if (v->kind == 2)
            TRY(col_str(column, c[S_ATTRIBUTES].data.ptr + v->start, v->len));
        else if (v->kind == 3)
            TRY(col_i64(column, v->number));
        else
            TRY(col_null(column));
    }
    ctx->spans.rows++;
    return 0;
}

static int write_scope_spans(Ctx *ctx, const uint8_t *msg, size_t len, Owner *owner)
{
    /* InstrumentationScope is a message: read every occurrence, last name/version win. */
    Pieces scope = pieces_of(msg, len, 1);
    Field f;
    int rc;
    owner->scope_name = owner->scope_version = (Str){NULL, 0, 0};
    while ((rc = pieces_next(&scope, &f)) > 0) {
        if (f.num == 1 && f.wt == 2)
            owner->scope_name = (Str){f.ptr, f.len, 1};
        else if (f.num == 2 && f.wt == 2)
            owner->scope_version = (Str){f.ptr, f.len, 1};
    }
    if (rc < 0)
        return ERR;
    if (owner->scope_name.present)
        TRY(check_utf8(owner->scope_name.ptr, owner->scope_name.len));
    if (owner->scope_version.present)
        TRY(check_utf8(owner->scope_version.ptr, owner->scope_version.len));
    Reader r = {msg, msg + len};
    while ((rc = next_field(&r, &f)) > 0)
        if (f.num == 2 && f.wt == 2)
            TRY(write_span(ctx, f.ptr, f.len, owner));
    return rc < 0 ? ERR : 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Python entry point                                                                                            */

static int read_owner(PyObject *item, Owner *owner)
{
    PyObject *resource_id, *service_name;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "resources must hold (resource_id, service_name) tuples");
        return ERR;
    }
    resource_id = PyTuple_GET_ITEM(item, 0);
    service_name = PyTuple_GET_ITEM(item, 1);
    owner->resource_id = PyLong_AsLongLong(resource_id);
    if (owner->resource_id == -1 && PyErr_Occurred())
        return ERR;
    owner->service_name = (Str){NULL, 0, 0};
    if (service_name != Py_None) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(service_name, &n);
        if (text == NULL)
            return ERR;
        owner->service_name = (Str){(const uint8_t *)text, (size_t)n, 1};
    }
    return 0;
}

/* typed_str / typed_int: a tuple per column of the attribute keys it reads, in priority order. */
static int read_typed_keys(Ctx *ctx, PyObject *typed_str, PyObject *typed_int)
{
    PyObject *groups[2] = {typed_str, typed_int};
    int n_keys = 0;
    for (int g = 0; g < 2; g++) {
        if (!PyTuple_Check(groups[g])) {
            PyErr_SetString(PyExc_TypeError, "typed columns must be a tuple of tuples of str");
            return ERR;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(groups[g]); i++) {
            PyObject *keys = PyTuple_GET_ITEM(groups[g], i);
            if (!PyTuple_Check(keys)) {
                PyErr_SetString(PyExc_TypeError, "typed columns must be a tuple of tuples of str");
                return ERR;
            }
            n_keys += (int)PyTuple_GET_SIZE(keys);
        }
    }
    ctx->n_typed_str = (int)PyTuple_GET_SIZE(typed_str);
    ctx->n_typed_int = (int)PyTuple_GET_SIZE(typed_int);
    ctx->typed_keys = PyMem_Calloc((size_t)n_keys + 1, sizeof(TypedKey));
    ctx->typed_values = PyMem_Calloc((size_t)(ctx->n_typed_str + ctx->n_typed_int) + 1, sizeof(TypedValue));
    ctx->typed_match = PyMem_Calloc((size_t)n_keys + 1, sizeof(size_t));
    if (ctx->typed_keys == NULL || ctx->typed_values == NULL || ctx->typed_match == NULL) {
        return raise_no_memory();
    }
    int column = 0;
    for (int g = 0; g < 2; g++)
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(groups[g]); i++, column++) {
            PyObject *keys = PyTuple_GET_ITEM(groups[g], i);
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(keys); j++) {
                Py_ssize_t n;
                PyObject *key = PyTuple_GET_ITEM(keys, j);
                if (!PyUnicode_Check(key)) {
                    PyErr_SetString(PyExc_TypeError, "typed column keys must be str");
                    return ERR;
                }
                const char *text = PyUnicode_AsUTF8AndSize(key, &n);
                if (text == NULL)
                    return ERR;
                if (n >= 64) {
                    PyErr_SetString(PyExc_ValueError, "typed column keys must be shorter than 64 bytes");
                    return ERR;
                }
                TypedKey *k = &ctx->typed_keys[ctx->n_typed_keys++];
                k->key = (const uint8_t *)text;
                k->len = (size_t)n;
                k->column = column;
                ctx->typed_key_lengths |= (uint64_t)1 << n;
            }
        }
    return 0;
}

/* Runs without the GIL: it touches no Python object (the owners were read before), allocates with the raw
 * allocator and raises through raise_error / raise_no_memory. */
static int decode_request(Ctx *ctx, const uint8_t *data, size_t len, const Owner *owners, Py_ssize_t n_resources)
{
    Reader r = {data, data + len};
    Field f;
    int rc;
    Py_ssize_t index = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.num != 1 || f.wt != 2)
            continue;
        if (index >= n_resources)
            return fail("more resource_spans in the request than resources given");
        Owner owner = owners[index++];
        Reader rs = {f.ptr, f.ptr + f.len};
        Field g;
        while ((rc = next_field(&rs, &g)) > 0)
            if (g.num == 2 && g.wt == 2)
                TRY(write_scope_spans(ctx, g.ptr, g.len, &owner));
        if (rc < 0)
            return ERR;
    }
    if (rc < 0)
        return ERR;
    if (index != n_resources)
        return fail("fewer resource_spans in the request than resources given");
    return 0;
}

PyDoc_STRVAR(decode_traces_doc,
"decode_traces(payload, resources, typed_str, typed_int, max_depth, limits)\n"
"--\n\n"
"Serialized ExportTraceServiceRequest bytes to Arrow column buffers.\n\n"
"resources: a list with one (resource_id, service_name) per resource_spans, in order.\n"
"typed_str / typed_int: per typed column, the tuple of attribute keys it reads (first present wins).\n"
"limits: attribute count limits (span, event, link, kvlist), each >= 0; without it, none.\n"
"Returns (spans, events, links, rejections). Each table is (rows, capsule): an \"arrow_array\" PyCapsule\n"
"(Arrow C data interface) of a struct array whose children are the columns in the order of normalize.py's\n"
"schemas, then the time columns again (spans: start, end; events: time) to be typed as timestamps.\n"
"rejections is a list of (reason_code, count) in order of first occurrence. Raises ValueError on\n"
"malformed input.");

static PyObject *decode_traces(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer payload;
    PyObject *resources, *typed_str, *typed_int, *result = NULL;
    int max_depth;
    Py_ssize_t limits[4] = {PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX};
    if (!PyArg_ParseTuple(args, "y*O!OOi|(nnnn):decode_traces", &payload, &PyList_Type, &resources, &typed_str,
                          &typed_int, &max_depth, &limits[0], &limits[1], &limits[2], &limits[3]))
        return NULL;
    if (limits[0] < 0 || limits[1] < 0 || limits[2] < 0 || limits[3] < 0) {
        PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_ValueError, "attribute limits must be >= 0");
        return NULL;
    }
    if (max_depth < 1 || max_depth > 100) { /* it bounds the recursion of the value writers */
        PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_ValueError, "max_depth must be between 1 and 100");
        return NULL;
    }
    Ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.max_depth = max_depth;
    ctx.limit_span = (size_t)limits[0];
    ctx.limit_event = (size_t)limits[1];
    ctx.limit_link = (size_t)limits[2];
    ctx.limit_kvlist = (size_t)limits[3];
    Owner *owners = NULL;
    Py_ssize_t n_owners = 0;
    int span_types[S_TYPED + 256];
    if (read_typed_keys(&ctx, typed_str, typed_int) < 0)
        goto done;
    if (ctx.n_typed_str + ctx.n_typed_int > 256) {
        PyErr_SetString(PyExc_ValueError, "at most 256 typed columns");
        goto done;
    }
    memcpy(span_types, SPAN_TYPES, sizeof SPAN_TYPES);
    for (int i = 0; i < ctx.n_typed_str + ctx.n_typed_int; i++)
        span_types[S_TYPED + i] = i < ctx.n_typed_str ? COL_STR : COL_I64;
    if (table_init(&ctx.spans, span_types, S_TYPED + ctx.n_typed_str + ctx.n_typed_int) < 0 ||
        table_init(&ctx.events, EVENT_TYPES, E_NCOLS) < 0 || table_init(&ctx.links, LINK_TYPES, L_NCOLS) < 0)
        goto done;
    /* The owners' service names point into the str objects of `resources`, which the caller keeps alive. */
    n_owners = PyList_GET_SIZE(resources);
    owners = PyMem_Calloc((size_t)n_owners + 1, sizeof(Owner));
    if (owners == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_owners; i++)
        if (read_owner(PyList_GET_ITEM(resources, i), &owners[i]) < 0)
            goto done;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = decode_request(&ctx, payload.buf, (size_t)payload.len, owners, n_owners);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        goto done;

    static const int SPAN_TIMES[2] = {S_START, S_END}, EVENT_TIMES[1] = {E_TIME};
    PyObject *spans = Py_BuildValue("(nN)", ctx.spans.rows, table_export(&ctx.spans, SPAN_TIMES, 2));
    PyObject *events = spans ? Py_BuildValue("(nN)", ctx.events.rows, table_export(&ctx.events, EVENT_TIMES, 1))
                             : NULL;
    PyObject *links = events ? Py_BuildValue("(nN)", ctx.links.rows, table_export(&ctx.links, NULL, 0)) : NULL;
    PyObject *rejections = links ? PyList_New(ctx.n_reject_kinds) : NULL;
    if (rejections != NULL) {
        for (int i = 0; i < ctx.n_reject_kinds; i++) {
            int code = ctx.reject_order[i];
            PyObject *pair = Py_BuildValue("(in)", code, ctx.reject_counts[code]);
            if (pair == NULL) {
                Py_CLEAR(rejections);
                break;
            }
            PyList_SET_ITEM(rejections, i, pair);
        }
    }
    if (rejections != NULL)
        result = PyTuple_Pack(4, spans, events, links, rejections);
    Py_XDECREF(spans);
    Py_XDECREF(events);
    Py_XDECREF(links);
    Py_XDECREF(rejections);
done:
    table_free(&ctx.spans);
    table_free(&ctx.events);
    table_free(&ctx.links);
    PyMem_RawFree(ctx.entries);
    PyMem_RawFree(ctx.hash);
    PyMem_Free(ctx.typed_keys);
    PyMem_Free(ctx.typed_values);
    PyMem_Free(ctx.typed_match);
    PyMem_Free(owners);
    PyBuffer_Release(&payload);
    return result;
}

PyDoc_STRVAR(pack_column_doc,
"pack_column(values, kind)\n"
"--\n\n"
"A list of str (kind 's') or int (kind 'q', int64) values, None for NULL, as the same\n"
"(length, null_count, validity, offsets, data) buffers decode_traces returns. For the handful of\n"
"per-request values (resources) that would otherwise go through pyarrow's slower list conversion.");

static PyObject *pack_column(PyObject *module, PyObject *args)
{
    PyObject *values, *result = NULL;
    int kind;
    (void)module;
    if (!PyArg_ParseTuple(args, "O!C:pack_column", &PyList_Type, &values, &kind))
        return NULL;
    if (kind != 's' && kind != 'q') {
        PyErr_SetString(PyExc_ValueError, "kind must be 's' or 'q'");
        return NULL;
    }
    Column column;
    memset(&column, 0, sizeof column);
    column.type = kind == 's' ? COL_STR : COL_I64;
    int32_t zero = 0;
    if (kind == 's' && buf_put(&column.offsets, &zero, sizeof zero) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        int rc;
        if (value == Py_None)
            rc = col_null(&column);
        else if (kind == 's') {
            Py_ssize_t n;
            const char *text = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &n) : NULL;
            if (text == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "pack_column 's' takes str or None");
                goto done;
            }
            rc = col_str(&column, text, (size_t)n);
        }
        else {
            long long number = PyLong_AsLongLong(value);
            if (number == -1 && PyErr_Occurred())
                goto done;
            rc = col_i64(&column, (int64_t)number);
        }
        if (rc < 0)
            goto done;
    }
    result = column_to_python(&column);
done:
    buf_free(&column.data);
    buf_free(&column.offsets);
    buf_free(&column.validity);
    return result;
}

PyDoc_STRVAR(key_hash_doc,
"key_hash(key)\n"
"--\n\n"
"The hash the attribute de-duplication gives `key` (bytes) in this process: the same key hashes differently in\n"
"another process.");

static PyObject *key_hash(PyObject *module, PyObject *args)
{
    Py_buffer key;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*:key_hash", &key))
        return NULL;
    uint64_t h = hash_key(key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef methods[] = {
    {"decode_traces", decode_traces, METH_VARARGS, decode_traces_doc},
    {"key_hash", key_hash, METH_VARARGS, key_hash_doc},
    {"pack_column", pack_column, METH_VARARGS, pack_column_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastdecode",
    "Compiled OTLP trace decoder: ExportTraceServiceRequest bytes to Arrow column buffers.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastdecode(void)
{
    for (int c = 0; c < 0x20; c++)
        JSON_ESCAPE[c] = 'u';
    for (int c = 0x80; c < 0x100; c++)
        JSON_ESCAPE[c] = JSON_UTF8;
    JSON_ESCAPE['"'] = '"';
    JSON_ESCAPE['\\'] = '\\';
    JSON_ESCAPE['\b'] = 'b';
    JSON_ESCAPE['\t'] = 't';
    JSON_ESCAPE['\n'] = 'n';
    JSON_ESCAPE['\f'] = 'f';
    JSON_ESCAPE['\r'] = 'r';
    PyObject *os = PyImport_ImportModule("os");
    PyObject *seed = os ? PyObject_CallMethod(os, "urandom", "i", 16) : NULL;
    Py_XDECREF(os);
    if (seed == NULL)
        return NULL;
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(seed);
    for (int i = 0; i < 8; i++) {
        HASH_K0 |= (uint64_t)bytes[i] << (8 * i);
        HASH_K1 |= (uint64_t)bytes[8 + i] << (8 * i);
    }
    Py_DECREF(seed);
    return PyModule_Create(&module);
}
