/*
 * aegisfwd.h -- the C ABI of the aegisfwd decision engine (libaegisfwd).
 *
 * For proxies written in C, C++, Rust, Lua (LuaJIT FFI) or anything else that can call C: open a
 * compiled topology file (written by `aegisfwd compile` or `CompiledTopology.save`), then decide,
 * for each connection to a customer's origin, which server and dedicated egress IP it must leave
 * from (tiers LOCAL -> SAME_DC -> SAME_LOCATION -> REMOTE -> UNAVAILABLE), exactly as the Python
 * `aegisfwd.Engine` does.
 *
 * Conventions
 *   - Plain C99. Every function is noexcept: no C++ exception ever crosses this boundary; failures
 *     are an aegisfwd_status code plus a message readable with aegisfwd_last_error().
 *   - Indices are int32_t, as in the compiled file (-1 = none). Ids are UTF-8 byte strings with an
 *     explicit length (no NUL terminator needed).
 *   - Error messages are thread-local: aegisfwd_last_error() returns the message of the last
 *     failing call *on the calling thread*; a successful call does not clear it.
 *
 * Ownership
 *   - aegisfwd_engine is opaque. aegisfwd_open_abi() creates it; the caller owns it and must
 *     release it with aegisfwd_close() exactly once, after every other call on it has returned.
 *   - The engine memory-maps the file read-only and keeps the mapping until aegisfwd_close(). Do
 *     not rewrite the file in place while it is open (replace it by rename, as
 *     CompiledTopology.save does; the open engine keeps reading the old version).
 *   - Every pointer argument is borrowed for the duration of the call only, except where a
 *     function says otherwise. Output arrays are owned by the caller.
 *   - Strings returned by aegisfwd_id() point into the mapping: valid until aegisfwd_close(), never
 *     NUL-terminated, never to be freed. aegisfwd_version(), aegisfwd_status_name() and
 *     aegisfwd_isa() return static strings. aegisfwd_last_error() returns a thread-local string
 *     valid until the next failing call on the same thread.
 *
 * Thread safety
 *   - Decisions (aegisfwd_decide, aegisfwd_decide_batch) and read-only queries may run on any
 *     number of threads at once, also while another thread changes states.
 *   - State changes (aegisfwd_set_*) may be called from any thread; they are serialised inside the
 *     engine. Each change is atomic with respect to decisions: a decision running concurrently
 *     sees every server's state either entirely before or entirely after that change (a seqlock;
 *     see docs/engine.md). A change applies to every decision that starts after it returns.
 *   - aegisfwd_close() must not race with any other call on the same engine.
 *
 * ABI
 *   AEGISFWD_ABI_VERSION changes whenever a struct layout, enum value or function signature of this
 *   header changes. aegisfwd_open() passes the version this header was compiled with, and the
 *   library refuses to open an engine for another one (AEGISFWD_E_ABI_MISMATCH), so a program
 *   built against one header cannot silently misread another library's structs. Callers that bind
 *   the functions at run time (LuaJIT FFI, Rust bindgen, ctypes) pass their own copy of the number to
 *   aegisfwd_open_abi().
 */
#ifndef AEGISFWD_H
#define AEGISFWD_H

#include <stddef.h>
#include <stdint.h>

#define AEGISFWD_VERSION_MAJOR 0
#define AEGISFWD_VERSION_MINOR 1
#define AEGISFWD_VERSION_PATCH 0
#define AEGISFWD_VERSION_STRING "0.1.0"
#define AEGISFWD_ABI_VERSION 1

#if defined(_WIN32)
#  define AEGISFWD_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#  define AEGISFWD_API __attribute__((visibility("default")))
#else
#  define AEGISFWD_API
#endif
#ifdef AEGISFWD_BUILDING_LIBRARY
#  undef AEGISFWD_API
#  if defined(_WIN32)
#    define AEGISFWD_API __declspec(dllexport)
#  else
#    define AEGISFWD_API __attribute__((visibility("default")))
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------------------------- */
typedef enum aegisfwd_status {
    AEGISFWD_OK = 0,
    AEGISFWD_E_INVALID_ARGUMENT = 1, /* a NULL pointer, an index out of range, a bad state code */
    AEGISFWD_E_NOT_FOUND = 2,        /* no server/pool/DC/location/zone with that id */
    AEGISFWD_E_IO = 3,               /* the file cannot be opened, read or mapped */
    AEGISFWD_E_CORRUPT_FILE = 4,     /* not a valid compiled topology (message names the problem) */
    AEGISFWD_E_ABI_MISMATCH = 5,     /* the caller's header has another AEGISFWD_ABI_VERSION */
    AEGISFWD_E_BUFFER_TOO_SMALL = 6, /* an output buffer cannot hold the answer (see *needed) */
    AEGISFWD_E_NO_MEMORY = 7,
    AEGISFWD_E_INTERNAL = 8          /* a bug: please report the message */
} aegisfwd_status;

