// The check helpers every validator of compiled arrays uses (tables.cpp for the engine's arrays,
// compiled_file.cpp for the arrays only the file carries), so that one invariant has one wording:
//
//   array 'server_dc' holds index 70000 outside [0, 60000) at row 12
//   array 'dc_server_start' ends at 4, expected 5
//   array 'layout_start' decreases at row 2 (5 > 3)
//
// Each throws std::invalid_argument; CompiledFile turns it into a CompiledFileError.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aegisfwd/tables.hpp"

namespace aegisfwd::checks {

// "array '<name>' <what>"
[[noreturn]] inline void fail(const char* name, const std::string& what) {
    throw std::invalid_argument(std::string("array '") + name + "' " + what);
}

inline std::string row(std::size_t r) { return "row " + std::to_string(r); }
// A cell of a two-dimensional array.
inline std::string cell(std::size_t r, std::size_t col) { return row(r) + ", column " + std::to_string(col); }

[[noreturn]] inline void out_of_range(const char* name, std::int64_t value, std::int64_t lo, std::int64_t hi,
                                      const std::string& where) {
    fail(name, "holds index " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   ") at " + where);
}
// These run once per element of large arrays: the message is built only on failure.
inline void index(const char* name, std::int64_t value, std::int64_t lo, std::int64_t hi, std::size_t r) {
    if (value < lo || value >= hi) out_of_range(name, value, lo, hi, row(r));
}
inline void index(const char* name, std::int64_t value, std::int64_t lo, std::int64_t hi, std::size_t r,
                  std::size_t col) {
    if (value < lo || value >= hi) out_of_range(name, value, lo, hi, cell(r, col));
}

// Every element of `a` in [lo, hi).
template <class T>
void indices(const char* name, const ArrayView<T>& a, std::int64_t lo, std::int64_t hi) {
    for (std::size_t r = 0; r < a.size; ++r) index(name, static_cast<std::int64_t>(a[r]), lo, hi, r);
}

template <class T>
void need_data(const char* name, const ArrayView<T>& a) {
    if (a.size > 0 && a.data == nullptr) fail(name, "has a null data pointer");
}

template <class T>
void need_size(const char* name, const ArrayView<T>& a, std::size_t n) {
    need_data(name, a);
    if (a.size != n) fail(name, "has " + std::to_string(a.size) + " elements, expected " + std::to_string(n));
}

// A CSR start array of n+1 elements: starts at 0, ends at `total`, never decreases.
template <class T>
void offsets(const char* name, const ArrayView<T>& a, std::size_t n, std::int64_t total) {
    need_size(name, a, n + 1);
    if (a[0] != 0) fail(name, "starts at " + std::to_string(a[0]) + ", not 0");
    if (static_cast<std::int64_t>(a[n]) != total)
        fail(name, "ends at " + std::to_string(a[n]) + ", expected " + std::to_string(total));
    for (std::size_t i = 0; i < n; ++i)
        if (a[i + 1] < a[i])
            fail(name, "decreases at " + row(i + 1) + " (" + std::to_string(a[i]) + " > " + std::to_string(a[i + 1]) +
                           ")");
}

}  // namespace aegisfwd::checks
