/* The ring's hot path in C: an optional accelerator of ipc/ring.py (same layout, same semantics).
 *
 * ipc/ring.py's docstring is the specification: record format, padding, commit order, the
 * Dekker handshake of the doorbells and the counted doorbells (rung_seq). This file only
 * moves the per-record work out of the interpreter; a Ring falls back to the Python code
 * when this module is not importable. Memory order, on every CPU (not only x86's TSO):
 *   producer: payload + record header, then a release store of tail;
 *   consumer: an acquire load of tail, then the records below it, then a release store of head;
 *   producer: an acquire load of head before reusing the space it frees;
 *   Dekker pairs (producer: store tail / load sleep_seq; consumer: store sleep_seq / load tail):
 *   a seq_cst fence between the store and the load.
 * Everything read from shared memory is bounds-checked before it is used as an offset or a
 * length: a corrupt or hostile peer gets the same BadMessage errors as from the Python ring.
 * C API only (no third-party code).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#define HEADER 256
#define PAD 0xFFFFFFFFu
#define REC_HDR_SIZE 6
/* byte offsets of the header words (ring.py: word index * 8) */
#define OFF_HEAD (8 * 8)
#define OFF_TAIL (16 * 8)
#define OFF_RUNG (20 * 8)
#define OFF_SLEEP (24 * 8)

/* set by setup(): the exception classes of ipc/errors.py and ipc.messages.Message */
static PyObject *BadMessage, *ClosedError, *MessageTooLarge, *RingFullError;
static PyTypeObject *MessageType;

typedef struct {
    PyObject_HEAD
    Py_buffer view;      /* held while open: keeps the mapping alive */
    int has_view;
    unsigned char *base; /* start of the ring (its header); NULL once closed */
    unsigned char *data; /* base + HEADER */
    uint64_t cap;
    uint64_t max_payload;
    uint64_t tail;       /* producer: bytes committed (own copy of the tail word) */
    uint64_t head;       /* consumer: bytes consumed (own copy of the head word) */
    uint64_t head_seen;  /* producer: the head it last read */
    uint64_t last_rung;  /* producer: the sleep_seq it last asked a doorbell for (0: none; seqs are odd) */
    uint64_t sleep_seq;  /* consumer: the odd sleep_seq of the current episode (0: awake) */
    PyObject *name;
    PyObject *bell_fn, *bell_arg, *closed_msg; /* send(): the doorbell call and the endpoint's closed message */
} Core;

static inline uint64_t *word(Core *c, size_t off) { return (uint64_t *)(c->base + off); }
static inline uint64_t load_acquire(Core *c, size_t off) { return __atomic_load_n(word(c, off), __ATOMIC_ACQUIRE); }
static inline uint64_t load_relaxed(Core *c, size_t off) { return __atomic_load_n(word(c, off), __ATOMIC_RELAXED); }
static inline void store_release(Core *c, size_t off, uint64_t v) { __atomic_store_n(word(c, off), v, __ATOMIC_RELEASE); }

static int check_open(Core *c) {
    if (c->base == NULL) {
        PyErr_Format(ClosedError ? ClosedError : PyExc_ValueError, "%U is closed", c->name);
        return -1;
    }
    return 0;
}

static int check_setup(void) {
    if (BadMessage == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ipc._ringc.setup() was not called (ipc/ring.py does it)");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ life cycle */

static int Core_init(Core *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"buf", "name", NULL};
    PyObject *buf, *name;
    if (check_setup() < 0) return -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OU", kwlist, &buf, &name)) return -1;
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "ring core already initialized");
        return -1;
    }
    if (PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    self->has_view = 1;
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    unsigned char *base = (unsigned char *)self->view.buf;
    if (self->view.len < HEADER || ((uintptr_t)base & 7)) {
        PyErr_Format(BadMessage, "%U: a ring needs an 8-aligned block of at least %d bytes", name, HEADER);
        return -1;
    }
    self->base = base;
    self->data = base + HEADER;
    uint64_t cap = load_relaxed(self, 8);
    if (cap > (uint64_t)(self->view.len - HEADER) || cap < 64 || (cap & 7)) {
        self->base = NULL;
        PyErr_Format(BadMessage, "%U: header says capacity %llu but the block has %zd",
                     name, (unsigned long long)cap, self->view.len - HEADER);
        return -1;
    }
    self->cap = cap;
    self->max_payload = cap / 2 - 8;
    self->tail = load_acquire(self, OFF_TAIL);
    self->head = load_acquire(self, OFF_HEAD);
    self->head_seen = self->head;
    self->last_rung = 0;
    self->sleep_seq = 0;
    return 0;
}

