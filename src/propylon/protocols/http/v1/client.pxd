# Extension-type layout of client.py when it is compiled (see setup.py).

cdef class H1ClientConnection:
    cdef public object _loop, transport, digest, _parser, _heads, _chunks, _waiter, _error
    cdef public object _drain_waiter, trailers, on_idle_event, read_timeout, write_timeout
    cdef public object _tunnel, _tunnel_eof, _tunnel_resume
    cdef public list _hdrs
    cdef public Py_ssize_t _buffered, requests
    cdef public bint _in_body, _done, _eof, _closed, _paused, _write_paused, _keepalive, _req_chunked
    cdef public bint _is_head, _close_delimited, _got_bytes, _upgraded, idle
    cdef object __weakref__
