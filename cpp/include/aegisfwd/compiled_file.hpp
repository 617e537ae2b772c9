// A compiled topology file (docs/compiled-format.md, format version 1), opened and validated in C++.
//
// The one loader of compiled files: Python's `aegisfwd.compiled.load_compiled` calls it (through
// `_core.compiled.check_compiled`), and embedders that never load Python (the C ABI, include/aegisfwd.h) open
// files through it. It checks magic, prefix, version, length, header CRC, header JSON schema, the
// payload CRC (on a second thread for a large file), then every invariant of the arrays:
// TablesView::validate (structure and derived tables against facts), the arrays only a file carries,
// and unique ids. It fails with a CompiledFileError naming the first problem; the arrays are read
// in place.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "aegisfwd/hashing.hpp"
#include "aegisfwd/tables.hpp"

namespace aegisfwd {

class CompiledFileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The file cannot be opened or mapped at all (errno-style reasons).
class CompiledFileIoError : public CompiledFileError {
public:
    using CompiledFileError::CompiledFileError;
};

inline constexpr std::uint32_t kCompiledFormatVersion = 1;
// The hashing scheme a file was compiled for must be this build's kHashSchemeVersion (hashing.hpp).

// Id string tables stored in the file.
enum class IdKind : int { location = 0, dc = 1, server = 2, pool = 3, ip = 4, zone = 5 };

class CompiledFile {
public:
    // Memory-maps `path` read-only and validates it (`verify`: also the payload CRC-32).
    // Throws CompiledFileIoError when the file cannot be read, CompiledFileError ("<path>: <reason>")
    // when it is not a valid compiled topology.
    static std::unique_ptr<CompiledFile> open(const std::string& path, bool verify = true);
    // Validates `size` bytes at `data` (8-byte aligned), which the caller keeps alive and unchanged.
    static std::unique_ptr<CompiledFile> from_buffer(const void* data, std::size_t size, bool verify = true);

    CompiledFile(const CompiledFile&) = delete;
    CompiledFile& operator=(const CompiledFile&) = delete;
    ~CompiledFile();

    // The arrays the engine reads (valid while this object lives).
    const TablesView& tables() const noexcept { return tables_; }
    // Header counts ("servers", "pools", "zone_id_bytes", ...); -1 for an unknown name.
    std::int64_t count(const std::string& name) const;
    const std::string& distance_unit() const noexcept { return distance_unit_; }

    std::size_t id_count(IdKind kind) const noexcept;
    // Id `index` of `kind` as UTF-8 bytes inside the mapping (index must be < id_count(kind)).
    std::string_view id(IdKind kind, std::size_t index) const noexcept;
    const ArrayView<std::uint8_t>& ip_prefix_length() const noexcept { return ip_prefix_length_; }
    const ArrayView<std::int32_t>& zone_pool() const noexcept { return zone_pool_; }

private:
    CompiledFile() = default;
    void parse(bool verify);
    void check_arrays() const;

    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    void* map_ = nullptr;  // munmap'ed by the destructor when set
    std::size_t map_size_ = 0;

    TablesView tables_;
    std::map<std::string, std::int64_t> counts_;
    std::string distance_unit_;
    ArrayView<std::uint8_t> id_bytes_[6];
    ArrayView<std::int64_t> id_offsets_[6];
    ArrayView<std::uint8_t> ip_prefix_length_;
    ArrayView<std::int32_t> zone_pool_;
    ArrayView<std::int64_t> list_bit_start_;
    ArrayView<std::uint64_t> list_bits_;
};

// The schema the loader checks, for tests that hold the Python writer to it: every array of the
// format in file order as (name, numpy dtype string, dimensions: a count name, "count+1" or a
// decimal literal), and the header's count names.
struct ArraySchema {
    std::string name;
    std::string dtype;
    std::vector<std::string> dims;
};
std::vector<ArraySchema> compiled_array_schema();
std::vector<std::string> compiled_count_names();

// CRC-32 (zlib's polynomial), continuing from `crc` (0 to start).
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

}  // namespace aegisfwd
