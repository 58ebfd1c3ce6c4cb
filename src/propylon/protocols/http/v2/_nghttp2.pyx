# cython: language_level=3
"""``NativeCodec``: the HTTP/2 codec on libnghttp2 (the interface is described in
``codec``; this module is built only when libnghttp2's headers are present).

nghttp2 calls back into this module as it parses; the callbacks are C functions
that append to one list of event tuples, and a header block is collected into one
Python list there, so Python sees one ``receive()`` call per read rather than a
call per frame or per field. A DATA frame's payload is handed over when the frame
is complete, as ``h2`` does, so its END_STREAM flag always comes with it.

Sending: nghttp2 pulls DATA from a data provider. Each stream that sends keeps an
``_Out`` here (bytes waiting, the end asked for, trailers); the provider copies from
it as nghttp2 frames DATA within the peer's windows, and defers while it is empty.
``send_window`` reports the windows minus what already waits, so the connection
never hands over more than the peer may receive.

Received DATA is given back to the peer's window only when the application has
consumed it (``acknowledge``): automatic WINDOW_UPDATE is off.

On the server side, a read that carries many cancelled or refused streams is handed
over in parts: after ``RESETS_PER_PART`` of them, parsing pauses at the next header
field and the rest of the read waits in ``unconsumed``. The connection's own
rapid-reset guard thus sees them as they come, before nghttp2's built-in reset rate
limit (where the library has one) would end the connection on its own terms.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.string cimport memcpy

from .errors import CodecError


cdef extern from "nghttp2/nghttp2.h":
    ctypedef struct nghttp2_session:
        pass
    ctypedef struct nghttp2_session_callbacks:
        pass
    ctypedef struct nghttp2_option:
        pass

    ctypedef struct nghttp2_frame_hd:
        size_t length
        int32_t stream_id
        uint8_t type
        uint8_t flags

    ctypedef enum nghttp2_headers_category:
        NGHTTP2_HCAT_REQUEST
        NGHTTP2_HCAT_RESPONSE
        NGHTTP2_HCAT_PUSH_RESPONSE
        NGHTTP2_HCAT_HEADERS

    ctypedef struct nghttp2_headers:
        nghttp2_frame_hd hd
        nghttp2_headers_category cat

    ctypedef struct nghttp2_rst_stream:
        nghttp2_frame_hd hd
        uint32_t error_code

    ctypedef struct nghttp2_settings_entry:
        int32_t settings_id
        uint32_t value

    ctypedef struct nghttp2_settings:
        nghttp2_frame_hd hd
        size_t niv
        nghttp2_settings_entry *iv

    ctypedef struct nghttp2_ping:
        nghttp2_frame_hd hd
        uint8_t opaque_data[8]

    ctypedef struct nghttp2_goaway:
        nghttp2_frame_hd hd
        int32_t last_stream_id
        uint32_t error_code

    ctypedef union nghttp2_frame:
        nghttp2_frame_hd hd
        nghttp2_headers headers
        nghttp2_rst_stream rst_stream
        nghttp2_settings settings
        nghttp2_ping ping
        nghttp2_goaway goaway

    ctypedef struct nghttp2_nv:
        uint8_t *name
        uint8_t *value
        size_t namelen
        size_t valuelen
        uint8_t flags

    ctypedef union nghttp2_data_source:
        int fd
        void *ptr

    ctypedef ssize_t (*nghttp2_data_source_read_callback)(
        nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
        uint32_t *data_flags, nghttp2_data_source *source, void *user_data)

    ctypedef struct nghttp2_data_provider:
        nghttp2_data_source source
        nghttp2_data_source_read_callback read_callback

    ctypedef struct nghttp2_priority_spec:
        pass

    ctypedef int (*nghttp2_on_frame_recv_callback)(nghttp2_session *, const nghttp2_frame *, void *)
    ctypedef int (*nghttp2_on_begin_frame_callback)(nghttp2_session *, const nghttp2_frame_hd *, void *)
    ctypedef int (*nghttp2_on_begin_headers_callback)(nghttp2_session *, const nghttp2_frame *, void *)
    ctypedef int (*nghttp2_on_header_callback)(nghttp2_session *, const nghttp2_frame *, const uint8_t *,
                                               size_t, const uint8_t *, size_t, uint8_t, void *)
    ctypedef int (*nghttp2_on_data_chunk_recv_callback)(nghttp2_session *, uint8_t, int32_t, const uint8_t *,
                                                        size_t, void *)
    ctypedef int (*nghttp2_on_invalid_frame_recv_callback)(nghttp2_session *, const nghttp2_frame *, int,
                                                           void *)

    enum:
        NGHTTP2_DATA
        NGHTTP2_HEADERS
        NGHTTP2_RST_STREAM
        NGHTTP2_SETTINGS
        NGHTTP2_PING
        NGHTTP2_GOAWAY
        NGHTTP2_WINDOW_UPDATE
        NGHTTP2_FLAG_NONE
        NGHTTP2_FLAG_END_STREAM
        NGHTTP2_FLAG_ACK
        NGHTTP2_NV_FLAG_NONE
        NGHTTP2_DATA_FLAG_EOF
        NGHTTP2_DATA_FLAG_NO_END_STREAM
        NGHTTP2_ERR_DEFERRED
        NGHTTP2_ERR_PAUSE
        NGHTTP2_ERR_REFUSED_STREAM
        NGHTTP2_ERR_CALLBACK_FAILURE
        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        NGHTTP2_SETTINGS_ENABLE_PUSH

    int nghttp2_session_callbacks_new(nghttp2_session_callbacks **)
    void nghttp2_session_callbacks_del(nghttp2_session_callbacks *)
    void nghttp2_session_callbacks_set_on_frame_recv_callback(nghttp2_session_callbacks *,
                                                              nghttp2_on_frame_recv_callback)
    void nghttp2_session_callbacks_set_on_begin_frame_callback(nghttp2_session_callbacks *,
                                                               nghttp2_on_begin_frame_callback)
    void nghttp2_session_callbacks_set_on_begin_headers_callback(nghttp2_session_callbacks *,
                                                                 nghttp2_on_begin_headers_callback)
    void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks *,
                                                          nghttp2_on_header_callback)
    void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(nghttp2_session_callbacks *,
                                                                   nghttp2_on_data_chunk_recv_callback)
    void nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(nghttp2_session_callbacks *,
                                                                      nghttp2_on_invalid_frame_recv_callback)

    int nghttp2_option_new(nghttp2_option **)
    void nghttp2_option_del(nghttp2_option *)
    void nghttp2_option_set_no_auto_window_update(nghttp2_option *, int)

    int nghttp2_session_server_new2(nghttp2_session **, const nghttp2_session_callbacks *, void *,
                                    const nghttp2_option *)
    int nghttp2_session_client_new2(nghttp2_session **, const nghttp2_session_callbacks *, void *,
                                    const nghttp2_option *)
    void nghttp2_session_del(nghttp2_session *)
    ssize_t nghttp2_session_mem_recv(nghttp2_session *, const uint8_t *, size_t)
    ssize_t nghttp2_session_mem_send(nghttp2_session *, const uint8_t **)
    int nghttp2_session_want_read(nghttp2_session *)
    int nghttp2_session_want_write(nghttp2_session *)
    int nghttp2_session_resume_data(nghttp2_session *, int32_t)
    int nghttp2_session_consume(nghttp2_session *, int32_t, size_t)
    int32_t nghttp2_session_get_stream_remote_window_size(nghttp2_session *, int32_t)
    int32_t nghttp2_session_get_remote_window_size(nghttp2_session *)
    uint32_t nghttp2_session_get_remote_settings(nghttp2_session *, int)
    int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *)
    int nghttp2_session_set_local_window_size(nghttp2_session *, uint8_t, int32_t, int32_t)

    int nghttp2_submit_settings(nghttp2_session *, uint8_t, const nghttp2_settings_entry *, size_t)
    int32_t nghttp2_submit_request(nghttp2_session *, const nghttp2_priority_spec *, const nghttp2_nv *,
                                   size_t, const nghttp2_data_provider *, void *)
    int32_t nghttp2_submit_headers(nghttp2_session *, uint8_t, int32_t, const nghttp2_priority_spec *,
                                   const nghttp2_nv *, size_t, void *)
    int nghttp2_submit_data(nghttp2_session *, uint8_t, int32_t, const nghttp2_data_provider *)
    int nghttp2_submit_trailer(nghttp2_session *, int32_t, const nghttp2_nv *, size_t)
    int nghttp2_submit_rst_stream(nghttp2_session *, uint8_t, int32_t, uint32_t)
    int nghttp2_submit_goaway(nghttp2_session *, uint8_t, int32_t, uint32_t, const uint8_t *, size_t)
    int nghttp2_submit_ping(nghttp2_session *, uint8_t, const uint8_t *)
    const char *nghttp2_strerror(int)


from cpython.mem cimport PyMem_Free, PyMem_Malloc

# Event kinds, as in codec.
cdef enum:
    K_HEADERS, K_TRAILERS, K_DATA, K_END, K_WINDOW, K_RESET, K_REFUSED, K_SETTINGS, K_PING_ACK, K_GOAWAY

cdef enum:
    FIELD_OVERHEAD = 32  # RFC 9113 6.5.2: each field counts 32 bytes more
    RESETS_PER_PART = 32


cdef class _Out:
    """What one stream has to send and nghttp2 has not taken yet."""
    cdef bytearray buf
    cdef bint eof
    cdef object trailers   # list of fields sent after the last DATA, or None
    cdef bint deferred     # the provider said "nothing yet": resume on new data

    def __cinit__(self):
        self.buf = bytearray()


cdef class NativeCodec:
    """The HTTP/2 codec on libnghttp2; see ``codec`` for the interface."""

    cdef nghttp2_session *session
    cdef list _events
    cdef list _fields          # the header block being received
    cdef list _data            # the payload of the DATA frame being received
    cdef Py_ssize_t _fields_size
    cdef bint _fields_over
    cdef Py_ssize_t _max_list  # decoded head size kept; past it the fields are dropped
    cdef dict _outs            # stream id -> _Out
    cdef Py_ssize_t _queued    # bytes waiting in every _Out together
    cdef bint _server
    cdef int _resets           # streams reset or refused in this part of a read
    cdef public object unconsumed  # input left over when parsing paused
    cdef object _error         # an exception raised inside a callback
    cdef public bint terminated

    def __cinit__(self, bint client_side, *, int initial_window_size, int connection_window_size,
                  max_concurrent_streams=None, max_header_list_size=None, int header_slack=1):
        cdef nghttp2_session_callbacks *cbs
        cdef nghttp2_option *opt
        cdef nghttp2_settings_entry iv[4]
        cdef size_t niv = 0
        cdef int rv
        self.session = NULL
        self._events = []
        self._fields = None
        self._data = []
        self._outs = {}
        self._queued = 0
        self._server = not client_side
        self._resets = 0
        self.unconsumed = None
        self._error = None
        self.terminated = False
        self._max_list = (max_header_list_size * header_slack if max_header_list_size is not None
                          else 256 * 1024)
        if nghttp2_session_callbacks_new(&cbs) != 0:
            raise MemoryError()
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, _on_frame_recv)
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, _on_begin_frame)
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, _on_begin_headers)
        nghttp2_session_callbacks_set_on_header_callback(cbs, _on_header)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, _on_data_chunk)
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, _on_invalid_frame)
        if nghttp2_option_new(&opt) != 0:
            nghttp2_session_callbacks_del(cbs)
            raise MemoryError()
        nghttp2_option_set_no_auto_window_update(opt, 1)
        if client_side:
            rv = nghttp2_session_client_new2(&self.session, cbs, <void *>self, opt)
        else:
            rv = nghttp2_session_server_new2(&self.session, cbs, <void *>self, opt)
        nghttp2_option_del(opt)
        nghttp2_session_callbacks_del(cbs)
        if rv != 0:
            raise MemoryError()
        iv[niv].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        iv[niv].value = initial_window_size
        niv += 1
        if client_side:
            iv[niv].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH
            iv[niv].value = 0
            niv += 1
        if max_concurrent_streams is not None:
            iv[niv].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
            iv[niv].value = max_concurrent_streams
            niv += 1
        if max_header_list_size is not None:
            iv[niv].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
            iv[niv].value = max_header_list_size
            niv += 1
        _check(nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, iv, niv))
        if connection_window_size > 65535:
            _check(nghttp2_session_set_local_window_size(self.session, NGHTTP2_FLAG_NONE, 0,
                                                         connection_window_size))

    def __dealloc__(self):
        if self.session is not NULL:
            nghttp2_session_del(self.session)
            self.session = NULL

    # --- input -------------------------------------------------------------------------
    def receive(self, data) -> list:
        cdef const uint8_t[::1] view = data
        cdef ssize_t rv
        cdef list events
        self._events = events = []
        self._resets = 0
        self.unconsumed = None
        if view.shape[0]:
            rv = nghttp2_session_mem_recv(self.session, &view[0], view.shape[0])
        else:
            rv = 0
        self._events = None
        if 0 <= rv < view.shape[0]:
            self.unconsumed = memoryview(data)[rv:]
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if rv < 0:
            raise CodecError(f"HTTP/2 input refused: {nghttp2_strerror(<int>rv).decode()}", rv in _FLOODS)
        return events

    # --- output ------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        cdef const uint8_t *chunk
        cdef ssize_t n
        cdef bytes first = None
        cdef list more = None
        while True:
            n = nghttp2_session_mem_send(self.session, &chunk)
            if n < 0:
                self.terminated = True
                break
            if n == 0:
                break
            piece = PyBytes_FromStringAndSize(<const char *>chunk, n)
            if first is None:
                first = piece
            else:
                if more is None:
                    more = [first]
                more.append(piece)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if not nghttp2_session_want_read(self.session) and not nghttp2_session_want_write(self.session):
            self.terminated = True
        if more is not None:
            return b"".join(more)
        return first if first is not None else b""

    def request(self, list fields, bint end_stream) -> int:
        cdef nghttp2_nv *nva = _nva(fields)
        cdef nghttp2_data_provider prd
        cdef int32_t sid
        prd.source.ptr = NULL
        prd.read_callback = _read_data
        try:
            sid = nghttp2_submit_request(self.session, NULL, nva, len(fields),
                                         NULL if end_stream else &prd, NULL)
        finally:
            PyMem_Free(nva)
        if sid < 0:
            raise CodecError(f"request not sent: {nghttp2_strerror(sid).decode()}")
        if not end_stream:
            out = _Out()
            out.deferred = False
            self._outs[sid] = out
        return sid

    def send_headers(self, int32_t sid, list fields, bint end_stream):
        cdef nghttp2_nv *nva
        cdef int rv
        out = self._outs.get(sid)
        if out is not None:
            # DATA is still being sent: these are trailers, and go after it.
            if not end_stream or (<_Out>out).eof:
                raise CodecError(f"stream {sid}: a head while its body is being sent")
            (<_Out>out).trailers = fields
            self._end(sid, <_Out>out)
            return
        nva = _nva(fields)
        try:
            rv = nghttp2_submit_headers(self.session, NGHTTP2_FLAG_END_STREAM if end_stream else NGHTTP2_FLAG_NONE,
                                        sid, NULL, nva, len(fields), NULL)
        finally:
            PyMem_Free(nva)
        if rv < 0:
            raise CodecError(f"stream {sid}: head not sent: {nghttp2_strerror(rv).decode()}")

    def send_data(self, int32_t sid, bytes data, bint end_stream):
        cdef _Out out = self._out(sid)
        out.buf += data
        self._queued += len(data)
        if end_stream:
            self._end(sid, out)
        elif out.deferred:
            out.deferred = False
            nghttp2_session_resume_data(self.session, sid)

    def end_stream(self, int32_t sid):
        self._end(sid, self._out(sid))

    cdef _Out _out(self, int32_t sid):
        """The stream's send state, its data provider submitted on first use."""
        cdef nghttp2_data_provider prd
        cdef int rv
        out = self._outs.get(sid)
        if out is not None:
            if (<_Out>out).eof:
                raise CodecError(f"stream {sid} already ended")
            return <_Out>out
        if nghttp2_session_get_stream_remote_window_size(self.session, sid) < 0:
            raise CodecError(f"stream {sid} is closed")
        prd.source.ptr = NULL
        prd.read_callback = _read_data
        rv = nghttp2_submit_data(self.session, NGHTTP2_FLAG_END_STREAM, sid, &prd)
        if rv < 0:
            raise CodecError(f"stream {sid}: no DATA: {nghttp2_strerror(rv).decode()}")
        o = _Out()
        self._outs[sid] = o
        return o

    cdef void _end(self, int32_t sid, _Out out):
        out.eof = True
        if out.deferred:
            out.deferred = False
            nghttp2_session_resume_data(self.session, sid)

    def reset_stream(self, int32_t sid, uint32_t code):
        """RST_STREAM (nghttp2 sends none for a stream already closed)."""
        out = self._outs.pop(sid, None)
        if out is not None:
            self._queued -= len((<_Out>out).buf)
        nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, sid, code)

    def acknowledge(self, int32_t sid, size_t n):
        if n:
            nghttp2_session_consume(self.session, sid, n)

    def send_window(self, int32_t sid) -> int:
        cdef Py_ssize_t stream = nghttp2_session_get_stream_remote_window_size(self.session, sid)
        cdef Py_ssize_t room, conn
        out = self._outs.get(sid)
        if stream < 0:
            if out is None:
                raise CodecError(f"stream {sid} is closed")
            # A request whose HEADERS has not left yet: nghttp2 opens the stream
            # then, with the peer's initial window.
            stream = nghttp2_session_get_remote_settings(self.session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
        room = stream - (len((<_Out>out).buf) if out is not None else 0)
        conn = nghttp2_session_get_remote_window_size(self.session) - self._queued
        if conn < room:
            room = conn
        return room if room > 0 else 0

    def goaway(self, uint32_t code, last_stream_id=None):
        """GOAWAY; nghttp2 lets the streams up to ``last_stream_id`` finish."""
        cdef int32_t last = (last_stream_id if last_stream_id is not None
                             else nghttp2_session_get_last_proc_stream_id(self.session))
        nghttp2_submit_goaway(self.session, NGHTTP2_FLAG_NONE, last, code, NULL, 0)

    def ping(self, bytes opaque):
        if len(opaque) != 8:
            raise ValueError("PING data must be 8 bytes")
        nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, <const uint8_t *>PyBytes_AS_STRING(opaque))

    # --- state -------------------------------------------------------------------------
    def peer_max_concurrent_streams(self) -> int:
        return nghttp2_session_get_remote_settings(self.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)

    def last_stream_id(self) -> int:
        return nghttp2_session_get_last_proc_stream_id(self.session)


