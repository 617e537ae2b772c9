// The C ABI (aegisfwd.h) over the C++ core: CompiledFile opens and validates the file, Engine
// decides. Every entry point catches every exception and turns it into a status code plus the
// thread-local message, so nothing C++ crosses the boundary.
#define AEGISFWD_BUILDING_LIBRARY 1
#include "aegisfwd.h"

#include <arpa/inet.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aegisfwd/compiled_file.hpp"
#include "aegisfwd/engine.hpp"
#include "aegisfwd/flow_key.hpp"

namespace {

using aegisfwd::CompiledFile;
using aegisfwd::IdKind;

// The public struct must stay a copy of the core's row: the copy in aegisfwd_decide is then a
// few register moves (the C ABI must cost no more than 1.2x the core's scalar call).
static_assert(sizeof(aegisfwd_decision) == 32, "aegisfwd_decision layout is part of the ABI");
static_assert(offsetof(aegisfwd_decision, server) == 4 && offsetof(aegisfwd_decision, ip) == 16 &&
                  offsetof(aegisfwd_decision, distance) == 24,
              "aegisfwd_decision layout is part of the ABI");
static_assert(AEGISFWD_TIER_INVALID == aegisfwd::detail::kTierInvalid, "tier codes");
static_assert(AEGISFWD_TIER_UNAVAILABLE == aegisfwd::detail::kTierUnavailable, "tier codes");

thread_local std::string t_last_error;

aegisfwd_status set_error(aegisfwd_status status, const std::string& message) noexcept {
    try {
        t_last_error = message;
    } catch (...) {  // out of memory for the message itself: keep the status
    }
    return status;
}

// Runs `body`, mapping every exception to a status and message.
template <class F>
aegisfwd_status guarded(F&& body) noexcept {
    try {
        return body();
    } catch (const aegisfwd::CompiledFileIoError& e) {
        return set_error(AEGISFWD_E_IO, e.what());
    } catch (const aegisfwd::CompiledFileError& e) {
        return set_error(AEGISFWD_E_CORRUPT_FILE, e.what());
    } catch (const std::bad_alloc&) {
        return set_error(AEGISFWD_E_NO_MEMORY, "out of memory");
    } catch (const std::invalid_argument& e) {
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, e.what());
    } catch (const std::out_of_range& e) {
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, e.what());
    } catch (const std::exception& e) {
        return set_error(AEGISFWD_E_INTERNAL, e.what());
    } catch (...) {
        return set_error(AEGISFWD_E_INTERNAL, "unknown C++ exception");
    }
}

bool valid_kind(int kind) { return kind >= AEGISFWD_KIND_LOCATION && kind <= AEGISFWD_KIND_ZONE; }

const char* kind_name(int kind) {
    static const char* const names[] = {"location", "dc", "server", "pool", "ip", "zone"};
    return valid_kind(kind) ? names[kind] : "?";
}

}  // namespace

struct aegisfwd_engine {
    std::unique_ptr<CompiledFile> file;
    aegisfwd::Engine core;
    // id -> index per kind (zones map to their pool), keys pointing into the mapping.
    std::unordered_map<std::string_view, std::int32_t> index[6];

    aegisfwd_engine(std::unique_ptr<CompiledFile> f, const std::string& isa)
        : file(std::move(f)), core(file->tables(), nullptr, 0, isa) {
        for (int k = 0; k < 6; ++k) {
            const auto kind = static_cast<IdKind>(k);
            const std::size_t n = file->id_count(kind);
            index[k].reserve(n);
            for (std::size_t i = 0; i < n; ++i) {
                const auto value = kind == IdKind::zone ? file->zone_pool()[i] : static_cast<std::int32_t>(i);
                index[k].emplace(file->id(kind, i), value);
            }
        }
    }
};

