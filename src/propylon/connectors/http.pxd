# Extension-type layout of http.py when it is compiled (see setup.py).

from propylon.connectors.pool cimport ConnectionPool
from propylon.upstreams.peer cimport HttpPeer

cdef class HttpConnector:
    cdef public ConnectionPool pool
    cdef public dict _h2, _h2_pending
    cdef public object ca_file, bind_to_v4, bind_to_v6
    cdef object _deadlines
    cdef set _refused
    cdef object __weakref__

    cpdef reuse(self, HttpPeer peer)
    cpdef release(self, HttpPeer peer, conn)
