// Runtime instruction-set dispatch for the CPU loops. Each hot loop is a
// plain C++ function marked FASTOPT_CLONES: GCC compiles one clone per
// instruction set and picks one at load time (ifunc), so the wheel carries
// AVX-512, AVX2 and baseline code and never needs a host-specific -march flag.
#pragma once

//
// FASTOPT_X86_GCC: GCC on x86-64, where the clones exist and where the few
// loops written with AVX2 intrinsics (target("avx2") functions) are built;
// those run only when cpu_has_avx2() (target("avx2,fma") ones when
// cpu_has_avx2_fma()).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FASTOPT_X86_GCC 1
#define FASTOPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTOPT_X86_GCC 0
#define FASTOPT_CLONES
#endif

namespace fastopt {
// The clone the loader picks on this CPU: "avx512" (x86-64-v4), "avx2"
// (x86-64-v3) or "baseline".
const char* active_isa();
// Whether this CPU runs AVX2 code (checked once).
bool cpu_has_avx2();
// Whether it runs AVX2 and FMA3 code (target("avx2,fma") loops; checked once).
bool cpu_has_avx2_fma();
// Whether it runs AVX-512 F, BW, DQ, VL and VBMI code (byte permutes; checked once).
bool cpu_has_avx512_vbmi();
}  // namespace fastopt
