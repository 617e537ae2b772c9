// The one allocator for large, randomly read buffers (the engine's derived tables, the result
// columns the bindings hand to numpy): 2 MiB-aligned and advised as transparent huge pages on
// Linux, since TLB misses are a large part of a random read's cost and the first write to a huge
// page is one fault per 2 MiB instead of one per 4 KiB.
#pragma once
#include <cstddef>
#include <vector>

namespace aegisfwd::detail {

// At least `bytes` (never nullptr; std::bad_alloc when out of memory). Buffers of 1 MiB or more
// are huge-page aligned and advised; smaller ones come from malloc. Free with huge_free.
void* huge_allocate(std::size_t bytes);
// Frees a pointer from huge_allocate (nullptr is fine). No size needed, so a capsule destructor
// that only has the pointer can free a buffer.
void huge_free(void* p) noexcept;

template <class T>
struct HugeAllocator {
    using value_type = T;
    HugeAllocator() noexcept = default;
    template <class U>
    HugeAllocator(const HugeAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(huge_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { huge_free(p); }
    template <class U>
    bool operator==(const HugeAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const HugeAllocator<U>&) const noexcept { return false; }
};

template <class T>
using huge_vector = std::vector<T, HugeAllocator<T>>;

}  // namespace aegisfwd::detail
