# Extension-type layout of server.py when it is compiled (see setup.py).

from propylon.protocols.http.v1.server_session cimport H1ServerSession

cdef class H1ServerConnection:
    cdef public object _handler, _shutdown, _opts, _tracker, _loop, transport, digest, _parser
    cdef public list _ready
    cdef public object _url, _waiter, _timer, _drain_waiter, _first_version
    cdef public H1ServerSession _last, _parsing, _active
    cdef public object _tunnel, _tunnel_eof, _tunnel_resume, _requests_left, _h2_factory, _task
    cdef public list _hdrs
    cdef public Py_ssize_t _max_header_bytes, _max_request_line
    cdef public double _idle_since
    cdef public bint _paused, _write_paused, _closed, _switched
    cdef public Py_ssize_t requests_served
    cdef object __weakref__

    cpdef _write(self, bytes data)
    cpdef _pause_reading(self)
    cpdef _resume_reading(self)
