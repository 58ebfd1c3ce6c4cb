# Extension-type layout of engine.py when it is compiled (see setup.py).

from propylon.connectors.http cimport HttpConnector

cdef class _BodySender:
    cdef public object task, error
    cdef public bint done

cdef class HttpProxyEngine:
    cdef public HttpConnector connector
    cdef public object proxy, upstream_peer, new_ctx, compression
    cdef public object h_early, h_request, h_proxy_upstream, h_fail_connect, h_connected
    cdef public object h_up_request, h_req_body, h_up_response, h_response, h_up_body, h_body
    cdef public object h_up_trailer, h_error_while, h_fail_proxy, h_suppress, h_logging
    cdef public Py_ssize_t max_retries
    cdef public bint before_upstream
