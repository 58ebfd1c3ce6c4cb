# Extension-type layout of server.py when it is compiled (see setup.py).
# Fields are readonly where the session (server_session.py) or the app reads them,
# plain cdef where only this class does.

from propylon.protocols.flow cimport FlowControl
from propylon.protocols.http.v1.server_session cimport H1ServerSession

cdef class H1ServerConnection:
    cdef readonly object options, loop, transport, shutdown, requests_left
    cdef readonly FlowControl flow
    cdef readonly bint closed
    cdef readonly Py_ssize_t requests_served
    cdef object _handler, _tracker, _parser, _wheel, _digest
    cdef list _ready, _raw
    cdef object _url, _first_version
    cdef H1ServerSession _last, _parsing, _active
    cdef object _tunnel, _tunnel_eof, _h2_factory, _task, _waiter
    cdef list _hdrs
    cdef Py_ssize_t _max_header_bytes, _max_request_line, _raw_len, _upgrade_body_left, _wheel_key
    cdef double _idle_since, _accepted
    cdef bint _switched, _ended_line
    cdef object __weakref__

    cpdef write(self, bytes data)
    cpdef pause_reading(self)
    cpdef resume_reading(self)
    cpdef bint send(self, bytes data)
    cpdef bint input_pending(self)
    cdef _became_idle(self)
    cdef _leave_wheel(self)
