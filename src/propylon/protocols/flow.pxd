# Extension-type layout of flow.py when it is compiled (see setup.py): the owners'
# calls (received, consumed, write_paused...) stay at C level.

cdef class FlowControl:
    cdef readonly object transport
    cdef public Py_ssize_t high, low
    cdef readonly bint write_paused, read_paused, lost
    cdef public object on_writable
    cdef list _waiters

    cpdef pause_writing(self)
    cpdef resume_writing(self)
    cpdef connection_lost(self)
    cpdef interrupt(self)
    cpdef _wake_all(self, int how)
    cpdef pause_reading(self)
    cpdef resume_reading(self)
    cpdef received(self, Py_ssize_t buffered)
    cpdef consumed(self, Py_ssize_t buffered)

cpdef wake(fut, value=*)
