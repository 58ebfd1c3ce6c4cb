# Extension-type layout of pool.py when it is compiled (see setup.py).

cdef class ConnectionPool:
    cdef public Py_ssize_t size
    cdef public dict _by_key, _lru, _extras, _groups
    cdef public object _on_idle_event

    cpdef get(self, key)
    cdef _drop_extras(self, conn)