static void release_view(Core *self) {
    self->base = NULL;
    self->data = NULL;
    if (self->has_view) {
        self->has_view = 0;
        PyBuffer_Release(&self->view);
    }
}

static void Core_dealloc(Core *self) {
    release_view(self);
    Py_XDECREF(self->name);
    Py_XDECREF(self->bell_fn);
    Py_XDECREF(self->bell_arg);
    Py_XDECREF(self->closed_msg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_close(Core *self, PyObject *unused) {
    release_view(self);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ producer side */

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* room for `total` bytes after the producer's tail, from the head last seen (signed, as in Python) */
static inline int64_t room(Core *c) { return (int64_t)c->cap - (int64_t)(c->tail - c->head_seen); }

/* Wait up to `timeout` s for `total` bytes of room (ring.py `_wait_room`): sleeps 20 us
 * doubling to 2 ms, the GIL released; signals are handled between sleeps. */
static int wait_room(Core *c, uint64_t total, double timeout) {
    double deadline = monotonic() + timeout;
    double delay = 20e-6;
    for (;;) {
        c->head_seen = load_acquire(c, OFF_HEAD);
        if (room(c) >= (int64_t)total) return 0;
        double now = monotonic();
        if (now >= deadline) {
            char *t = PyOS_double_to_string(timeout, 'g', 6, 0, NULL);
            if (t == NULL) return -1;
            PyErr_Format(RingFullError,
                         "%U: full for %ss (%lld of %llu bytes unread, need %llu); the consumer is stuck or gone; "
                         "message not sent", c->name, t, (long long)(c->tail - c->head_seen),
                         (unsigned long long)c->cap, (unsigned long long)total);
            PyMem_Free(t);
            return -1;
        }
        double d = deadline - now < delay ? deadline - now : delay;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0) return -1;
        if (check_open(c) < 0) return -1; /* closed by another thread meanwhile */
        delay = delay * 2 < 0.002 ? delay * 2 : 0.002;
    }
}

static int byte_arg(PyObject *o, const char *what, unsigned char *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > 255) {
        PyErr_Format(PyExc_ValueError, "%s must be 0..255, got %ld", what, v);
        return -1;
    }
    *out = (unsigned char)v;
    return 0;
}

/* One write(h1, h2, payload=b"", timeout=5.0): 1 when the consumer sleeps and must get a
 * doorbell (once per sleep episode), 0 when not, -1 with an exception set. */
static int do_write(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    static const char *names[4] = {"h1", "h2", "payload", "timeout"};
    if (nargs > 4) {
        PyErr_Format(PyExc_TypeError, "write() takes at most 4 arguments (%zd given)", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) a[i] = args[i];
    if (kwnames != NULL) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nk; k++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
            int found = 0;
            for (int i = 0; i < 4; i++) {
                if (PyUnicode_CompareWithASCIIString(kw, names[i]) == 0) {
                    if (a[i] != NULL) {
                        PyErr_Format(PyExc_TypeError, "write() got multiple values for argument '%s'", names[i]);
                        return -1;
                    }
                    a[i] = args[nargs + k];
                    found = 1;
                    break;
                }
            }
            if (!found) {
                PyErr_Format(PyExc_TypeError, "write() got an unexpected keyword argument '%U'", kw);
                return -1;
            }
        }
    }
    if (a[0] == NULL || a[1] == NULL) {
        PyErr_SetString(PyExc_TypeError, "write() needs h1 and h2");
        return -1;
    }
    if (check_open(self) < 0) return -1;
    unsigned char h1, h2;
    if (byte_arg(a[0], "h1", &h1) < 0 || byte_arg(a[1], "h2", &h2) < 0) return -1;
    double timeout = 5.0;
    if (a[3] != NULL) {
        timeout = PyFloat_AsDouble(a[3]);
        if (timeout == -1.0 && PyErr_Occurred()) return -1;
    }
    const char *src = "";
    Py_ssize_t n = 0;
    Py_buffer pv;
    int has_pv = 0;
    if (a[2] != NULL) {
        if (PyBytes_CheckExact(a[2])) {
            src = PyBytes_AS_STRING(a[2]);
            n = PyBytes_GET_SIZE(a[2]);
        } else {
            if (PyObject_GetBuffer(a[2], &pv, PyBUF_C_CONTIGUOUS) < 0) return -1;
            has_pv = 1;
            src = (const char *)pv.buf;
            n = pv.len;
        }
    }
    int result = -1;
    if ((uint64_t)n > self->max_payload) {
        PyErr_Format(MessageTooLarge, "%U: message of %zd bytes is larger than half the ring (%llu bytes max)",
                     self->name, n, (unsigned long long)self->max_payload);
        goto done;
    }
    uint64_t cap = self->cap;
    uint64_t need = ((uint64_t)n + REC_HDR_SIZE + 7) & ~(uint64_t)7;
    uint64_t off = self->tail % cap;
    uint64_t pad = off + need > cap ? cap - off : 0;
    uint64_t total = pad + need;
    if (room(self) < (int64_t)total) {
        self->head_seen = load_acquire(self, OFF_HEAD);
        /* the payload's buffer stays exported through the wait: a bytearray cannot be resized */
        if (room(self) < (int64_t)total && wait_room(self, total, timeout) < 0) goto done;
    }
    unsigned char *data = self->data;
    if (pad) {
        uint32_t p = PAD;
        memcpy(data + off, &p, 4);
        data[off + 4] = 0;
        data[off + 5] = 0;
        off = 0;
    }
    if (n) memcpy(data + off + REC_HDR_SIZE, src, (size_t)n);
    uint32_t len32 = (uint32_t)n;
    memcpy(data + off, &len32, 4);
    data[off + 4] = h1;
    data[off + 5] = h2;
    self->tail += total;
    store_release(self, OFF_TAIL, self->tail); /* commit: the record becomes visible here */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);   /* store tail -> load sleep_seq (Dekker) */
    uint64_t s = load_relaxed(self, OFF_SLEEP);
    if ((s & 1) && s != self->last_rung) {
        self->last_rung = s;
        result = 1;
    } else {
        result = 0;
    }
