# Extension-type layout of engine.py when it is compiled (see setup.py).
# The resolved hooks live in one tuple (order of proxy_trait.HOOKS): a new hook
# needs no field here.

cimport cython

from propylon.connectors.http cimport HttpConnector
from propylon.proxy.session cimport Session
from propylon.upstreams.peer cimport HttpPeer

cdef class _BodySender:
    cdef public object task, error
    cdef public bint done

cdef class HttpProxyEngine:
    cdef readonly HttpConnector connector
    cdef readonly object proxy, upstream_peer, new_ctx, compression, observer, repeats
    cdef readonly tuple hooks
    cdef readonly Py_ssize_t max_retries
    cdef readonly bint before_upstream, body_filtered, caching, tracing

    @cython.locals(other=HttpProxyEngine)
    cpdef HttpProxyEngine traced(self, report)
    cdef _observed(self, Session session, e, ctx)