extern "C" {

const char* aegisfwd_version(void) { return AEGISFWD_VERSION_STRING; }

uint32_t aegisfwd_abi_version(void) { return AEGISFWD_ABI_VERSION; }

const char* aegisfwd_status_name(aegisfwd_status status) {
    switch (status) {
        case AEGISFWD_OK: return "AEGISFWD_OK";
        case AEGISFWD_E_INVALID_ARGUMENT: return "AEGISFWD_E_INVALID_ARGUMENT";
        case AEGISFWD_E_NOT_FOUND: return "AEGISFWD_E_NOT_FOUND";
        case AEGISFWD_E_IO: return "AEGISFWD_E_IO";
        case AEGISFWD_E_CORRUPT_FILE: return "AEGISFWD_E_CORRUPT_FILE";
        case AEGISFWD_E_ABI_MISMATCH: return "AEGISFWD_E_ABI_MISMATCH";
        case AEGISFWD_E_BUFFER_TOO_SMALL: return "AEGISFWD_E_BUFFER_TOO_SMALL";
        case AEGISFWD_E_NO_MEMORY: return "AEGISFWD_E_NO_MEMORY";
        case AEGISFWD_E_INTERNAL: return "AEGISFWD_E_INTERNAL";
    }
    return "AEGISFWD_E_UNKNOWN";
}

const char* aegisfwd_last_error(void) { return t_last_error.c_str(); }

aegisfwd_status aegisfwd_open_abi(uint32_t abi_version, const char* path, uint32_t flags, const char* isa,
                                  aegisfwd_engine** out) {
    if (out != nullptr) *out = nullptr;
    if (abi_version != AEGISFWD_ABI_VERSION)
        return set_error(AEGISFWD_E_ABI_MISMATCH, "the caller was built for ABI version " +
                                                      std::to_string(abi_version) + ", this libaegisfwd " +
                                                      AEGISFWD_VERSION_STRING + " implements ABI version " +
                                                      std::to_string(AEGISFWD_ABI_VERSION));
    if (path == nullptr || out == nullptr) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "path and out must not be NULL");
    if ((flags & ~AEGISFWD_OPEN_SKIP_CRC) != 0)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "unknown flags " + std::to_string(flags));
    return guarded([&] {
        const std::string kernel = isa == nullptr ? "auto" : isa;
        auto file = CompiledFile::open(path, (flags & AEGISFWD_OPEN_SKIP_CRC) == 0);
        std::unique_ptr<aegisfwd_engine> engine;
        try {
            engine.reset(new aegisfwd_engine(std::move(file), kernel));
        } catch (const std::invalid_argument& e) {
            const std::string what = e.what();
            if (what.find("isa '") != std::string::npos) throw;  // a kernel this CPU lacks
            // As Python's Engine reports the engine's own structural checks.
            throw aegisfwd::CompiledFileError(std::string(path) + ": compiled tables rejected by the engine: " + what);
        } catch (const std::out_of_range& e) {
            throw aegisfwd::CompiledFileError(std::string(path) + ": compiled tables rejected by the engine: " +
                                              e.what());
        }
        *out = engine.release();
        return AEGISFWD_OK;
    });
}

void aegisfwd_close(aegisfwd_engine* engine) { delete engine; }

aegisfwd_status aegisfwd_counts_get(const aegisfwd_engine* engine, aegisfwd_counts* out) {
    if (engine == nullptr || out == nullptr)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine and out must not be NULL");
    const auto& c = engine->core.counts();
    out->locations = c.locations;
    out->dcs = c.dcs;
    out->servers = c.servers;
    out->pools = c.pools;
    out->ips = c.ips;
    out->zones = static_cast<int32_t>(engine->file->id_count(IdKind::zone));
    return AEGISFWD_OK;
}

const char* aegisfwd_isa(const aegisfwd_engine* engine) { return engine == nullptr ? "" : engine->core.isa(); }

aegisfwd_status aegisfwd_lookup(const aegisfwd_engine* engine, aegisfwd_kind kind, const char* id, size_t len,
                                int32_t* index) {
    if (engine == nullptr || index == nullptr || (id == nullptr && len != 0))
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine, id and index must not be NULL");
    if (!valid_kind(kind)) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "unknown kind " + std::to_string(kind));
    return guarded([&] {
        const std::string_view key(id == nullptr ? "" : id, len);
        const auto& map = engine->index[kind];
        const auto it = map.find(key);
        if (it == map.end())
            return set_error(AEGISFWD_E_NOT_FOUND, std::string("unknown ") + kind_name(kind) + " id '" +
                                                       std::string(key) + "'");
        *index = it->second;
        return AEGISFWD_OK;
    });
}