done:
    if (has_pv) PyBuffer_Release(&pv);
    return result;
}

static PyObject *Core_write(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    int r = do_write(self, args, nargs, kwnames);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* send(h1, h2, payload=b"", timeout=5.0) -> None: an endpoint's send in one call (strong
 * order only): write; when the consumer sleeps, doorbell(bell), and when that returned true
 * (queued), rung(). Set up by set_doorbell(); once closed: ClosedError(closed_message). */
static PyObject *Core_send(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (self->bell_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "send() before set_doorbell()");
        return NULL;
    }
    if (self->base == NULL) {
        PyErr_SetObject(ClosedError, self->closed_msg);
        return NULL;
    }
    int r = do_write(self, args, nargs, kwnames);
    if (r < 0) return NULL;
    if (r) {
        PyObject *sent = PyObject_CallOneArg(self->bell_fn, self->bell_arg);
        if (sent == NULL) return NULL;
        int ok = PyObject_IsTrue(sent);
        Py_DECREF(sent);
        if (ok < 0) return NULL;
        if (ok && self->base != NULL) store_release(self, OFF_RUNG, self->last_rung);
    }
    Py_RETURN_NONE;
}

static PyObject *Core_set_doorbell(Core *self, PyObject *args) {
    PyObject *fn, *bell, *msg;
    if (!PyArg_ParseTuple(args, "OOU", &fn, &bell, &msg)) return NULL;
    Py_INCREF(fn); Py_XSETREF(self->bell_fn, fn);
    Py_INCREF(bell); Py_XSETREF(self->bell_arg, bell);
    Py_INCREF(msg); Py_XSETREF(self->closed_msg, msg);
    Py_RETURN_NONE;
}

