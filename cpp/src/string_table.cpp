// check_string_table(): well-formed offsets and unique ids.
#include "aegisfwd/string_table.hpp"

#include "checks.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace aegisfwd {
namespace {

[[noreturn]] void fail(const char* array, std::int64_t row, const std::string& what) {
    throw std::invalid_argument(std::string("array '") + array + "' row " + std::to_string(row) + ": " + what);
}

// An id for a message: printable ASCII kept, anything else escaped, long ids cut.
std::string shown(std::string_view id) {
    std::string out;
    for (const char ch : id.substr(0, 64)) {
        const auto u = static_cast<unsigned char>(ch);
        if (u >= 0x20 && u < 0x7f && ch != '\'' && ch != '\\') {
            out += ch;
        } else {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
    return id.size() > 64 ? out + "..." : out;
}

}  // namespace

void check_string_table(const char* bytes_name, const char* offsets_name, const ArrayView<std::uint8_t>& bytes,
                        const ArrayView<std::int64_t>& offsets) {
    if (offsets.size == 0) fail(offsets_name, 0, "is empty, expected n+1 offsets");
    if (offsets.data == nullptr || (bytes.size > 0 && bytes.data == nullptr))
        fail(offsets_name, 0, "has a null data pointer");
    const std::size_t n = offsets.size - 1;
    checks::offsets(offsets_name, offsets, n, static_cast<std::int64_t>(bytes.size));
    std::unordered_map<std::string_view, std::size_t> seen;
    seen.reserve(n);
    const char* base = reinterpret_cast<const char*>(bytes.data);
    for (std::size_t k = 0; k < n; ++k) {
        const std::string_view id(base + offsets[k], static_cast<std::size_t>(offsets[k + 1] - offsets[k]));
        const auto [it, fresh] = seen.emplace(id, k);
        if (!fresh)
            fail(bytes_name, static_cast<std::int64_t>(k),
                 "id '" + shown(id) + "' repeats row " + std::to_string(it->second) + " (ids must be unique)");
    }
}

}  // namespace aegisfwd