aegisfwd_status aegisfwd_id(const aegisfwd_engine* engine, aegisfwd_kind kind, int32_t index, const char** data,
                            size_t* len) {
    if (engine == nullptr || data == nullptr || len == nullptr)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine, data and len must not be NULL");
    if (!valid_kind(kind)) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "unknown kind " + std::to_string(kind));
    const auto k = static_cast<IdKind>(kind);
    const std::size_t n = engine->file->id_count(k);
    if (index < 0 || static_cast<std::size_t>(index) >= n)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, std::string(kind_name(kind)) + " index " +
                                                          std::to_string(index) + " outside [0, " +
                                                          std::to_string(n) + ")");
    const auto text = engine->file->id(k, static_cast<std::size_t>(index));
    *data = text.data();
    *len = text.size();
    return AEGISFWD_OK;
}

aegisfwd_status aegisfwd_client_flow_key(const char* client_ip, size_t len, uint32_t port, uint64_t* flow) {
    if (client_ip == nullptr || flow == nullptr)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "client_ip and flow must not be NULL");
    if (len == 0) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "the client address is empty");
    if (port > 65535) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "port " + std::to_string(port) + " above 65535");
    *flow = aegisfwd::client_flow_key(reinterpret_cast<const std::uint8_t*>(client_ip), len, port);
    return AEGISFWD_OK;
}

aegisfwd_tier aegisfwd_decide(const aegisfwd_engine* engine, int32_t server, int32_t pool, uint8_t family,
                              uint64_t flow, aegisfwd_decision* out) {
    aegisfwd::DecisionOut d;
    engine->core.decide(server, pool, family, flow, d);
    out->tier = d.tier;
    out->server = d.server;
    out->dc = d.dc;
    out->location = d.location;
    out->ip = d.ip;
    out->distance = d.distance;
    return static_cast<aegisfwd_tier>(d.tier);
}

aegisfwd_status aegisfwd_decide_batch(const aegisfwd_engine* engine, size_t n, const int32_t* server,
                                      const int32_t* pool, const uint8_t* family, const uint64_t* flow,
                                      const aegisfwd_batch_columns* out, unsigned threads, int64_t* n_invalid) {
    if (engine == nullptr || out == nullptr || out->tier == nullptr)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine, out and out->tier must not be NULL");
    if (n > 0 && (server == nullptr || pool == nullptr || family == nullptr || flow == nullptr))
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "an input column is NULL");
    return guarded([&] {
        // Columns the caller does not want still need somewhere to go.
        std::vector<std::int32_t> scratch_i;
        std::vector<double> scratch_d;
        const std::size_t missing = (out->server == nullptr) + (out->dc == nullptr) + (out->location == nullptr) +
                                    (out->ip == nullptr);
        if (missing) scratch_i.resize(missing * n);
        if (out->distance == nullptr) scratch_d.resize(n);
        std::size_t used = 0;
        const auto column = [&](int32_t* given) {
            if (given != nullptr) return given;
            return scratch_i.data() + n * used++;
        };
        aegisfwd::BatchColumns cols{out->tier,        column(out->server), column(out->dc), column(out->location),
                                    column(out->ip), out->distance != nullptr ? out->distance : scratch_d.data()};
        const std::int64_t invalid = engine->core.decide_batch(server, pool, family, flow, n, cols, threads);
        if (n_invalid != nullptr) *n_invalid = invalid;
        return AEGISFWD_OK;
    });
}

static aegisfwd_status set_range(aegisfwd_engine* engine, std::int32_t first, std::int32_t end, int state) {
    if (state < AEGISFWD_STATE_UP || state > AEGISFWD_STATE_DOWN)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT,
                         "state " + std::to_string(state) + " (expected 0 up, 1 draining, 2 down)");
    return guarded([&] {
        engine->core.set_state(first, end, static_cast<std::uint8_t>(state));
        return AEGISFWD_OK;
    });
}

static aegisfwd_status range_of(const aegisfwd_engine* engine, const char* what, int32_t index,
                                const aegisfwd::ArrayView<std::int32_t>& start, std::int32_t* first,
                                std::int32_t* end) {
    if (engine == nullptr) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine must not be NULL");
    const std::size_t n = start.size - 1;
    if (index < 0 || static_cast<std::size_t>(index) >= n)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT,
                         std::string(what) + " index " + std::to_string(index) + " outside [0, " + std::to_string(n) + ")");
    *first = start[static_cast<std::size_t>(index)];
    *end = start[static_cast<std::size_t>(index) + 1];
    return AEGISFWD_OK;
}

