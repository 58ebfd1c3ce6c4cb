# Extension-type layout of header.py when it is compiled (see setup.py).

cdef class HeaderMap:
    cdef public list fields
    cpdef encode_into(self, list out)

cdef class _Message:
    cdef public HeaderMap headers
    cdef public object version

cdef class RequestHeader(_Message):
    cdef readonly object method_bytes
    cdef public object raw_path
    cdef object _uri_cache

cdef class ResponseHeader(_Message):
    cdef public object status
    cdef public object reason
