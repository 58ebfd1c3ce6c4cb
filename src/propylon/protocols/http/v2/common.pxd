# Extension-type layout of common.py when it is compiled (see setup.py). Every field
# is public: the client side (client.py) subclasses both classes in Python.

cimport cython
from propylon.protocols.flow cimport FlowControl
from propylon.protocols.http.header cimport HeaderMap

cdef class H2ConnBase:
    cdef public object loop, transport, digest, codec, _flush_handle
    cdef public FlowControl flow
    cdef public bint _closed, _in_receive
    cdef public Py_ssize_t _unflushed, _data_frames_sent
    cdef public dict send_blocked
    cdef public set _drain_waiting
    cdef object __weakref__


cdef class H2StreamBase:
    cdef public H2ConnBase conn
    cdef public object stream_id, _end_trailers, _drain_waiter, _waiter, _out, _chunks
    cdef public Py_ssize_t _out_len, _unacked
    cdef public bint _end_asked, _end_sent, _recv_done, _reset
    cdef object __weakref__


@cython.locals(size=Py_ssize_t, items=list, cookies=list, cookie_at=Py_ssize_t, regular=bint,
               name=bytes, value=bytes)
cpdef tuple split_fields(list fields, dict pseudo=*)

@cython.locals(items=list, named=set, out=list, lower=bytes, value=bytes)
cpdef list h2_fields(HeaderMap headers, bint keep_te_trailers=*, frozenset drop=*)
