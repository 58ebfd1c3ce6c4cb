# Extension-type layout of server.py when it is compiled (see setup.py). The stream's
# public fields are the DownstreamSession contract (protocols/http/interfaces.py);
# every field stays public for the tests and tools that look inside.

cimport cython
from propylon.protocols.http.v2.common cimport H2ConnBase, H2StreamBase
from propylon.protocols.http.v2.guard cimport FrameGuard


cdef class H2ServerStream(H2StreamBase):
    cdef public object req, body_error, trailers, written_head, on_lost, scheme
    cdef public bint keepalive, has_body, body_received, expect_continue, finished, upgrade, is_head
    cdef public object write_timeout, min_send_rate
    cdef public bint close_on_early_response, _continue_sent, _no_body
    cdef public Py_ssize_t requests_before
    cdef public object body_bytes_read, body_bytes_sent, _task


cdef class H2ServerConnection(H2ConnBase):
    cdef public object _handler, _shutdown, _opts, _tracker, _guard
    cdef public FrameGuard _frames
    cdef public dict _streams
    cdef public object _backlog, _backlog_handle, _timer
    cdef public bint _goaway_sent, _calmed
    cdef public object _last_stream
    cdef public double _idle_since
    cdef public Py_ssize_t requests_served

    @cython.locals(frames=FrameGuard, cut=Py_ssize_t)
    cpdef _receive(self, data)