/* ---- decision tiers (values of aegisfwd_decision.tier and of batch tier columns) ----------- */
typedef enum aegisfwd_tier {
    AEGISFWD_TIER_LOCAL = 0,         /* the ingress server holds an applicable IP */
    AEGISFWD_TIER_SAME_DC = 1,       /* another server of the ingress DC */
    AEGISFWD_TIER_SAME_LOCATION = 2, /* another DC of the ingress location */
    AEGISFWD_TIER_REMOTE = 3,        /* the closest other location with an up holder */
    AEGISFWD_TIER_UNAVAILABLE = 4,   /* nowhere: the connection must be refused (fail closed) */
    AEGISFWD_TIER_INVALID = 255      /* the request itself is invalid (index out of range, family) */
} aegisfwd_tier;

/* ---- server states ------------------------------------------------------------------------- */
typedef enum aegisfwd_state {
    AEGISFWD_STATE_UP = 0,
    AEGISFWD_STATE_DRAINING = 1, /* keeps its connections, gets no new ones */
    AEGISFWD_STATE_DOWN = 2
} aegisfwd_state;

/* ---- id kinds, for aegisfwd_lookup and aegisfwd_id ---------------------------------------------- */
typedef enum aegisfwd_kind {
    AEGISFWD_KIND_LOCATION = 0,
    AEGISFWD_KIND_DC = 1,
    AEGISFWD_KIND_SERVER = 2,
    AEGISFWD_KIND_POOL = 3,
    AEGISFWD_KIND_IP = 4,
    AEGISFWD_KIND_ZONE = 5
} aegisfwd_kind;

/* Flags of aegisfwd_open_abi. */
#define AEGISFWD_OPEN_SKIP_CRC 1u /* skip the payload CRC (the structural checks always run) */

typedef struct aegisfwd_engine aegisfwd_engine;

/* One decision. Indices are -1 and distance is NaN when tier is UNAVAILABLE or INVALID; distance
 * is 0 for the first three tiers and the ingress-to-egress location distance for REMOTE. */
typedef struct aegisfwd_decision {
    uint8_t tier; /* aegisfwd_tier */
    uint8_t reserved_[3];
    int32_t server;   /* egress server index */
    int32_t dc;       /* its data center */
    int32_t location; /* its location */
    int32_t ip;       /* the Aegis IP (or IPv6 prefix) to egress from: see aegisfwd_ip_text */
    int32_t reserved2_;
    double distance;
} aegisfwd_decision;

/* Caller-owned output columns of a batch, each at least n elements long. Any column may be NULL
 * when not wanted, except tier. */
typedef struct aegisfwd_batch_columns {
    uint8_t* tier;
    int32_t* server;
    int32_t* dc;
    int32_t* location;
    int32_t* ip;
    double* distance;
} aegisfwd_batch_columns;

/* Sizes of the index spaces. */
typedef struct aegisfwd_counts {
    int32_t locations;
    int32_t dcs;
    int32_t servers;
    int32_t pools;
    int32_t ips;
    int32_t zones;
} aegisfwd_counts;

/* An Aegis IP as bytes: family 4 (the first 4 bytes of `address` are used) or 6 (all 16), network
 * byte order; prefix_length 32/128 for a single address, shorter for an IPv6 prefix (the proxy
 * picks an address inside it). */
typedef struct aegisfwd_ip {
    uint8_t family;
    uint8_t prefix_length;
    uint8_t address[16];
} aegisfwd_ip;

/* ---- library ---------------------------------------------------------------------------------- */
AEGISFWD_API const char* aegisfwd_version(void);   /* "0.1.0": the library, not the header */
AEGISFWD_API uint32_t aegisfwd_abi_version(void); /* the library's AEGISFWD_ABI_VERSION */
AEGISFWD_API const char* aegisfwd_status_name(aegisfwd_status status); /* "AEGISFWD_E_IO", ... */
/* Message of the last failing call on this thread ("" if none). */
AEGISFWD_API const char* aegisfwd_last_error(void);

/* ---- open / close ------------------------------------------------------------------------------ */
/* Opens and validates the compiled topology at `path` (exactly the checks of Python's
 * aegisfwd.load_compiled, then the engine's own), memory-mapped. `abi_version` must be
 * AEGISFWD_ABI_VERSION of the caller's header. `flags`: 0 or AEGISFWD_OPEN_SKIP_CRC. `isa`: NULL or
 * "auto" (the best decision kernel this CPU runs), "generic", "avx2" or "avx512". On success
 * *out is a new engine (servers in their initial states from the file); on failure *out is NULL.
 * Errors: ABI_MISMATCH, INVALID_ARGUMENT, IO, CORRUPT_FILE, NO_MEMORY. */
AEGISFWD_API aegisfwd_status aegisfwd_open_abi(uint32_t abi_version, const char* path, uint32_t flags,
                                               const char* isa, aegisfwd_engine** out);
#define aegisfwd_open(path, flags, out) aegisfwd_open_abi(AEGISFWD_ABI_VERSION, (path), (flags), NULL, (out))

/* Releases the engine and its mapping. NULL is ignored. */
AEGISFWD_API void aegisfwd_close(aegisfwd_engine* engine);

