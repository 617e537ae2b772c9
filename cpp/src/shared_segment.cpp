// See aegisfwd/shared_segment.hpp.
#include "aegisfwd/shared_segment.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace aegisfwd::detail {
namespace {

constexpr std::size_t kHugePage = std::size_t{1} << 21;

std::string why(int err) { return std::strerror(err); }

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// Maps `bytes` of `fd` at a 2 MiB-aligned address, so that the kernel can back the segment with
// transparent huge pages where tmpfs allows it (/sys/kernel/mm/transparent_hugepage/shmem_enabled
// "advise" or "always"): the derived tables are read at random.
void map_aligned(int fd, std::size_t bytes, const std::string& name, std::uint8_t*& base, std::uint8_t*& map_base,
                 std::size_t& map_bytes) {
    const std::size_t reserve = bytes + kHugePage;
    void* r = ::mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) throw SharedSegmentError("shared engine '" + name + "': cannot reserve address space: " + why(errno));
    auto* lo = static_cast<std::uint8_t*>(r);
    auto* aligned = reinterpret_cast<std::uint8_t*>((reinterpret_cast<std::uintptr_t>(lo) + kHugePage - 1) & ~(kHugePage - 1));
    void* m = ::mmap(aligned, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) {
        const int err = errno;
        ::munmap(r, reserve);
        throw SharedSegmentError("shared engine '" + name + "': cannot map the segment: " + why(err));
    }
#if defined(MADV_HUGEPAGE)
    ::madvise(m, bytes, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
    // Give back the unused parts of the reservation around the mapping.
    if (aligned > lo) ::munmap(lo, static_cast<std::size_t>(aligned - lo));
    std::uint8_t* end = aligned + bytes;
    const std::size_t tail = static_cast<std::size_t>((lo + reserve) - end);
    if (tail > 0) ::munmap(end, tail);
    base = aligned;
    map_base = aligned;
    map_bytes = bytes;
}

}  // namespace

void SharedSegment::check_name(const std::string& name) {
    if (name.empty() || name.size() > 200)
        throw SharedSegmentError("shared engine name must be 1-200 characters, got " + std::to_string(name.size()));
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok)
            throw SharedSegmentError("shared engine name '" + name +
                                     "' may only hold letters, digits, '.', '_' and '-'");
    }
    if (name == "." || name == "..") throw SharedSegmentError("shared engine name '" + name + "' is not a file name");
}

SharedSegment SharedSegment::create(const std::string& name, std::size_t bytes) {
    check_name(name);
    const std::string path = "/" + name;
    Fd f;
    f.fd = ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (f.fd < 0) {
        const int err = errno;
        if (err == EEXIST)
            throw SharedSegmentError("shared engine '" + name + "' already exists (/dev/shm/" + name +
                                     "): attach to it, or unlink it first");
        throw SharedSegmentError("cannot create shared engine '" + name + "': " + why(err));
    }
    SharedSegment s;
    s.name_ = name;
    try {
        // posix_fallocate reserves the tmpfs pages now, so a full /dev/shm is an error here rather
        // than a SIGBUS at the first write.
#if defined(__linux__)
        const int err = ::posix_fallocate(f.fd, 0, static_cast<off_t>(bytes));
#else
        const int err = ::ftruncate(f.fd, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
#endif
        if (err != 0)
            throw SharedSegmentError("cannot size shared engine '" + name + "' to " + std::to_string(bytes) +
                                     " bytes: " + why(err));
        map_aligned(f.fd, bytes, name, s.base_, s.map_base_, s.map_bytes_);
        s.size_ = bytes;
    } catch (...) {
        ::shm_unlink(path.c_str());
        throw;
    }
    return s;
}

SharedSegment SharedSegment::open(const std::string& name, std::size_t min_bytes) {
    check_name(name);
    const std::string path = "/" + name;
    Fd f;
    f.fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (f.fd < 0) {
        const int err = errno;
        if (err == ENOENT)
            throw SharedSegmentError("no shared engine named '" + name + "' (/dev/shm/" + name + " does not exist)");
        throw SharedSegmentError("cannot open shared engine '" + name + "': " + why(err));
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) throw SharedSegmentError("cannot stat shared engine '" + name + "': " + why(errno));
    const auto bytes = static_cast<std::size_t>(st.st_size);
    if (bytes < min_bytes)
        throw SharedSegmentError("shared engine '" + name + "' is truncated or not an aegisfwd segment: " +
                                 std::to_string(bytes) + " bytes, the header alone needs " + std::to_string(min_bytes));
    SharedSegment s;
    s.name_ = name;
    map_aligned(f.fd, bytes, name, s.base_, s.map_base_, s.map_bytes_);
    s.size_ = bytes;
    return s;
}

bool SharedSegment::unlink(const std::string& name) {
    check_name(name);
    const std::string path = "/" + name;
    if (::shm_unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw SharedSegmentError("cannot unlink shared engine '" + name + "': " + why(errno));
}

SharedSegment& SharedSegment::operator=(SharedSegment&& o) noexcept {
    if (this != &o) {
        if (map_base_ != nullptr) ::munmap(map_base_, map_bytes_);
        base_ = o.base_;
        size_ = o.size_;
        map_base_ = o.map_base_;
        map_bytes_ = o.map_bytes_;
        name_ = static_cast<std::string&&>(o.name_);
        o.base_ = o.map_base_ = nullptr;
        o.size_ = o.map_bytes_ = 0;
    }
    return *this;
}

SharedSegment::~SharedSegment() {
    if (map_base_ != nullptr) ::munmap(map_base_, map_bytes_);
}

void SharedSegment::protect_read_only(std::size_t offset, std::size_t bytes) const {
    if (bytes == 0) return;
    if (::mprotect(base_ + offset, bytes, PROT_READ) != 0)
        throw SharedSegmentError("shared engine '" + name_ + "': cannot protect its tables: " + why(errno));
}

}  // namespace aegisfwd::detail
