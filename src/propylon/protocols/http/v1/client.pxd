# Extension-type layout of client.py when it is compiled (see setup.py).
# Public fields are what the engine (UpstreamExchange) and the pool set; readonly
# ones are read by the connector; the rest is this class's own.

cimport cython

from propylon.protocols.flow cimport FlowControl
from propylon.protocols.http.header cimport RequestHeader

cdef Py_ssize_t _FAST_HEAD
cdef list _NONE

@cython.locals(chunked=bint, field=tuple, lower=bytes, named=frozenset, more=frozenset)
cdef bint _drop_named_by_connection(list hdrs, list hop) except -1

cdef class H1ClientConnection:
    cdef readonly object transport, digest
    cdef readonly FlowControl flow
    cdef readonly Py_ssize_t requests
    cdef public object trailers, on_idle_event, read_timeout, write_timeout
    cdef public bint idle
    cdef object _loop, _parser, _waiter, _error
    cdef list _heads, _chunks
    cdef object _tunnel, _tunnel_eof, _first_version
    cdef object _read_timer
    cdef double _read_deadline, _read_timer_at
    cdef list _hdrs, _hop
    cdef bint _framed
    cdef Py_ssize_t _buffered
    cdef bint _in_body, _done, _eof, _closed, _keepalive, _req_chunked
    cdef bint _is_head, _close_delimited, _got_bytes, _upgraded, _parser_used
    cdef Py_ssize_t _body_left
    cdef object __weakref__

    @cython.locals(start=Py_ssize_t, length=Py_ssize_t, hdrs=list, fields=list, field=tuple)
    cdef bint _one_read(self, bytes data) except -1
    @cython.locals(left=Py_ssize_t)
    cdef _rest_of_body(self, bytes data)
    cdef _body(self, bytes body)
    cdef _head(self, status, tuple version, list hdrs, list hop, bint framed, bint keepalive)
    cpdef _wake(self)
    cpdef fail(self, err)
    cpdef client_gone(self)
    cpdef _fail(self, err)
    cpdef send_request_header(self, RequestHeader req, bint has_body, bint body_length_known)
    cpdef write_body(self, bytes data)
    cpdef finish_body(self, trailers=*)
    cpdef take_body(self)
    cpdef body_ready(self)
    cpdef at_end(self)
    cpdef reusable(self)
    cpdef mark_no_reuse(self)
    cpdef close(self)
    cpdef abort(self)
    cpdef bint send(self, bytes data)
    cpdef pause_reading(self)
    cpdef resume_reading(self)
