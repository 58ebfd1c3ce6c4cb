# Extension-type layout of server_session.py when it is compiled (see setup.py).

cdef class H1ServerSession:
    cdef public object conn, req, _waiter, body_error, trailers, response_written, _pending_head, on_lost
    cdef public list _chunks
    cdef public bint keepalive, has_body, body_done, expect_continue, _continue_sent, finished, upgrade
    cdef public bint is_head, hop_by_hop
    cdef public Py_ssize_t _buffered, _resp_mode, requests_before
    cdef public object _resp_left, body_bytes_read, body_bytes_sent
    cdef object __weakref__

    cpdef _feed(self, bytes data)
    cpdef _end(self)
    cpdef _fail(self, err)
    cpdef body_complete(self)
    cpdef write_interim(self, resp)
    cpdef write_header(self, resp, bint end_of_stream=*, bint hold=*)
    cpdef write_body(self, bytes data)
    cpdef finish(self, trailers=*)
    cpdef _finish_response(self)
