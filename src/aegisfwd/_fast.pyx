# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""aegisfwd._fast: the scalar decision path and the C-level API (see _fast.pxd). Internal.

``EngineCore`` is the base class of ``aegisfwd.Engine``: its ``decide`` turns Python arguments into
indices with as few Python operations as possible, calls the C++ engine and returns a
``FastDecision`` (the attributes of ``aegisfwd.Decision``, compared and hashed like it, ids looked
up only when read). Everything else of the public engine is plain Python in ``engine.py``.
"""

cimport cython
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.ref cimport PyObject
from libc.math cimport isnan
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from aegisfwd._types import Decision as _Decision, Tier as _Tier

cdef extern from "aegisfwd/hashing.hpp" namespace "aegisfwd":
    uint64_t c_mix64 "aegisfwd::mix64"(uint64_t x) noexcept nogil

cdef extern from "aegisfwd/flow_key.hpp" namespace "aegisfwd":
    uint64_t c_client_flow_key "aegisfwd::client_flow_key"(const uint8_t* ip, size_t n, uint32_t port) noexcept nogil

cdef extern from "aegisfwd/engine.hpp" namespace "aegisfwd" nogil:
    cdef cppclass DecisionOut:
        uint8_t tier
        int32_t server
        int32_t dc
        int32_t location
        int32_t ip
        double distance

    cdef cppclass Engine:
        void decide(int32_t server, int32_t pool, uint8_t family, uint64_t flow, DecisionOut& out) noexcept
        uint64_t version() noexcept


def mix64(uint64_t x):
    return c_mix64(x)


def client_flow_key(str client_ip, client_port):
    """The flow key of a connection from ``client_ip`` (address text) and its source port, as
    ``_flowkey.flow_key_py(client_ip, client_port, None)`` defines it, or ``None`` when the address
    is empty or the port outside [0, 65535] (TypeError for a port that is not an int). Reads the
    string's cached UTF-8 form: for an address (ASCII) nothing is allocated but the returned int."""
    cdef Py_ssize_t n = 0
    cdef const char* text
    cdef int overflow = 0
    cdef long long port
    if not isinstance(client_port, int):
        raise TypeError(f"client_port must be an int, got {type(client_port).__name__}")
    port = PyLong_AsLongLongAndOverflow(client_port, &overflow)
    if overflow or port < 0 or port > 65535:
        return None
    text = PyUnicode_AsUTF8AndSize(client_ip, &n)
    if n == 0:
        return None
    return c_client_flow_key(<const uint8_t*>text, <size_t>n, <uint32_t>port)


# Tier members by code (255 = INVALID), so a result costs no enum construction.
cdef list _TIERS = [None] * 256
for _t in _Tier:
    _TIERS[int(_t)] = _t


# ---- C-level API (declared in _fast.pxd) ------------------------------------------------------

cdef int aegisfwd_capi_version() noexcept nogil:
    return AEGISFWD_CAPI_VERSION


cdef const void* aegisfwd_engine_ptr(object engine) except NULL:
    cdef EngineCore core
    if isinstance(engine, EngineCore):
        core = <EngineCore>engine
        if core.eng == NULL:
            raise TypeError("this aegisfwd.Engine runs the pure-Python reference backend: it has no C-level engine")
        return <const void*>core.eng
    raise TypeError(f"expected an aegisfwd.Engine, got {type(engine).__name__}")


cdef inline void _copy_out(const DecisionOut& o, aegisfwd_result* out) noexcept nogil:
    out.tier = o.tier
    out.server = o.server
    out.dc = o.dc
    out.location = o.location
    out.ip = o.ip
    out.distance = o.distance


cdef int aegisfwd_decide(const void* engine, int32_t server, int32_t pool, uint8_t family,
                         uint64_t flow, aegisfwd_result* out) noexcept nogil:
    cdef DecisionOut o
    (<Engine*>engine).decide(server, pool, family, flow, o)
    _copy_out(o, out)
    return o.tier


cdef Py_ssize_t aegisfwd_decide_many(const void* engine, Py_ssize_t n, const int32_t* server,
                                     const int32_t* pool, const uint8_t* family, const uint64_t* flow,
                                     aegisfwd_result* out) noexcept nogil:
    cdef DecisionOut o
    cdef Py_ssize_t i, invalid = 0
    cdef Engine* e = <Engine*>engine
    for i in range(n):
        e.decide(server[i], pool[i], family[i], flow[i], o)
        _copy_out(o, &out[i])
        if o.tier == 255:
            invalid += 1
    return invalid


# ---- the result of a scalar decision --------------------------------------------------------------

