# Extension-type layout of record.py when it is compiled (see setup.py).

cimport cython
from propylon.metrics.access_log cimport AccessLogWriter
from propylon.protocols.http.header cimport HeaderMap, RequestHeader, ResponseHeader
from propylon.proxy.observation cimport Observation
from propylon.proxy.session cimport Session
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef bint _COMPILED
# (typed, their ``get`` is a C call)
cdef dict _METHOD_INDEX, _JSON_METHODS
# (C globals: read on every request without a module dictionary lookup)
cdef Py_ssize_t _OTHER_METHOD
cdef bytes _X_REQUEST_ID, _X_REQUEST_ID_WIRE

cdef inline double _monotonic() noexcept:
    # what time.perf_counter() reads on Linux
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9

cpdef double _clock()

@cython.locals(i=Py_ssize_t, bound=double)
cpdef Py_ssize_t _bucket(double seconds)

cdef class UpstreamStats:
    cdef public str service, upstream, json_label
    cdef public list requests, durations, connect_times, header_times
    cdef public double duration_sum, connect_sum, header_sum
    cdef public long long opened, reused, retries, sent, received, in_use

cdef class RequestIds:
    cdef public object base
    cdef public unsigned long long count
    cdef public bytes high

    @cython.locals(low=cython.ulonglong)
    cpdef bytes next(self)

# (typed, a request's id is made by a C call to its method)
cdef RequestIds _ids

cdef class RecordSettings:
    cdef public object obs, metrics, tracer, trace_token, recent_traces, other
    cdef public AccessLogWriter access_log
    cdef public str service
    cdef public dict upstreams, narrowed
    cdef public list all_stats
    cdef public UpstreamStats no_upstream
    cdef public bint tracing, request_id, trace_context
    cdef public double trace_sample

    @cython.locals(rec=RequestRecord)
    cpdef request_start(self, session)
    cpdef UpstreamStats stats_for(self, address)
    cpdef UpstreamStats service_stats(self, str service, address)

cdef class RequestRecord(Observation):
    cdef public RecordSettings settings
    cdef public UpstreamStats stats
    cdef public Session session
    cdef public RequestHeader req
    cdef public object service, client_addr, reused, attempt_error, error, request_id, trace, spans, steps, hooks_run
    cdef public double start, attempt_start, connected_at, upstream_time, end
    cdef public long long attempts, status, sent, received
    cdef public bint attempt_open, traceparent_set

    cdef _begin(self, RecordSettings settings, Session session)
    @cython.locals(st=UpstreamStats, settings=RecordSettings)
    cpdef upstream_attempt(self, peer)
    @cython.locals(st=UpstreamStats, now=double, took=double)
    cpdef upstream_connected(self, bint reused)
    @cython.locals(st=UpstreamStats, took=double, headers=HeaderMap)
    cpdef upstream_response(self, resp)
    cpdef upstream_done(self, error)
    cpdef hook_ran(self, str name, double start, double end)
    cpdef _attempt_over(self, error, double now)
    @cython.locals(st=UpstreamStats, settings=RecordSettings, session=Session, log=AccessLogWriter, resp=ResponseHeader,
                   now=double, duration=double,
                   status=Py_ssize_t, index=Py_ssize_t, sent=Py_ssize_t, received=Py_ssize_t, rows=list)
    cpdef finish(self, ctx, error)

cdef class JsonLines:
    cdef public long long mask
    cdef public tuple keys
    cdef public long long sec
    cdef public str sec_text, host_text, svc_text
    cdef public object host, svc

    @cython.locals(mask=cython.longlong, keys=tuple, now=double, sec=cython.longlong,
                   ua_value=bytes, ref_value=bytes,
                   time_a=str, time_b=str, client=str, method=str, path=str, status=str, sent=str, received=str,
                   duration=str, up_duration=str, upstream=str, retries=str,
                   error=str, rid=str, ua=str, ref=str, service=str)
    cpdef str line(self, RequestRecord r, double offset)
    @cython.locals(r=RequestRecord, out=list)
    cpdef bytes batch(self, list rows, double offset)

@cython.locals(us=cython.longlong, frac=str)
cpdef str _seconds(double value)
cpdef str _count_text(long long n)
cpdef str _client_text(addr)
@cython.locals(text=str, ch=Py_UCS4, c=cython.int)
cpdef str _json_text(value)
@cython.locals(raw=bytes)
cpdef str _bytes_text(value)
cpdef str _request_id_text(rid)
cpdef str _second_text(sec)
@cython.locals(item=tuple, name=bytes)
cpdef tuple _agent_and_referer(list fields)
