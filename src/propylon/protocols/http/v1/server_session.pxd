# Extension-type layout of server_session.py when it is compiled (see setup.py).
# Public fields are the DownstreamSession contract (protocols/http/interfaces.py);
# readonly ones are read by the connection; the rest is this class's own.

from propylon.protocols.http.header cimport RequestHeader, ResponseHeader
from propylon.protocols.http.v1.server cimport H1ServerConnection

cdef class H1ServerSession:
    cdef public RequestHeader req
    cdef public object body_error, trailers, written_head, on_lost
    cdef public bint keepalive, has_body, body_received, expect_continue, finished, upgrade, is_head
    cdef public object write_timeout, min_send_rate
    cdef public bint close_on_early_response
    cdef readonly H1ServerConnection conn
    cdef readonly Py_ssize_t buffered, requests_before
    cdef readonly object body_bytes_read, body_bytes_sent
    cdef object _waiter, _pending_head
    cdef list _chunks
    cdef bint _continue_sent
    cdef Py_ssize_t _resp_mode
    cdef object _resp_left
    cdef object __weakref__

    cpdef feed_body(self, bytes data)
    cpdef end_body(self)
    cpdef fail_body(self, err)
    cpdef is_body_done(self)
    cpdef write_interim(self, ResponseHeader resp)
    cpdef write_header(self, ResponseHeader resp, bint end_of_stream=*, bint hold=*)
    cpdef bytes _connection_field(self, ResponseHeader resp)
    cpdef write_head_and_body(self, ResponseHeader resp, bytes body, bytes h1_head=*)
    cpdef write_body(self, bytes data)
    cpdef finish(self, trailers=*)
    cpdef _finish_response(self)
