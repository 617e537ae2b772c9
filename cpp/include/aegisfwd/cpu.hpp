// What the running CPU can execute, for the kernels chosen at run time (engine, ingress choice).
// Compiled for the baseline instruction set; false on non-x86 builds and compilers without
// __builtin_cpu_supports.
#pragma once

namespace aegisfwd::cpu {

bool has_avx2();
// AVX-512 F, DQ, BW and VL: every AVX-512 kernel of the project may use any of them.
bool has_avx512();

}  // namespace aegisfwd::cpu