static PyObject *Core_rung(Core *self, PyObject *unused) {
    if (check_open(self) < 0) return NULL;
    store_release(self, OFF_RUNG, self->last_rung);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ consumer side */

static PyObject *Core_pending(Core *self, PyObject *unused) {
    if (check_open(self) < 0) return NULL;
    return PyBool_FromLong(load_acquire(self, OFF_TAIL) != self->head);
}

static PyObject *new_message(unsigned char h1, unsigned char h2, const unsigned char *p, uint32_t n) {
    PyObject *payload = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    if (payload == NULL) return NULL;
    PyObject *msg = MessageType->tp_alloc(MessageType, 3); /* a tuple subclass: 3 item slots */
    if (msg == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyTuple_SET_ITEM(msg, 0, PyLong_FromLong(h1)); /* small ints: cached, never fail */
    PyTuple_SET_ITEM(msg, 1, PyLong_FromLong(h2));
    PyTuple_SET_ITEM(msg, 2, payload);
    return msg;
}

/* read(limit=None) -> list[Message]: every committed record (at most `limit`), in order */
static PyObject *Core_read(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *lim = NULL;
    if (nargs > 1 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) + nargs > 1 ||
                                          PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "limit")))) {
        PyErr_SetString(PyExc_TypeError, "read() takes one optional argument: limit");
        return NULL;
    }
    if (nargs == 1) lim = args[0];
    else if (kwnames != NULL) lim = args[0];
    if (check_open(self) < 0) return NULL;
    long long left = -1; /* -1: no limit */
    if (lim != NULL && lim != Py_None) {
        left = PyLong_AsLongLong(lim);
        if (left == -1 && PyErr_Occurred()) return NULL;
        if (left < 0) left = -1; /* as in Python: a negative limit never reaches 0 */
    }
    uint64_t tail = load_acquire(self, OFF_TAIL);
    uint64_t head = self->head;
    PyObject *out = PyList_New(0);
    if (out == NULL || tail == head) return out;
    uint64_t cap = self->cap;
    if (tail - head > cap || tail < head || (head & 7)) {
        PyErr_Format(BadMessage, "%U: corrupt indexes head=%llu tail=%llu capacity=%llu", self->name,
                     (unsigned long long)head, (unsigned long long)tail, (unsigned long long)cap);
        goto fail;
    }
    const unsigned char *data = self->data;
    while (head < tail && left != 0) {
        uint64_t off = head % cap;
        if (off + 8 > cap) { /* cannot happen: head and cap are multiples of 8 (checked above) */
            PyErr_Format(BadMessage, "%U: record at %llu runs past the end of the ring", self->name, (unsigned long long)off);
            goto fail;
        }
        uint32_t n = __atomic_load_n((const uint32_t *)(data + off), __ATOMIC_RELAXED); /* read once */
        if (n == PAD) {
            if (head + (cap - off) > tail) {
                PyErr_Format(BadMessage, "%U: padding at %llu crosses the tail", self->name, (unsigned long long)off);
                goto fail;
            }
            head += cap - off;
            continue;
        }
        uint64_t size = ((uint64_t)n + REC_HDR_SIZE + 7) & ~(uint64_t)7;
        if (off + size > cap || head + size > tail) {
            PyErr_Format(BadMessage, "%U: record of %lu bytes at %llu crosses the end of the ring or the tail",
                         self->name, (unsigned long)n, (unsigned long long)off);
            goto fail;
        }
        PyObject *msg = new_message(data[off + 4], data[off + 5], data + off + REC_HDR_SIZE, n);
        if (msg == NULL) goto fail;
        int rc = PyList_Append(out, msg);
        Py_DECREF(msg);
        if (rc < 0) goto fail;
        head += size;
        if (left > 0) left--;
    }
    self->head = head;
    store_release(self, OFF_HEAD, head); /* release the space (after the payload copies above) */
    return out;
fail:
    Py_XDECREF(out);
    return NULL;
}

/* mark_sleeping() -> bool: say "I sleep"; True when a record arrived meanwhile */
static PyObject *Core_mark_sleeping(Core *self, PyObject *unused) {
    if (check_open(self) < 0) return NULL;
    uint64_t s = load_relaxed(self, OFF_SLEEP);
    if (!(s & 1)) {
        s += 1;
        __atomic_store_n(word(self, OFF_SLEEP), s, __ATOMIC_RELAXED);
    }
    self->sleep_seq = s;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* store sleep_seq -> load tail (Dekker) */
    return PyBool_FromLong(load_acquire(self, OFF_TAIL) != self->head);
}

