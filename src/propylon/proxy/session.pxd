# Extension-type layout of session.py when it is compiled (see setup.py).

cdef class Session:
    cdef public object downstream, req_header, _retry_buf, compression
    cdef public Py_ssize_t _retry_len
    cdef public bint retry_buffer_truncated, upstream_reused