# nghttp2's own flood limits (by number: older headers lack some of the names):
# TOO_MANY_SETTINGS, FLOODED (replies queued unread), TOO_MANY_CONTINUATIONS.
_FLOODS = frozenset((-537, -904, -905))


cdef int _check(int rv) except -1:
    if rv < 0:
        raise CodecError(nghttp2_strerror(rv).decode())
    return 0


cdef nghttp2_nv *_nva(list fields) except NULL:
    """``fields`` as nghttp2 name/value pairs pointing into the bytes objects (they
    are copied by the submit call that uses them, while ``fields`` keeps them alive)."""
    cdef Py_ssize_t n = len(fields), i = 0
    cdef nghttp2_nv *nva = <nghttp2_nv *>PyMem_Malloc(sizeof(nghttp2_nv) * (n if n else 1))
    cdef bytes name, value
    if nva is NULL:
        raise MemoryError()
    try:
        for name, value in fields:
            nva[i].name = <uint8_t *>PyBytes_AS_STRING(name)
            nva[i].namelen = len(name)
            nva[i].value = <uint8_t *>PyBytes_AS_STRING(value)
            nva[i].valuelen = len(value)
            nva[i].flags = NGHTTP2_NV_FLAG_NONE
            i += 1
    except BaseException:
        PyMem_Free(nva)
        raise
    return nva


