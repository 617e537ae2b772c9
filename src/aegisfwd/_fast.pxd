# cython: language_level=3
# aegisfwd C-level API, version 1: decide from Cython or C++ code without Python objects.
#
#     from aegisfwd._fast cimport (aegisfwd_result, aegisfwd_engine_ptr, aegisfwd_decide,
#                                  aegisfwd_capi_version, AEGISFWD_CAPI_VERSION)
#
#     cdef const void* eng = aegisfwd_engine_ptr(engine)   # engine: an aegisfwd.Engine
#     cdef aegisfwd_result r
#     with nogil:
#         aegisfwd_decide(eng, server_index, pool_index, 4, flow, &r)
#
# Needs no C/C++ header: this file is all a consumer compiles against (Cython finds it next to the
# installed package: pass the directory above aegisfwd/ as an include path). The functions are
# fetched from aegisfwd._fast at import time with a signature check, so a consumer built against
# another version of this API fails to import instead of misbehaving; compare
# aegisfwd_capi_version() with AEGISFWD_CAPI_VERSION for an explicit check.
#
# Contract:
# * The pointer returned by aegisfwd_engine_ptr is valid while the Engine object it came from is
#   alive: keep a reference to that object for as long as you use the pointer.
# * aegisfwd_decide / aegisfwd_decide_many need no GIL and are safe from any number of threads,
#   also while another thread calls Engine.set_state (every decision sees the states before or after
#   a change, never a mix).
# * Inputs are integer indices (engine.servers / engine.pools order), family 4 or 6 and the 64-bit
#   flow key. Bad input is not an error: the result has tier 255 (INVALID), indices -1, distance NaN.
# * Result fields: tier (0 LOCAL, 1 SAME_DC, 2 SAME_LOCATION, 3 REMOTE, 4 UNAVAILABLE, 255 INVALID),
#   indices into engine.servers / dcs / locations / ips (-1 = none), distance (0 for tiers 0-2,
#   NaN for UNAVAILABLE and INVALID).

from libc.stdint cimport int32_t, uint8_t, uint64_t

cdef enum:
    AEGISFWD_CAPI_VERSION = 1

ctypedef struct aegisfwd_result:
    uint8_t tier
    int32_t server
    int32_t dc
    int32_t location
    int32_t ip
    double distance

# Engine pointer of an aegisfwd.Engine (TypeError for anything else, or for an Engine running the
# pure-Python reference backend).
cdef const void* aegisfwd_engine_ptr(object engine) except NULL

# One decision into *out; returns the tier.
cdef int aegisfwd_decide(const void* engine, int32_t server, int32_t pool, uint8_t family,
                         uint64_t flow, aegisfwd_result* out) noexcept nogil

# n decisions (rows of the four input arrays) into out[0:n]; returns the number of INVALID rows.
cdef Py_ssize_t aegisfwd_decide_many(const void* engine, Py_ssize_t n, const int32_t* server,
                                     const int32_t* pool, const uint8_t* family, const uint64_t* flow,
                                     aegisfwd_result* out) noexcept nogil

# The API version aegisfwd._fast was built with (AEGISFWD_CAPI_VERSION of its own .pxd).
cdef int aegisfwd_capi_version() noexcept nogil
