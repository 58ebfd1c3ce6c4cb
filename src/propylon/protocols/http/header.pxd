# Extension-type layout of header.py when it is compiled (see setup.py).

cimport cython

cdef bint _COMPILED

@cython.locals(c=cython.uchar)
cdef bytes _lower(bytes name)

cdef class HeaderMap:
    cdef public list fields
    cpdef encode_into(self, list out)
    @cython.locals(key=bytes, item=tuple)
    cpdef get_bytes(self, name)
    cpdef insert(self, name, value)
    cpdef append(self, name, value)
    cpdef remove(self, name)

cdef class _Message:
    cdef public HeaderMap headers
    cdef public object version

cdef class RequestHeader(_Message):
    cdef readonly object method_bytes
    cdef public object raw_path
    cdef object _uri_cache

    cpdef bytes to_h1_bytes(self)

cdef class ResponseHeader(_Message):
    cdef public object status
    cdef public object reason

    cpdef bytes status_line(self)
    cpdef bytes to_h1_bytes(self)
