# cython: language_level=3, boundscheck=False, wraparound=False
"""aegisfwd._fast: the scalar decision path and the C-level API (see _fast.pxd). Internal."""

from libc.stdint cimport uint64_t

cdef extern from "aegisfwd/hashing.hpp" namespace "aegisfwd":
    uint64_t c_mix64 "aegisfwd::mix64"(uint64_t x) noexcept nogil


def mix64(uint64_t x):
    return c_mix64(x)