# --- callbacks (user_data is the NativeCodec) ------------------------------------------
# An exception inside a callback is kept on the codec and raised once nghttp2 returns;
# the callback fails so nghttp2 stops.

cdef int _on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    if hd.type == NGHTTP2_DATA and c._data:
        c._data = []  # what was left of a frame nghttp2 did not complete
    return 0


cdef int _on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    try:
        c._fields = []
        c._fields_size = 0
        c._fields_over = False
    except BaseException as exc:
        c._error = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                    const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    if c._fields_over or c._fields is None:
        return 0
    c._fields_size += namelen + valuelen + FIELD_OVERHEAD
    if c._fields_size > c._max_list:
        c._fields_over = True  # the rest is not kept: memory stays bounded
        return 0
    try:
        c._fields.append((PyBytes_FromStringAndSize(<const char *>name, namelen),
                          PyBytes_FromStringAndSize(<const char *>value, valuelen)))
    except BaseException as exc:
        c._error = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE
    if c._resets >= RESETS_PER_PART:
        c._resets = 0
        return NGHTTP2_ERR_PAUSE
    return 0


cdef int _on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t n,
                        void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    try:
        c._data.append(PyBytes_FromStringAndSize(<const char *>data, n))
    except BaseException as exc:
        c._error = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    cdef uint8_t t = frame.hd.type
    cdef int32_t sid = frame.hd.stream_id
    cdef bint ended = frame.hd.flags & NGHTTP2_FLAG_END_STREAM
    cdef size_t i
    try:
        if t == NGHTTP2_DATA:
            parts = c._data
            if parts:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                c._data = []
                c._events.append((K_DATA, sid, data, len(data)))
            if ended:
                c._events.append((K_END, sid, None, None))
        elif t == NGHTTP2_HEADERS:
            fields = None if c._fields_over else c._fields
            c._fields = None
            if frame.headers.cat == NGHTTP2_HCAT_HEADERS and not _informational(fields):
                c._events.append((K_TRAILERS, sid, fields if fields is not None else [], None))
            else:
                c._events.append((K_HEADERS, sid, fields, ended))
            if ended:
                c._events.append((K_END, sid, None, None))
        elif t == NGHTTP2_WINDOW_UPDATE:
            c._events.append((K_WINDOW, sid, None, None))
        elif t == NGHTTP2_RST_STREAM:
            out = c._outs.pop(sid, None)
            if out is not None:
                c._queued -= len((<_Out>out).buf)
            c._events.append((K_RESET, sid, frame.rst_stream.error_code, None))
            if c._server:
                c._resets += 1
        elif t == NGHTTP2_SETTINGS:
            if not frame.hd.flags & NGHTTP2_FLAG_ACK:
                changed = False
                for i in range(frame.settings.niv):
                    if frame.settings.iv[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE:
                        changed = True
                c._events.append((K_SETTINGS, 0, changed, None))
        elif t == NGHTTP2_PING:
            if frame.hd.flags & NGHTTP2_FLAG_ACK:
                c._events.append((K_PING_ACK, 0, PyBytes_FromStringAndSize(
                    <const char *>frame.ping.opaque_data, 8), None))
        elif t == NGHTTP2_GOAWAY:
            c._events.append((K_GOAWAY, frame.goaway.last_stream_id, frame.goaway.error_code, None))
    except BaseException as exc:
        c._error = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef bint _informational(fields):
    """A HEADERS after an informational response is the next response head, not trailers."""
    if not fields:
        return False
    name, value = fields[0]
    return name == b":status"


cdef int _on_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int err, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    c._fields = None
    if err == NGHTTP2_ERR_REFUSED_STREAM and frame.hd.type == NGHTTP2_HEADERS and c._events is not None:
        c._resets += 1
        try:
            c._events.append((K_REFUSED, frame.hd.stream_id, None, None))
        except BaseException as exc:
            c._error = exc
            return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef ssize_t _read_data(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *source, void *ud) noexcept:
    cdef NativeCodec c = <NativeCodec>ud
    cdef _Out out
    cdef Py_ssize_t n
    cdef nghttp2_nv *nva
    try:
        o = c._outs.get(sid)
        if o is None:
            flags[0] |= NGHTTP2_DATA_FLAG_EOF
            return 0
        out = <_Out>o
        n = len(out.buf)
        if <size_t>n > length:
            n = length
        if n:
            memcpy(buf, <char *>out.buf, n)
            del out.buf[:n]
            c._queued -= n
        if not out.buf:
            if out.eof:
                del c._outs[sid]
                flags[0] |= NGHTTP2_DATA_FLAG_EOF
                if out.trailers is not None:
                    flags[0] |= NGHTTP2_DATA_FLAG_NO_END_STREAM
                    nva = _nva(out.trailers)
                    try:
                        nghttp2_submit_trailer(s, sid, nva, len(out.trailers))
                    finally:
                        PyMem_Free(nva)
            elif n == 0:
                out.deferred = True
                return NGHTTP2_ERR_DEFERRED
        return n
    except BaseException as exc:
        c._error = exc
        return NGHTTP2_ERR_CALLBACK_FAILURE
