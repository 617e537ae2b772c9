// The kernels for any CPU (compiled with the project's default flags): the generic kernel table.
#define AEGISFWD_KERNEL_ISA 0
#define AEGISFWD_KERNEL_WANT 0
#define AEGISFWD_KERNEL_TABLE kernels_generic
#include "kernel_table_impl.hpp"
