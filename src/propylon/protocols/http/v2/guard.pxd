# Extension-type layout of guard.py when it is compiled (see setup.py): the frame
# headers of every read are counted in C.

cimport cython

cdef Py_ssize_t _PREFACE_LEN, _HEAD
cdef int _DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PING, _WINDOW_UPDATE, _CONTINUATION
cdef int _END_STREAM, _END_HEADERS, _PADDED, _ACK

cdef class FrameGuard:
    cdef public object opts, tripped
    cdef public Py_ssize_t header_block
    cdef public long long pings, settings, window_updates, priorities, rst_streams, empties, streams
    cdef double _window_start, _flood_window
    cdef long long _data_base
    cdef Py_ssize_t _preface, _skip, _block, _per_turn
    cdef bytes _carry

    @cython.locals(buf=bytes, n=Py_ssize_t, pos=Py_ssize_t, k=Py_ssize_t, carried=Py_ssize_t,
                   frames=Py_ssize_t, length=Py_ssize_t, flags=int, pad=int, end=Py_ssize_t)
    cpdef Py_ssize_t scan(self, data, double now, long long data_frames_sent) except -1
    @cython.locals(sent=cython.longlong)
    cdef bint _count(self, int ftype, int flags, Py_ssize_t length, int pad, long long data_frames_sent) except -1
