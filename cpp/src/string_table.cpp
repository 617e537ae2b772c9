// check_string_table(): well-formed offsets and unique ids.
#include "aegisfwd/string_table.hpp"

#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "checks.hpp"

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
    // An open-addressing set of row numbers (load factor <= 1/2): a node-based unordered_map cost
    // an allocation per id, the better part of a load of the world file (186,000 ids).
    const char* base = reinterpret_cast<const char*>(bytes.data);
    const auto id_at = [&](std::size_t k) {
        return std::string_view(base + offsets[k], static_cast<std::size_t>(offsets[k + 1] - offsets[k]));
    };
    std::size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    constexpr std::size_t kEmpty = std::numeric_limits<std::size_t>::max();
    std::vector<std::size_t> slots(capacity, kEmpty);
    const std::hash<std::string_view> hash;
    for (std::size_t k = 0; k < n; ++k) {
        const std::string_view id = id_at(k);
        for (std::size_t at = hash(id) & (capacity - 1);; at = (at + 1) & (capacity - 1)) {
            if (slots[at] == kEmpty) {
                slots[at] = k;
                break;
            }
            if (id_at(slots[at]) == id)
                fail(bytes_name, static_cast<std::int64_t>(k),
                     "id '" + shown(id) + "' repeats row " + std::to_string(slots[at]) + " (ids must be unique)");
        }
    }
}

}  // namespace aegisfwd
