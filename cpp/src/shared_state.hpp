// Internal: what a shared engine holds besides its pointers (engine.cpp needs the complete type to
// destroy it; engine_shared.cpp gives it meaning).
#pragma once
#include "aegisfwd/shared_segment.hpp"

namespace aegisfwd::detail {

struct SharedState {
    SharedSegment seg;  // starts with the SegmentHeader (engine_shared.cpp)
};

}  // namespace aegisfwd::detail