AEGISFWD_API aegisfwd_status aegisfwd_counts_get(const aegisfwd_engine* engine, aegisfwd_counts* out);
/* The decision kernel in use: "generic", "avx2" or "avx512" (static string). */
AEGISFWD_API const char* aegisfwd_isa(const aegisfwd_engine* engine);

/* ---- ids ------------------------------------------------------------------------------------- */
/* Index of the id (`len` bytes of UTF-8) of `kind`. A zone id gives its pool's index.
 * Errors: NOT_FOUND, INVALID_ARGUMENT. */
AEGISFWD_API aegisfwd_status aegisfwd_lookup(const aegisfwd_engine* engine, aegisfwd_kind kind, const char* id,
                                             size_t len, int32_t* index);
/* The id of index `index` of `kind`: *data points into the mapping (not NUL-terminated), *len bytes. */
AEGISFWD_API aegisfwd_status aegisfwd_id(const aegisfwd_engine* engine, aegisfwd_kind kind, int32_t index,
                                         const char** data, size_t* len);

/* ---- decisions ----------------------------------------------------------------------------------- */
/* Decides one request: the ingress server index, the pool index, the address family (4 or 6) the
 * origin connection uses, and the flow key (any 64-bit value identifying the flow; the same flow
 * always gets the same answer while states do not change). Writes *out and returns its tier. An
 * out-of-range server or pool or a family other than 4/6 gives AEGISFWD_TIER_INVALID; no error
 * message is set (this call never fails otherwise). This is the hot path: `engine` and `out` are not
 * checked and must be valid. */
AEGISFWD_API aegisfwd_tier aegisfwd_decide(const aegisfwd_engine* engine, int32_t server, int32_t pool,
                                           uint8_t family, uint64_t flow, aegisfwd_decision* out);

/* The flow key of a client connection, the one the log evaluation derives from a log's ClientIP and
 * ClientSrcPort (docs/evaluate.md "Flow key"): `client_ip` is the client's address as text
 * ("192.0.2.1", "2001:db8::1"; `len` bytes, no NUL needed), `port` its source port. A proxy that
 * decides with this key decides what `aegisfwd evaluate` predicts from its logs. Needs no engine; safe
 * from any thread. Errors: INVALID_ARGUMENT (NULL pointers, an empty address, a port above 65535). */
AEGISFWD_API aegisfwd_status aegisfwd_client_flow_key(const char* client_ip, size_t len, uint32_t port,
                                                      uint64_t* flow);

/* Decides rows [0, n) of the input columns into `out`, on `threads` threads (0: every hardware
 * thread; small batches use fewer; 1: the calling thread only). *n_invalid (may be NULL) gets the
 * number of INVALID rows. Errors: INVALID_ARGUMENT (a NULL column), NO_MEMORY, INTERNAL (a thread
 * could not start). */
AEGISFWD_API aegisfwd_status aegisfwd_decide_batch(const aegisfwd_engine* engine, size_t n, const int32_t* server,
                                                   const int32_t* pool, const uint8_t* family,
                                                   const uint64_t* flow, const aegisfwd_batch_columns* out,
                                                   unsigned threads, int64_t* n_invalid);

/* ---- live state ----------------------------------------------------------------------------------- */
/* `state` is an aegisfwd_state. The DC and location forms set every server of that DC or location
 * (overwriting their earlier settings) in one atomic change. Errors: INVALID_ARGUMENT. */
AEGISFWD_API aegisfwd_status aegisfwd_set_server_state(aegisfwd_engine* engine, int32_t server, int state);
AEGISFWD_API aegisfwd_status aegisfwd_set_dc_state(aegisfwd_engine* engine, int32_t dc, int state);
AEGISFWD_API aegisfwd_status aegisfwd_set_location_state(aegisfwd_engine* engine, int32_t location, int state);
/* Every server's state at once (`n` must be the number of servers); one atomic change. */
AEGISFWD_API aegisfwd_status aegisfwd_set_states(aegisfwd_engine* engine, const uint8_t* states, size_t n);
AEGISFWD_API aegisfwd_status aegisfwd_get_state(const aegisfwd_engine* engine, int32_t server, uint8_t* state);
/* Every server's state at once into states[0, n) (`n` must be the number of servers). */
AEGISFWD_API aegisfwd_status aegisfwd_get_states(const aegisfwd_engine* engine, uint8_t* states, size_t n);

/* ---- source addresses ------------------------------------------------------------------------------ */
/* The canonical text of IP `ip` ("192.0.2.10", "2001:db8::1", or "2001:db8:a::/48" for a prefix),
 * NUL-terminated into buf[0, size). *needed (may be NULL) gets the size including the NUL; when
 * it exceeds `size`, returns BUFFER_TOO_SMALL and writes nothing. 64 bytes always suffice. */
AEGISFWD_API aegisfwd_status aegisfwd_ip_text(const aegisfwd_engine* engine, int32_t ip, char* buf, size_t size,
                                              size_t* needed);
/* The same IP as bytes, ready for a sockaddr (sin_addr / sin6_addr). */
AEGISFWD_API aegisfwd_status aegisfwd_ip_get(const aegisfwd_engine* engine, int32_t ip, aegisfwd_ip* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* AEGISFWD_H */
