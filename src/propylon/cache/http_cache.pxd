# Extension-type layout of http_cache.py when it is compiled (see setup.py): one
# HttpCache per request that uses the cache, its state in a C struct.

cdef class HttpCache:
    cdef public object storage, eviction, predictor
    cdef object _phase, _reason, _lock, _key, _hit, _miss, _permit, _lock_wait, _max_file_size

    cpdef phase(self)
    cpdef bint enabled(self)
    cpdef set_cache_key(self, key)
    cpdef cache_lookup_now(self, req_headers, vary_filter=*)
