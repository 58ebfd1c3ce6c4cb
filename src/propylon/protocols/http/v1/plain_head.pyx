# cython: language_level=3, boundscheck=False, wraparound=False
"""``plain_response``: a response head read in one pass over its bytes, for the
compiled build's upstream codec (``client.H1ClientConnection``).

Most responses from an origin arrive whole in one read and are written plainly;
for those, this pass costs a fraction of llhttp's callbacks into Python (one per
field, then one per event). It takes only what it can read without doubt and
leaves everything else to llhttp, which also reports what is wrong: a response it
refuses is read by the parser as before.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr

__all__ = ["plain_response"]

# 1 for the characters of a field name (RFC 9110 token)
cdef unsigned char _TCHAR[256]
cdef int _c
for _c in range(256):
    _TCHAR[_c] = 1 if (48 <= _c <= 57 or 65 <= _c <= 90 or 97 <= _c <= 122
                       or chr(_c) in "!#$%&'*+-.^_`|~") else 0

cdef enum:
    NAME_MAX = 64  # a field name longer than this is left to the parser


cdef inline bint _text(const unsigned char *p, Py_ssize_t start, Py_ssize_t end):
    # printable ASCII, space and tab (no control character, no obs-text)
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(start, end):
        c = p[i]
        if (c < 32 and c != 9) or c > 126:
            return False
    return True


cdef inline bint _is(const unsigned char *lower, Py_ssize_t n, const char *name, Py_ssize_t m):
    cdef Py_ssize_t i
    if n != m:
        return False
    for i in range(n):
        if lower[i] != <unsigned char>name[i]:
            return False
    return True


def plain_response(bytes data, Py_ssize_t limit):
    """The response at the start of ``data`` if it is whole there and plain, as
    ``(status, fields, content_length, keep_alive, body_start)`` with ``fields``
    the ``(lower name, name, value)`` of each field in order; else None.

    Plain: an ``HTTP/1.1`` status line with a final status that has a body (not
    1xx, 204 or 304) and a printable reason; a head of at most ``limit`` bytes
    ending in an empty line; each field a token name, a colon, optional spaces or
    tabs and a non-empty printable value with no whitespace at its end; exactly one
    Content-Length of at most 15 digits; no Transfer-Encoding or Upgrade;
    ``Connection`` only ``keep-alive`` or ``close``; no byte past the body."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, pos, eol, colon, v, line_end, start, k
    cdef Py_ssize_t scan = n if n < limit else limit  # the head must end before this
    cdef const unsigned char *cr
    cdef long long length = -1
    cdef int status
    cdef bint keepalive = True
    cdef unsigned char lower[NAME_MAX]
    cdef list fields
    cdef tuple item
    if scan < 17:  # "HTTP/1.1 200 \r\n\r\n"
        return None
    for i in range(9):
        if p[i] != <unsigned char>b"HTTP/1.1 "[i]:
            return None
    if not (50 <= p[9] <= 53 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57) or p[12] != 32:
        return None
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if status == 204 or status == 304:
        return None
    cr = <const unsigned char *>memchr(p + 13, 13, scan - 14)
    if cr == NULL:
        return None
    line_end = cr - p
    if p[line_end + 1] != 10 or not _text(p, 13, line_end):
        return None
    fields = []
    pos = line_end + 2
    while True:
        # Each line ends in CR LF, the head in an empty line, all before ``scan``.
        if pos + 1 >= scan:
            return None
        cr = <const unsigned char *>memchr(p + pos, 13, scan - pos - 1)
        if cr == NULL:
            return None
        eol = cr - p
        if p[eol + 1] != 10:
            return None
        if eol == pos:
            break
        colon = pos
        while colon < eol and p[colon] != 58:
            if not _TCHAR[p[colon]]:
                return None
            colon += 1
        if colon == pos or colon == eol or colon - pos > NAME_MAX:
            return None
        v = colon + 1
        while v < eol and (p[v] == 32 or p[v] == 9):
            v += 1
        if v == eol or p[eol - 1] == 32 or p[eol - 1] == 9 or not _text(p, v, eol):
            return None
        for i in range(pos, colon):
            lower[i - pos] = p[i] + 32 if 65 <= p[i] <= 90 else p[i]
        k = colon - pos
        if _is(lower, k, b"content-length", 14):
            if length >= 0 or eol - v > 15:
                return None
            length = 0
            for i in range(v, eol):
                if not 48 <= p[i] <= 57:
                    return None
                length = length * 10 + (p[i] - 48)
        elif _is(lower, k, b"transfer-encoding", 17) or _is(lower, k, b"upgrade", 7):
            return None
        elif _is(lower, k, b"connection", 10):
            if eol - v == 5 and (p[v] | 32) == 99 and (p[v + 1] | 32) == 108 and (p[v + 2] | 32) == 111 \
                    and (p[v + 3] | 32) == 115 and (p[v + 4] | 32) == 101:  # close
                keepalive = False
            elif not (eol - v == 10 and _keep_alive(p, v)):
                return None
        item = (PyBytes_FromStringAndSize(<char *>lower, k),
                PyBytes_FromStringAndSize(<char *>p + pos, k),
                PyBytes_FromStringAndSize(<char *>p + v, eol - v))
        fields.append(item)
        pos = eol + 2
    start = pos + 2
    if length < 0 or n - start > length:
        return None
    return status, fields, length, keepalive, start


cdef inline bint _keep_alive(const unsigned char *p, Py_ssize_t v):
    cdef const char *word = b"keep-alive"
    cdef int i
    for i in range(10):
        if (p[v + i] | 32) != <unsigned char>word[i]:
            return False
    return True
