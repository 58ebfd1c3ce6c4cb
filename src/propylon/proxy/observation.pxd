# Extension-type layout of observation.py when it is compiled (see setup.py):
# the engine calls these through the C method table of the observer's record.

cdef class Observation:
    cpdef upstream_attempt(self, peer)
    cpdef upstream_connected(self, bint reused)
    cpdef upstream_response(self, resp)
    cpdef upstream_done(self, error)
    cpdef hook_ran(self, str name, double start, double end)
    cpdef finish(self, ctx, error)
