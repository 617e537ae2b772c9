# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""A separate extension that uses aegisfwd's C-level API (aegisfwd/_fast.pxd) without Python
objects: built by tests/test_cimport.py against the installed package."""

from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.stdlib cimport malloc, free

from aegisfwd._fast cimport (
    AEGISFWD_CAPI_VERSION,
    aegisfwd_capi_version,
    aegisfwd_decide,
    aegisfwd_decide_many,
    aegisfwd_engine_ptr,
    aegisfwd_result,
)

import numpy as np


def versions():
    return aegisfwd_capi_version(), AEGISFWD_CAPI_VERSION


def decide_one(engine, int32_t server, int32_t pool, uint8_t family, uint64_t flow):
    cdef const void* eng = aegisfwd_engine_ptr(engine)
    cdef aegisfwd_result r
    cdef int tier
    with nogil:
        tier = aegisfwd_decide(eng, server, pool, family, flow, &r)
    assert tier == r.tier
    return (r.tier, r.server, r.dc, r.location, r.ip, r.distance)


def decide_loop(engine, const int32_t[::1] server, const int32_t[::1] pool, const uint8_t[::1] family,
                const uint64_t[::1] flow):
    """Rows one by one in a nogil loop: columns like engine.decide_batch."""
    cdef const void* eng = aegisfwd_engine_ptr(engine)
    cdef Py_ssize_t n = server.shape[0], i
    tier = np.empty(n, np.uint8)
    out_i = np.empty((4, n), np.int32)
    dist = np.empty(n, np.float64)
    cdef uint8_t[::1] t = tier
    cdef int32_t[:, ::1] o = out_i
    cdef double[::1] d = dist
    cdef aegisfwd_result r
    with nogil:
        for i in range(n):
            aegisfwd_decide(eng, server[i], pool[i], family[i], flow[i], &r)
            t[i] = r.tier
            o[0, i] = r.server
            o[1, i] = r.dc
            o[2, i] = r.location
            o[3, i] = r.ip
            d[i] = r.distance
    return tier, out_i[0], out_i[1], out_i[2], out_i[3], dist


def decide_many(engine, const int32_t[::1] server, const int32_t[::1] pool, const uint8_t[::1] family,
                const uint64_t[::1] flow):
    """The same through aegisfwd_decide_many into a C array; returns (columns, n_invalid)."""
    cdef const void* eng = aegisfwd_engine_ptr(engine)
    cdef Py_ssize_t n = server.shape[0], i, invalid
    cdef aegisfwd_result* res = <aegisfwd_result*>malloc(max(n, 1) * sizeof(aegisfwd_result))
    if res == NULL:
        raise MemoryError()
    try:
        with nogil:
            invalid = aegisfwd_decide_many(eng, n, &server[0] if n else NULL, &pool[0] if n else NULL,
                                           &family[0] if n else NULL, &flow[0] if n else NULL, res)
        tier = np.array([res[i].tier for i in range(n)], np.uint8)
        srv = np.array([res[i].server for i in range(n)], np.int32)
        ip = np.array([res[i].ip for i in range(n)], np.int32)
        return (tier, srv, ip), invalid
    finally:
        free(res)
