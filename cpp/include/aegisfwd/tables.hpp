// Raw, non-owning view of the compiled topology arrays (docs/compiled-format.md, format v1).
//
// Every array is a pointer plus its element count, so a memory-mapped file is read in place. The
// view trusts nothing: `validate()` checks every length, index range and CSR structure the engine
// relies on and throws std::invalid_argument naming the offending array, so that an engine built
// from a corrupt buffer never reads outside one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace aegisfwd {

template <class T>
struct ArrayView {
    const T* data = nullptr;
    std::size_t size = 0;  // number of elements (not bytes)

    const T& operator[](std::size_t i) const noexcept { return data[i]; }
};

// Sizes of the index spaces, derived from the array lengths by validate().
struct TableCounts {
    std::int32_t locations = 0;     // L
    std::int32_t dcs = 0;           // D
    std::int32_t servers = 0;       // S
    std::int32_t pools = 0;         // P
    std::int32_t ips = 0;           // I
    std::int32_t groups = 0;        // G = 2P
    std::int32_t holder_ranges = 0; // R
    std::int32_t lists = 0;         // C
    std::int32_t layouts = 0;       // Y
};

struct TablesView {
    // Facts.
    ArrayView<std::int32_t> location_dc_start;      // L+1
    ArrayView<std::int32_t> location_server_start;  // L+1
    ArrayView<std::int32_t> dc_location;            // D
    ArrayView<std::int32_t> dc_server_start;        // D+1
    ArrayView<std::int32_t> server_dc;              // S
    ArrayView<std::int32_t> server_location;        // S
    ArrayView<std::uint64_t> server_key;            // S
    ArrayView<std::uint8_t> server_initial_state;   // S
    ArrayView<std::int32_t> ip_pool;                // I
    ArrayView<std::uint8_t> ip_family;              // I
    ArrayView<std::uint64_t> ip_key;                // I
    ArrayView<std::int32_t> ip_holder_start;        // I+1
    ArrayView<std::int32_t> ip_holder_ranges;       // 2R (R x 2, row-major)
    ArrayView<std::int32_t> group_ip_start;         // G+1
    ArrayView<std::int32_t> group_ips;              // I
    ArrayView<double> location_distance;            // L*L
    // Derived.
    ArrayView<std::int32_t> nearest_order;          // L*L
    ArrayView<std::int32_t> nearest_rank;           // L*L
    ArrayView<std::int32_t> list_location;          // C
    ArrayView<std::int32_t> list_server_start;      // C+1
    ArrayView<std::int32_t> list_servers;           // *
    ArrayView<std::int32_t> layout_start;           // Y+1
    ArrayView<std::int32_t> layout_location;        // *
    ArrayView<std::int32_t> layout_list;            // *
    ArrayView<std::int32_t> group_layout;           // G

    // Checks every structural invariant the engine relies on, then that the derived candidate
    // tables agree with the facts (check_derived_against_facts, crosscheck.hpp), so that any answer
    // of an engine built on these tables is a (server, IP) pair the facts support. Throws
    // std::invalid_argument ("array 'server_dc' holds index 70000 outside [0, 60000) at row 12")
    // on the first violation. Returns the sizes of the index spaces. This is the one validator of
    // compiled tables: load_compiled and every engine constructor run it.
    TableCounts validate() const;
    // The structural half of validate() alone: safe indexing, not yet true answers.
    TableCounts validate_structure() const;
};

// Names of the arrays a TablesView reads, in declaration order (for bindings and messages).
inline constexpr const char* kTableArrayNames[] = {
    "location_dc_start", "location_server_start", "dc_location", "dc_server_start", "server_dc",
    "server_location", "server_key", "server_initial_state", "ip_pool", "ip_family", "ip_key",
    "ip_holder_start", "ip_holder_ranges", "group_ip_start", "group_ips", "location_distance",
    "nearest_order", "nearest_rank", "list_location", "list_server_start", "list_servers",
    "layout_start", "layout_location", "layout_list", "group_layout",
};

}  // namespace aegisfwd
