# Extension-type layout of header.py when it is compiled (see setup.py).

cdef class HeaderMap:
    cdef public list _items
    cpdef encode_into(self, list out)

cdef class _Message:
    cdef public HeaderMap headers
    cdef public object version

cdef class RequestHeader(_Message):
    cdef public object _method, raw_path
    cdef public object _uri_cache

cdef class ResponseHeader(_Message):
    cdef public object status
    cdef public object reason
