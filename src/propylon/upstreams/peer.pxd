# Extension-type layout of peer.py when it is compiled (see setup.py).

cdef class HttpPeer:
    cdef public object address, sni, _options, client_cert_key, group_key, idle_group, _key
    cdef public bint tls

    cpdef settings(self)
    cpdef reuse_key(self)
    cdef object __weakref__
