# Extension-type layout of access_log.py when it is compiled (see setup.py): a
# request's record hands its row to ``write`` with a C call.

cdef class AccessLogWriter:
    cdef public object config, formatter, format_rows, encoder
    cdef public Py_ssize_t batch, pending
    cdef public list rows
    cdef Py_ssize_t _max_pending
    cdef double _offset
    cdef object _timer, _queue, _thread
    cdef long _pid
    # (the loop adds to the first, the writer thread to the second; both under the GIL)
    cdef long long _queued_rows, _written_rows, _dropped

    cpdef write(self, row)
    cpdef flush(self)
