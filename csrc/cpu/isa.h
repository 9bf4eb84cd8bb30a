// Runtime instruction-set dispatch for the CPU loops. Each hot loop is a
// plain C++ function marked FASTOPT_CLONES: GCC compiles one clone per
// instruction set and picks one at load time (ifunc), so the wheel carries
// AVX-512, AVX2 and baseline code and never needs a host-specific -march flag.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FASTOPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTOPT_CLONES
#endif

namespace fastopt {
// The clone the loader picks on this CPU: "avx512" (x86-64-v4), "avx2"
// (x86-64-v3) or "baseline".
const char* active_isa();
}  // namespace fastopt
