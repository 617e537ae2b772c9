// A named POSIX shared-memory segment (shm_open + mmap MAP_SHARED): created once by one process,
// mapped by any number of others. Knows nothing of what is stored in it (see engine.cpp for the
// shared engine's layout, docs/engine.md "Many processes, one state").
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace aegisfwd {

// Anything wrong with a shared segment: a missing name, a foreign, truncated or unfinished segment,
// one built for other tables, or a failed system call (the message names the segment and the cause).
class SharedSegmentError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

class SharedSegment {
public:
    // Names are 1-200 characters of [A-Za-z0-9._-] (the segment is /dev/shm/<name>); else
    // SharedSegmentError.
    static void check_name(const std::string& name);

    // A new segment of `bytes` bytes (zero-filled), mode 0600; fails if the name exists.
    static SharedSegment create(const std::string& name, std::size_t bytes);
    // Maps an existing segment, its whole current size (at least `min_bytes`, else "truncated").
    static SharedSegment open(const std::string& name, std::size_t min_bytes);
    // Removes the name (mappings stay valid until unmapped). False when it did not exist.
    static bool unlink(const std::string& name);

    SharedSegment() = default;
    SharedSegment(SharedSegment&& o) noexcept { *this = static_cast<SharedSegment&&>(o); }
    SharedSegment& operator=(SharedSegment&& o) noexcept;
    SharedSegment(const SharedSegment&) = delete;
    SharedSegment& operator=(const SharedSegment&) = delete;
    ~SharedSegment();

    std::uint8_t* data() const noexcept { return base_; }
    std::size_t size() const noexcept { return size_; }
    const std::string& name() const noexcept { return name_; }

    // Makes [offset, offset + bytes) read-only in this process (page-aligned offset).
    void protect_read_only(std::size_t offset, std::size_t bytes) const;

private:
    std::uint8_t* base_ = nullptr;
    std::size_t size_ = 0;
    std::size_t map_bytes_ = 0;  // the reservation to unmap (the mapping is 2 MiB-aligned inside it)
    std::uint8_t* map_base_ = nullptr;
    std::string name_;
};

}  // namespace detail
}  // namespace aegisfwd
