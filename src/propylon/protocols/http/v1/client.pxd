# Extension-type layout of client.py when it is compiled (see setup.py).

cdef class H1ClientConnection:
    cdef public object _loop, transport, digest, _parser, _waiter, _error
    cdef public list _heads, _chunks
    cdef public object _drain_waiter, trailers, on_idle_event, read_timeout, write_timeout
    cdef public object _tunnel, _tunnel_eof, _tunnel_resume, _first_version
    cdef public list _hdrs, _hop
    cdef public bint _framed
    cdef public Py_ssize_t _buffered, requests
    cdef public bint _in_body, _done, _eof, _closed, _paused, _write_paused, _keepalive, _req_chunked
    cdef public bint _is_head, _close_delimited, _got_bytes, _upgraded, idle
    cdef object __weakref__

    cpdef _wake(self)
    cpdef fail(self, err)
    cpdef client_gone(self)
    cpdef _fail(self, err)
    cpdef send_request_header(self, req, bint has_body, bint body_length_known)
    cpdef write_body(self, bytes data)
    cpdef finish_body(self, trailers=*)
    cpdef take_body(self)
    cpdef body_ready(self)
    cpdef at_end(self)
    cpdef reusable(self)
    cpdef mark_no_reuse(self)
    cpdef close(self)
    cpdef abort(self)
