# Extension-type layout of session.py when it is compiled (see setup.py).

from propylon.proxy.observation cimport Observation

cdef class Session:
    cdef readonly object downstream
    cdef public object req_header, compression, phase, peer
    cdef public Observation observation
    cdef readonly bint retry_buffer_truncated
    cdef public bint upstream_reused
    cdef public object http_cache
    cdef list _retry_buf
    cdef Py_ssize_t _retry_len

    cpdef remember_body(self, bytes data)
    cpdef retry_body(self)
