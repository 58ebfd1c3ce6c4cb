# cython: language_level=3, boundscheck=False, wraparound=False
"""``JsonBatch``: JSON access-log lines written straight into one buffer, for the
compiled build (the pure build uses ``JsonLines``, and so does this module for any
value it does not write itself).

``JsonLines`` makes a ``str`` per line from ``str`` pieces (a small string per
duration, per number, per quoted value), which the writer thread then joins and
encodes; it is costly enough that the pure build leaves it to that thread, and
keeps each finished request's record until then. Here a line costs a few hundred
nanoseconds, so it is made on the event loop as the request ends (its record, its
request head and fields are then freed at once, not kept for the thread), and the
thread is handed the bytes of the batch. Each piece is written as bytes into one
growing C buffer: numbers and durations as
digits, a header value or path that needs no escaping (printable ASCII without
``"`` or ``\\``, the usual case) copied between quotes, and the texts that repeat
from line to line (the second of the time, the client host, the upstream, the
service) kept encoded. Whatever needs escaping or is not ASCII is made by
``JsonLines``'s own helpers and encoded, so the bytes are always exactly the UTF-8
of ``JsonLines.line`` (the tests compare the two on random records).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport isfinite
from libc.string cimport memcpy

from propylon.metrics.record cimport (JsonLines, RequestRecord, UpstreamStats, _agent_and_referer, _bytes_text,
                                      _client_text, _json_text, _request_id_text, _second_text,
                                      _seconds)
from propylon.protocols.http.header cimport HeaderMap, RequestHeader

from .access_log import FIELDS

__all__ = ["JsonBatch"]

cdef bytes _NULL = b"null"
# the buffer's size between batches (64 KiB: the writer's default batch, 256 lines)
cdef Py_ssize_t _KEEP = 64 * 1024
# (masks of JsonLines: bit i is FIELDS[i])
cdef enum:
    F_TIME = 1
    F_CLIENT = 2
    F_METHOD = 4
    F_PATH = 8
    F_STATUS = 16
    F_SENT = 32
    F_RECEIVED = 64
    F_DURATION = 128
    F_UP_DURATION = 256
    F_UPSTREAM = 512
    F_RETRIES = 1024
    F_ERROR = 2048
    F_REQUEST_ID = 4096
    F_USER_AGENT = 8192
    F_REFERER = 16384
    F_SERVICE = 32768


cdef struct Buf:
    char *data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _reserve(Buf *b, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap
    cdef char *grown
    if b.size + more <= b.cap:
        return 0
    cap = b.cap * 2
    while cap < b.size + more:
        cap *= 2
    grown = <char *>PyMem_Realloc(b.data, cap)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.cap = cap
    return 0


cdef inline int _put(Buf *b, const char *p, Py_ssize_t n) except -1:
    _reserve(b, n)
    memcpy(b.data + b.size, p, n)
    b.size += n
    return 0


cdef inline int _put_bytes(Buf *b, bytes value) except -1:
    return _put(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


cdef int _put_text(Buf *b, str text) except -1:
    # what the str line holds at this place, as its UTF-8 (as the pure writer encodes it)
    return _put_bytes(b, text.encode("utf-8", "replace"))


cdef int _put_int(Buf *b, long long n) except -1:
    cdef char digits[24]
    cdef int i = 24
    cdef unsigned long long u
    cdef bint negative = n < 0
    u = <unsigned long long>(-n) if negative else <unsigned long long>n
    while True:
        i -= 1
        digits[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if negative:
        i -= 1
        digits[i] = b'-'
    return _put(b, digits + i, 24 - i)


cdef int _put_seconds(Buf *b, double value) except -1:
    # ``_seconds``: seconds and six digits of microseconds, rounded half up
    cdef long long us
    cdef char frac[7]
    cdef int i
    if not isfinite(value) or not 0.0 <= value < 1e12:
        return _put_text(b, _seconds(value))
    us = <long long>(value * 1000000.0 + 0.5)
    _put_int(b, us // 1000000)
    us %= 1000000
    frac[0] = b'.'
    for i in range(6, 0, -1):
        frac[i] = <char>(48 + us % 10)
        us //= 10
    return _put(b, frac, 7)


cdef inline bint _plain(const char *p, Py_ssize_t n):
    # printable ASCII with no quote or backslash: a JSON string of it is the bytes quoted
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = <unsigned char>p[i]
        if c < 32 or c > 126 or c == 34 or c == 92:
            return False
    return True


cdef int _put_quoted(Buf *b, const char *p, Py_ssize_t n) except -1:
    _reserve(b, n + 2)
    b.data[b.size] = b'"'
    memcpy(b.data + b.size + 1, p, n)
    b.data[b.size + n + 1] = b'"'
    b.size += n + 2
    return 0


cdef int _put_header_value(Buf *b, value) except -1:
    # ``_bytes_text``: a field's value (bytes) or null
    if value is None:
        return _put_bytes(b, _NULL)
    cdef bytes raw = value
    cdef const char *p = PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    if _plain(p, n):
        return _put_quoted(b, p, n)
    return _put_text(b, _bytes_text(raw))


cdef class JsonBatch:
    """The lines of ``JsonLines`` (same fields, same text), made one at a time into
    a buffer (``add``) and handed over as the bytes of a batch (``take``)."""

    cdef Buf buf
    cdef long long mask
    cdef tuple keys
    cdef long long sec
    cdef bytes sec_bytes
    cdef object host, svc
    cdef bytes host_bytes, svc_bytes
    cdef UpstreamStats upstream
    cdef bytes upstream_bytes

    def __cinit__(self):
        self.buf.cap = _KEEP
        self.buf.size = 0
        self.buf.data = <char *>PyMem_Malloc(self.buf.cap)
        if self.buf.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.buf.data)

    def __init__(self, JsonLines lines):
        self.mask = lines.mask
        self.keys = tuple(k.encode() for k in lines.keys)
        assert len(self.keys) == len(FIELDS)
        self.sec = -1
        self.sec_bytes = b""
        self.host = self.svc = None
        self.host_bytes = self.svc_bytes = b""
        self.upstream = None
        self.upstream_bytes = b""

    def add(self, RequestRecord r, double offset) -> None:
        """Add the line of record ``r`` (``offset`` turns its clock into wall-clock
        time)."""
        self._line(&self.buf, r, offset)

    def take(self) -> bytes:
        """The lines added since the last call, each ending in a newline."""
        cdef char *smaller
        data = PyBytes_FromStringAndSize(self.buf.data, self.buf.size)
        self.buf.size = 0
        if self.buf.cap > _KEEP:  # a batch of long lines: give the memory back
            smaller = <char *>PyMem_Realloc(self.buf.data, _KEEP)
            if smaller != NULL:
                self.buf.data = smaller
                self.buf.cap = _KEEP
        return data

    cdef inline int _key(self, Buf *b, int index) except -1:
        return _put_bytes(b, <bytes>self.keys[index])

    cdef int _line(self, Buf *b, RequestRecord r, double offset) except -1:
        cdef long long mask = self.mask
        cdef double now
        cdef long long sec, millis
        cdef char tail[5]
        cdef RequestHeader req
        cdef bytes raw
        cdef const char *p
        cdef Py_ssize_t n, q
        cdef UpstreamStats st
        req = r.req
        if mask & F_TIME:
            self._key(b, 0)
            now = r.end + offset
            sec = <long long>now
            if sec != self.sec:
                self.sec = sec
                self.sec_bytes = _second_text(sec).encode()
            _put_bytes(b, self.sec_bytes)
            millis = <long long>((now - sec) * 1000.0)
            millis = 0 if millis < 0 else 999 if millis > 999 else millis
            tail[0] = b'.'
            tail[1] = <char>(48 + millis // 100)
            tail[2] = <char>(48 + millis // 10 % 10)
            tail[3] = <char>(48 + millis % 10)
            tail[4] = b'Z'
            _put(b, tail, 5)
            _put(b, b'"', 1)
        if mask & F_CLIENT:
            self._key(b, 1)
            addr = r.client_addr
            if type(addr) is tuple:
                host = (<tuple>addr)[0]
                if host != self.host:
                    self.host = host
                    self.host_bytes = _client_text(addr).encode("utf-8", "replace")
                _put_bytes(b, self.host_bytes)
            else:
                _put_text(b, _client_text(addr))
        if mask & F_METHOD:
            self._key(b, 2)
            raw = req.method_bytes
            if _plain(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)):
                _put_quoted(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
            else:
                _put_text(b, _json_text(req.method))
        if mask & F_PATH:
            self._key(b, 3)
            raw = req.raw_path
            p = PyBytes_AS_STRING(raw)
            n = PyBytes_GET_SIZE(raw)
            for q in range(n):  # the path ends at the query
                if p[q] == b'?':
                    n = q
                    break
            if _plain(p, n):
                _put_quoted(b, p, n)
            else:
                _put_text(b, _json_text(req.path))
        if mask & F_STATUS:
            self._key(b, 4)
            _put_int(b, r.status)
        if mask & F_SENT:
            self._key(b, 5)
            _put_int(b, r.sent)
        if mask & F_RECEIVED:
            self._key(b, 6)
            _put_int(b, r.received)
        if mask & F_DURATION:
            self._key(b, 7)
            _put_seconds(b, r.end - r.start)
        if mask & F_UP_DURATION:
            self._key(b, 8)
            if r.attempts:
                _put_seconds(b, r.upstream_time)
            else:
                _put_bytes(b, _NULL)
        if mask & F_UPSTREAM:
            self._key(b, 9)
            st = r.stats
            if st is None:
                _put_bytes(b, _NULL)
            else:
                if st is not self.upstream:
                    self.upstream = st
                    self.upstream_bytes = st.json_label.encode("utf-8", "replace")
                _put_bytes(b, self.upstream_bytes)
        if mask & F_RETRIES:
            self._key(b, 10)
            _put_int(b, r.attempts - 1 if r.attempts else 0)
        if mask & F_ERROR:
            self._key(b, 11)
            if r.error is None:
                _put_bytes(b, _NULL)
            else:
                _put_text(b, _json_text(str(r.error)))
        if mask & F_REQUEST_ID:
            self._key(b, 12)
            rid = r.request_id
            if type(rid) is bytes:
                _put_header_value(b, rid)
            else:
                _put_text(b, _request_id_text(rid))
        if mask & (F_USER_AGENT | F_REFERER):
            ua, ref = _agent_and_referer(req.headers.fields)
            if mask & F_USER_AGENT:
                self._key(b, 13)
                _put_header_value(b, ua)
            if mask & F_REFERER:
                self._key(b, 14)
                _put_header_value(b, ref)
        if mask & F_SERVICE:
            self._key(b, 15)
            svc = r.service
            if svc is not self.svc:
                self.svc = svc
                self.svc_bytes = _json_text(svc).encode("utf-8", "replace")
            _put_bytes(b, self.svc_bytes)
        return _put(b, b"}\n", 2)
