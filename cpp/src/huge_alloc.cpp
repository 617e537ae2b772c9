// See aegisfwd/huge_alloc.hpp.
#include "aegisfwd/huge_alloc.hpp"

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace aegisfwd::detail {
namespace {
constexpr std::size_t kHugePage = std::size_t{1} << 21;
constexpr std::size_t kHugeMin = std::size_t{1} << 20;  // smaller buffers: plain malloc
}  // namespace

void* huge_allocate(std::size_t bytes) {
    void* p = nullptr;
    if (bytes >= kHugeMin) {
        const std::size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        p = std::aligned_alloc(kHugePage, size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (p != nullptr) madvise(p, size, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
    } else {
        p = std::malloc(bytes == 0 ? 1 : bytes);
    }
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

void huge_free(void* p) noexcept { std::free(p); }

}  // namespace aegisfwd::detail