/* mark_awake() -> bool: say "I am awake"; True when a doorbell of this episode is in the queue */
static PyObject *Core_mark_awake(Core *self, PyObject *unused) {
    if (check_open(self) < 0) return NULL;
    uint64_t s = self->sleep_seq;
    if (!s) Py_RETURN_FALSE;
    self->sleep_seq = 0;
    __atomic_store_n(word(self, OFF_SLEEP), s + 1, __ATOMIC_RELAXED);
    return PyBool_FromLong(load_acquire(self, OFF_RUNG) == s);
}

/* ------------------------------------------------------------------ introspection (tests) */

static PyObject *Core_get_tail(Core *self, void *closure) { return PyLong_FromUnsignedLongLong(self->tail); }
static PyObject *Core_get_head(Core *self, void *closure) { return PyLong_FromUnsignedLongLong(self->head); }

static PyMethodDef Core_methods[] = {
    {"write", (PyCFunction)(void (*)(void))Core_write, METH_FASTCALL | METH_KEYWORDS,
     "write(h1, h2, payload=b'', timeout=5.0) -> bool: commit one record; True when the consumer must get a doorbell"},
    {"send", (PyCFunction)(void (*)(void))Core_send, METH_FASTCALL | METH_KEYWORDS,
     "send(h1, h2, payload=b'', timeout=5.0): write, and the doorbell when the consumer sleeps (see set_doorbell)"},
    {"set_doorbell", (PyCFunction)Core_set_doorbell, METH_VARARGS,
     "set_doorbell(fn, bell, closed_message): send() calls fn(bell) for a doorbell; True from it = queued"},
    {"rung", (PyCFunction)Core_rung, METH_NOARGS, "after the doorbell write() asked for was sent: say so to the consumer"},
    {"read", (PyCFunction)(void (*)(void))Core_read, METH_FASTCALL | METH_KEYWORDS,
     "read(limit=None) -> list[Message]: every committed record (at most limit), in order; frees their space"},
    {"pending", (PyCFunction)Core_pending, METH_NOARGS, "unread records are committed"},
    {"mark_sleeping", (PyCFunction)Core_mark_sleeping, METH_NOARGS, "say 'I sleep'; True when a record arrived meanwhile"},
    {"mark_awake", (PyCFunction)Core_mark_awake, METH_NOARGS, "say 'I am awake'; True when a doorbell of this episode is queued"},
    {"close", (PyCFunction)Core_close, METH_NOARGS, "release the shared block (idempotent)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"tail", (getter)Core_get_tail, NULL, "producer: bytes committed", NULL},
    {"head", (getter)Core_get_head, NULL, "consumer: bytes consumed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ipc._ringc.Core",
    .tp_basicsize = sizeof(Core),
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Core(buf, name): the hot path of one side of a ring over `buf` (header + data area)",
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
    .tp_init = (initproc)Core_init,
    .tp_new = PyType_GenericNew,
};

/* setup(BadMessage, ClosedError, MessageTooLarge, RingFullError, Message): called once by ipc/ring.py */
static PyObject *setup(PyObject *mod, PyObject *args) {
    PyObject *bad, *closed, *large, *full, *msg;
    if (!PyArg_ParseTuple(args, "OOOOO!", &bad, &closed, &large, &full, &PyType_Type, &msg)) return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)msg, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "setup(): Message must be a tuple subclass");
        return NULL;
    }
    Py_INCREF(bad); Py_XSETREF(BadMessage, bad);
    Py_INCREF(closed); Py_XSETREF(ClosedError, closed);
    Py_INCREF(large); Py_XSETREF(MessageTooLarge, large);
    Py_INCREF(full); Py_XSETREF(RingFullError, full);
    Py_INCREF(msg); Py_XSETREF(MessageType, (PyTypeObject *)msg);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup", setup, METH_VARARGS, "setup(BadMessage, ClosedError, MessageTooLarge, RingFullError, Message)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "ipc._ringc", "The ring's hot path in C (optional accelerator of ipc/ring.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ringc(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HEADER", HEADER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
