# Extension-type layout of header.py when it is compiled (see setup.py).

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

cdef bint _COMPILED

cdef inline char *_put(char *p, bytes piece) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(piece)
    memcpy(p, PyBytes_AS_STRING(piece), n)
    return p + n

cdef inline object _head_bytes(bytes a, bytes b, bytes c, bytes d, list fields):
    # A message head as one bytes object: a + b + c + d, each field as "name: value\r\n",
    # and the blank line; the size is counted first, so the pieces are copied once
    # (a join of a list of pieces costs several times more, and a buffer array per
    # call once a head has more than a few fields). None when a field holds
    # something other than bytes (the caller joins then).
    cdef Py_ssize_t size = PyBytes_GET_SIZE(a) + PyBytes_GET_SIZE(b) + PyBytes_GET_SIZE(c) + PyBytes_GET_SIZE(d) + 2
    cdef tuple item
    cdef object wire, value
    cdef bytes out
    cdef char *p
    for item in fields:
        wire = item[1]
        value = item[2]
        if type(wire) is not bytes or type(value) is not bytes:
            return None
        size += PyBytes_GET_SIZE(wire) + PyBytes_GET_SIZE(value) + 4
    out = PyBytes_FromStringAndSize(NULL, size)
    p = _put(_put(_put(_put(PyBytes_AS_STRING(out), a), b), c), d)
    for item in fields:
        p = _put(p, <bytes>item[1])
        p[0] = 58  # ": "
        p[1] = 32
        p = _put(p + 2, <bytes>item[2])
        p[0] = 13  # CRLF
        p[1] = 10
        p += 2
    p[0] = 13
    p[1] = 10
    return out

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
