// Id string tables of a compiled topology (docs/compiled-format.md: `<kind>_id_bytes` and
// `<kind>_id_offsets`): offsets that slice the bytes, and ids that are unique within their kind.
#pragma once
#include <cstdint>

#include "aegisfwd/tables.hpp"

namespace aegisfwd {

// Throws std::invalid_argument naming the array and row: offsets must start at 0, never decrease
// and end at bytes.size; no two ids may be equal ("array 'server_id_bytes' row 7: id 'lhr01-s001'
// repeats row 2"). Two servers (pools, IPs, ...) with one id would make lookups by id pick one of
// them silently, so a file holding them is refused.
void check_string_table(const char* bytes_name, const char* offsets_name, const ArrayView<std::uint8_t>& bytes,
                        const ArrayView<std::int64_t>& offsets);

}  // namespace aegisfwd