# Not tracked by the garbage collector: its references (a Tier member, tuples of id strings) can
# never form a cycle, and tracked allocations would trigger collections every ~700 decisions.
@cython.final
@cython.no_gc
@cython.freelist(32)
cdef class FastDecision:
    """One decision: the attributes of ``aegisfwd.Decision`` (``==`` and ``hash`` agree with it).

    Ids (``server``, ``dc``, ``location``, ``ip``) are looked up when read; ``to_decision()`` gives a
    plain ``Decision``, and pickling one gives a ``Decision`` too.
    """

    cdef readonly object tier
    cdef readonly double distance
    cdef readonly int server_index
    cdef readonly int dc_index
    cdef readonly int location_index
    cdef readonly int ip_index
    cdef tuple _names

    def __init__(self):
        raise TypeError("FastDecision objects are made by Engine.decide")

    @property
    def server(self):
        return None if self.server_index < 0 else self._names[0][self.server_index]

    @property
    def dc(self):
        return None if self.dc_index < 0 else self._names[1][self.dc_index]

    @property
    def location(self):
        return None if self.location_index < 0 else self._names[2][self.location_index]

    @property
    def ip(self):
        return None if self.ip_index < 0 else self._names[3][self.ip_index]

    def _key(self):
        return (
            int(self.tier), self.server, self.dc, self.location, self.ip,
            "nan" if isnan(self.distance) else self.distance,
            self.server_index, self.dc_index, self.location_index, self.ip_index,
        )

    def __eq__(self, other):
        if not hasattr(other, "tier") or not hasattr(other, "ip_index"):
            return NotImplemented
        return self._key() == _Decision._key(other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(self._key())

    def to_decision(self):
        """This result as a plain ``aegisfwd.Decision``."""
        return _Decision(self.tier, self.server, self.dc, self.location, self.ip, self.distance,
                         self.server_index, self.dc_index, self.location_index, self.ip_index)

    def __reduce__(self):
        return (_Decision, (self.tier, self.server, self.dc, self.location, self.ip, self.distance,
                            self.server_index, self.dc_index, self.location_index, self.ip_index))

    def __repr__(self):
        return (
            f"Decision(tier={self.tier.name}, server={self.server!r}, dc={self.dc!r}, "
            f"location={self.location!r}, ip={self.ip!r}, distance={self.distance!r})"
        )


cdef inline FastDecision _result(const DecisionOut& o, tuple names):
    cdef FastDecision d = FastDecision.__new__(FastDecision)
    d.tier = _TIERS[o.tier]
    d.distance = o.distance
    d.server_index = o.server
    d.dc_index = o.dc
    d.location_index = o.location
    d.ip_index = o.ip
    d._names = names
    return d


# ---- the base of aegisfwd.Engine ----------------------------------------------------------------

cdef class EngineCore:
    """Holds the C++ engine (through its pybind11 owner) and answers scalar decisions.

    Subclassed by ``aegisfwd.Engine``, which calls ``_attach`` from its ``__init__``. (The
    reference backend, ``aegisfwd.engine.ReferenceBackedEngine``, overrides every method and never
    attaches a C++ engine.)
    """

    cdef Engine* eng
    cdef object _core           # the aegisfwd._core.engine.Engine owning *eng
    cdef tuple _names           # (servers, dcs, locations, ips): tuples of ids
    cdef dict _server_lookup
    cdef dict _pool_lookup
    cdef int32_t _n_servers
    cdef int32_t _n_pools
    cdef object _resolve        # slow path: (server, pool, family, flow) -> indices, raising like the reference

    def __cinit__(self, *args, **kwargs):
        self.eng = NULL

    def _attach(self, core, tuple names, dict server_lookup, dict pool_lookup, int32_t n_pools, resolve):
        capsule = core._capsule()
        self.eng = <Engine*>PyCapsule_GetPointer(capsule, b"aegisfwd.engine.v1")
        self._core = core
        self._names = names
        self._server_lookup = server_lookup
        self._pool_lookup = pool_lookup
        self._n_servers = len(names[0])
        self._n_pools = n_pools
        self._resolve = resolve

    def _detach(self):
        """Forget the C++ engine (``SharedEngine.close``): later scalar calls raise instead of reading it."""
        self.eng = NULL
        self._core = None

    @property
    def _state_version(self):
        """Seqlock version of the live states (even, +2 per change); None for the reference."""
        return None if self.eng == NULL else self.eng.version()

    def decide(self, server, pool, family, flow=0):
        """Decide one request: server and pool as id (str) or index, family 4 or 6, flow key in
        ``[0, 2**64)``. Returns a ``FastDecision`` (the attributes of ``Decision``, equal to it).
        Bad input raises a ``ValueError`` subclass naming the value, as the reference does."""
        cdef long long s = -1, p = -1, f = 0
        cdef int overflow = 0
        cdef uint64_t fl = 0
        cdef uint8_t fam
        cdef bint ok_flow = False
        cdef PyObject* hit
        cdef DecisionOut out
        if self.eng == NULL:
            raise RuntimeError("Engine is not initialised")
        # Fast path: exact ints and str ids; anything else (and any error) takes the slow path,
        # which raises exactly what the reference raises.
        if type(server) is int:
            s = PyLong_AsLongLongAndOverflow(server, &overflow)
            if overflow:
                s = -1
        elif type(server) is str:
            hit = PyDict_GetItem(self._server_lookup, server)
            if hit != NULL:
                s = <object>hit
        if type(pool) is int:
            p = PyLong_AsLongLongAndOverflow(pool, &overflow)
            if overflow:
                p = -1
        elif type(pool) is str:
            hit = PyDict_GetItem(self._pool_lookup, pool)
            if hit != NULL:
                p = <object>hit
        if type(family) is int:
            f = PyLong_AsLongLongAndOverflow(family, &overflow)
            if overflow:
                f = 0
        if type(flow) is int:
            try:
                fl = flow
                ok_flow = True
            except OverflowError:
                pass
        if 0 <= s < self._n_servers and 0 <= p < self._n_pools and (f == 4 or f == 6) and ok_flow:
            fam = <uint8_t>f
        else:
            s, p, fam, fl = self._resolve(server, pool, family, flow)
        self.eng.decide(<int32_t>s, <int32_t>p, fam, fl, out)
        return _result(out, self._names)

    def decide_indices(self, int32_t server, int32_t pool, uint8_t family, uint64_t flow=0):
        """One decision on integer indices as a plain tuple ``(tier, server, dc, location, ip,
        distance)`` of ints and a float (indices -1 = none). Out-of-range input answers tier 255
        (INVALID) instead of raising: the least overhead from Python."""
        cdef DecisionOut out
        if self.eng == NULL:
            raise RuntimeError("Engine is not initialised")
        self.eng.decide(server, pool, family, flow, out)
        return (out.tier, out.server, out.dc, out.location, out.ip, out.distance)