aegisfwd_status aegisfwd_set_server_state(aegisfwd_engine* engine, int32_t server, int state) {
    if (engine == nullptr) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine must not be NULL");
    const std::int32_t S = engine->core.counts().servers;
    if (server < 0 || server >= S)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT,
                         "server index " + std::to_string(server) + " outside [0, " + std::to_string(S) + ")");
    return set_range(engine, server, server + 1, state);
}

aegisfwd_status aegisfwd_set_dc_state(aegisfwd_engine* engine, int32_t dc, int state) {
    std::int32_t first = 0, end = 0;
    const auto st = range_of(engine, "dc", dc, engine ? engine->file->tables().dc_server_start
                                                      : aegisfwd::ArrayView<std::int32_t>{}, &first, &end);
    return st != AEGISFWD_OK ? st : set_range(engine, first, end, state);
}

aegisfwd_status aegisfwd_set_location_state(aegisfwd_engine* engine, int32_t location, int state) {
    std::int32_t first = 0, end = 0;
    const auto st = range_of(engine, "location", location,
                             engine ? engine->file->tables().location_server_start
                                    : aegisfwd::ArrayView<std::int32_t>{},
                             &first, &end);
    return st != AEGISFWD_OK ? st : set_range(engine, first, end, state);
}

aegisfwd_status aegisfwd_set_states(aegisfwd_engine* engine, const uint8_t* states, size_t n) {
    if (engine == nullptr || (states == nullptr && n != 0))
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine and states must not be NULL");
    return guarded([&] {
        engine->core.set_states(states, n);
        return AEGISFWD_OK;
    });
}

aegisfwd_status aegisfwd_get_state(const aegisfwd_engine* engine, int32_t server, uint8_t* state) {
    if (engine == nullptr || state == nullptr)
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine and state must not be NULL");
    return guarded([&] {
        *state = engine->core.state(server);
        return AEGISFWD_OK;
    });
}

aegisfwd_status aegisfwd_get_states(const aegisfwd_engine* engine, uint8_t* states, size_t n) {
    if (engine == nullptr || (states == nullptr && n != 0))
        return set_error(AEGISFWD_E_INVALID_ARGUMENT, "engine and states must not be NULL");
    return guarded([&] {
        engine->core.get_states(states, n);
        return AEGISFWD_OK;
    });
}

aegisfwd_status aegisfwd_ip_text(const aegisfwd_engine* engine, int32_t ip, char* buf, size_t size,
                                 size_t* needed) {
    const char* data = nullptr;
    size_t len = 0;
    const aegisfwd_status st = aegisfwd_id(engine, AEGISFWD_KIND_IP, ip, &data, &len);
    if (st != AEGISFWD_OK) return st;
    if (needed != nullptr) *needed = len + 1;
    if (buf == nullptr || size < len + 1)
        return set_error(AEGISFWD_E_BUFFER_TOO_SMALL,
                         "the IP text needs " + std::to_string(len + 1) + " bytes, the buffer has " + std::to_string(size));
    std::memcpy(buf, data, len);
    buf[len] = '\0';
    return AEGISFWD_OK;
}

aegisfwd_status aegisfwd_ip_get(const aegisfwd_engine* engine, int32_t ip, aegisfwd_ip* out) {
    if (out == nullptr) return set_error(AEGISFWD_E_INVALID_ARGUMENT, "out must not be NULL");
    char text[64];
    const aegisfwd_status st = aegisfwd_ip_text(engine, ip, text, sizeof text, nullptr);
    if (st != AEGISFWD_OK) return st;
    std::memset(out, 0, sizeof *out);
    out->family = engine->file->tables().ip_family[static_cast<std::size_t>(ip)];
    out->prefix_length = engine->file->ip_prefix_length()[static_cast<std::size_t>(ip)];
    if (char* slash = std::strchr(text, '/')) *slash = '\0';
    if (inet_pton(out->family == 4 ? AF_INET : AF_INET6, text, out->address) != 1)
        return set_error(AEGISFWD_E_CORRUPT_FILE, std::string("IP ") + std::to_string(ip) + " has text '" + text +
                                                      "', not an IPv" + std::to_string(out->family) + " address");
    return AEGISFWD_OK;
}

}  // extern "C"
