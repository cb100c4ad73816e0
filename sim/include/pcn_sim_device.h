// The CUDA device language for the pyconvnet simulator: what nvcc provides to kernels, written
// in C++ so that g++ compiles cuda/*.cu unchanged. Kernels run as fibers (one per CUDA thread)
// in sim/engine.cpp; the thread indices below read the running fiber's state.
//   - __global__/__device__/__host__/__forceinline__/__launch_bounds__ become plain C++.
//   - __shared__ variables are thread_local: a block runs entirely on one worker thread, and
//     a worker runs one block at a time, so each block sees its own copy.
//   - __syncthreads*, __syncwarp, shuffles, votes and __activemask are scheduling points of the
//     engine, which checks that every thread they name takes part (synccheck).
//   - atomics use the compiler's atomic builtins: blocks run in parallel on several workers.
#pragma once
#include <math.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <typeinfo>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __constant__

namespace pcn_sim {

struct Fiber;
// The CUDA built-in variables of the running thread.
struct ThreadState {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  Fiber* fiber;
};

// Scheduling points. The call site (file, line) identifies a barrier or warp operation for
// synccheck: every thread that meets must be at the same one.
enum class Sync : int {
  kBlock, kBlockCount, kBlockAnd, kBlockOr,
  kWarp, kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll,
  kMma,
};
int block_barrier(Sync kind, int predicate, const char* file, int line);
uint64_t warp_op(Sync kind, unsigned mask, uint64_t value, int arg, int width, const char* file,
                 int line);
// A warp-wide exchange of `bytes` (at most kMaxGatherBytes) from each lane of `mask`, for the
// twins of warp-wide instructions (sim/include/pcn_sim_ptx.h): a scheduling point like a
// shuffle, checked the same way, that returns the 32 lanes' values side by side (lane j's at
// byte j * bytes; lanes outside the mask unset). The result stays valid until the calling lane
// reaches its next scheduling point.
constexpr size_t kMaxGatherBytes = 64;
const void* warp_gather(Sync kind, unsigned mask, const void* mine, size_t bytes, const char* file,
                        int line);
unsigned active_mask();
// The launch's dynamic shared memory (the launch's smem bytes, NaN-filled for each block).
void* dynamic_shared();

// Queues kernel `name` (grid x block threads, `smem` bytes of dynamic shared memory) on
// `stream`; `body` runs the kernel for the current thread; `type` (the kernel's function type)
// names a template kernel's arguments in messages. Configuration errors are reported through
// cudaGetLastError, as a real launch reports them.
void launch(const char* name, const std::type_info& type, const void* kernel, dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, std::function<void()> body);

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                "warp operations move values of at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

}  // namespace pcn_sim

extern __thread pcn_sim::ThreadState* pcn_sim_thread;

#define threadIdx (static_cast<const uint3&>(pcn_sim_thread->thread_idx))
#define blockIdx (static_cast<const uint3&>(pcn_sim_thread->block_idx))
#define blockDim (static_cast<const dim3&>(pcn_sim_thread->block_dim))
#define gridDim (static_cast<const dim3&>(pcn_sim_thread->grid_dim))
constexpr int warpSize = 32;

// ------------------------------------------------------------------------------------ barriers
// The empty asm statements keep the compiler from moving shared-memory accesses across a
// scheduling point.
#define PCN_SIM_FENCE() asm volatile("" ::: "memory")

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  PCN_SIM_FENCE();
  pcn_sim::block_barrier(pcn_sim::Sync::kBlock, 0, file, line);
  PCN_SIM_FENCE();
}
inline int __syncthreads_count(int p, const char* file = __builtin_FILE(),
                               int line = __builtin_LINE()) {
  PCN_SIM_FENCE();
  const int r = pcn_sim::block_barrier(pcn_sim::Sync::kBlockCount, p != 0, file, line);
  PCN_SIM_FENCE();
  return r;
}
inline int __syncthreads_and(int p, const char* file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
  PCN_SIM_FENCE();
  const int r = pcn_sim::block_barrier(pcn_sim::Sync::kBlockAnd, p != 0, file, line);
  PCN_SIM_FENCE();
  return r;
}
inline int __syncthreads_or(int p, const char* file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
  PCN_SIM_FENCE();
  const int r = pcn_sim::block_barrier(pcn_sim::Sync::kBlockOr, p != 0, file, line);
  PCN_SIM_FENCE();
  return r;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  PCN_SIM_FENCE();
  pcn_sim::warp_op(pcn_sim::Sync::kWarp, mask, 0, 0, warpSize, file, line);
  PCN_SIM_FENCE();
}
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// --------------------------------------------------------------------------- warp operations
inline unsigned __activemask() { return pcn_sim::active_mask(); }

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return pcn_sim::from_bits<T>(pcn_sim::warp_op(pcn_sim::Sync::kShflIdx, mask,
                                                pcn_sim::to_bits(var), src_lane, width, file, line));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return pcn_sim::from_bits<T>(pcn_sim::warp_op(pcn_sim::Sync::kShflUp, mask,
                                                pcn_sim::to_bits(var), static_cast<int>(delta),
                                                width, file, line));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return pcn_sim::from_bits<T>(pcn_sim::warp_op(pcn_sim::Sync::kShflDown, mask,
                                                pcn_sim::to_bits(var), static_cast<int>(delta),
                                                width, file, line));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return pcn_sim::from_bits<T>(pcn_sim::warp_op(pcn_sim::Sync::kShflXor, mask,
                                                pcn_sim::to_bits(var), lane_mask, width, file,
                                                line));
}
inline unsigned __ballot_sync(unsigned mask, int p, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return static_cast<unsigned>(
      pcn_sim::warp_op(pcn_sim::Sync::kBallot, mask, p != 0, 0, warpSize, file, line));
}
inline int __any_sync(unsigned mask, int p, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return static_cast<int>(
      pcn_sim::warp_op(pcn_sim::Sync::kAny, mask, p != 0, 0, warpSize, file, line));
}
inline int __all_sync(unsigned mask, int p, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return static_cast<int>(
      pcn_sim::warp_op(pcn_sim::Sync::kAll, mask, p != 0, 0, warpSize, file, line));
}

// ------------------------------------------------------------------------------------ atomics
// Each returns the old value, as in CUDA. Relaxed ordering, like the GPU's atomics.
namespace pcn_sim {
template <class T, class F>
T atomic_update(T* p, F f) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(T) == sizeof(Bits), "atomics on 4- and 8-byte values");
  Bits* bp = reinterpret_cast<Bits*>(p);
  Bits old_bits = __atomic_load_n(bp, __ATOMIC_RELAXED);
  for (;;) {
    const T old = from_bits<T>(old_bits);
    const Bits new_bits = static_cast<Bits>(to_bits<T>(f(old)));
    if (__atomic_compare_exchange_n(bp, &old_bits, new_bits, true, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      return old;
  }
}
}  // namespace pcn_sim

template <class T>
T atomicAdd(T* p, T v) {
  if constexpr (std::is_integral<T>::value) return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  else return pcn_sim::atomic_update(p, [v](T old) { return old + v; });
}
template <class T>
T atomicSub(T* p, T v) {
  return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
}
template <class T>
T atomicExch(T* p, T v) {
  return pcn_sim::atomic_update(p, [v](T) { return v; });
}
template <class T>
T atomicMin(T* p, T v) {
  return pcn_sim::atomic_update(p, [v](T old) { return v < old ? v : old; });
}
template <class T>
T atomicMax(T* p, T v) {
  return pcn_sim::atomic_update(p, [v](T old) { return v > old ? v : old; });
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
template <class T>
T atomicAnd(T* p, T v) {
  return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
}
template <class T>
T atomicOr(T* p, T v) {
  return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
template <class T>
T atomicXor(T* p, T v) {
  return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED);
}
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return pcn_sim::atomic_update(p, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  return pcn_sim::atomic_update(
      p, [limit](unsigned old) { return old == 0 || old > limit ? limit : old - 1; });
}

// ---------------------------------------------------------------------------- math intrinsics
// min/max as CUDA declares them for device code (the usual arithmetic conversions apply).
template <class A, class B>
__forceinline__ std::common_type_t<A, B> min(A a, B b) {
  using T = std::common_type_t<A, B>;
  return static_cast<T>(b) < static_cast<T>(a) ? static_cast<T>(b) : static_cast<T>(a);
}
template <class A, class B>
__forceinline__ std::common_type_t<A, B> max(A a, B b) {
  using T = std::common_type_t<A, B>;
  return static_cast<T>(a) < static_cast<T>(b) ? static_cast<T>(b) : static_cast<T>(a);
}
template <class T>
__forceinline__ T __ldg(const T* p) { return *p; }
__forceinline__ float rsqrtf(float x) { return 1.0f / sqrtf(x); }
__forceinline__ float __expf(float x) { return expf(x); }
__forceinline__ float __logf(float x) { return logf(x); }
__forceinline__ float __powf(float x, float y) { return powf(x, y); }
__forceinline__ float __fdividef(float x, float y) { return x / y; }
__forceinline__ float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
__forceinline__ float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
__forceinline__ float __fadd_rn(float a, float b) { return a + b; }
__forceinline__ float __fmul_rn(float a, float b) { return a * b; }
__forceinline__ int __float_as_int(float x) { return pcn_sim::from_bits<int>(pcn_sim::to_bits(x)); }
__forceinline__ unsigned __float_as_uint(float x) {
  return pcn_sim::from_bits<unsigned>(pcn_sim::to_bits(x));
}
__forceinline__ float __int_as_float(int x) { return pcn_sim::from_bits<float>(pcn_sim::to_bits(x)); }
__forceinline__ float __uint_as_float(unsigned x) {
  return pcn_sim::from_bits<float>(pcn_sim::to_bits(x));
}
__forceinline__ int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
__forceinline__ int __float2int_rz(float x) { return static_cast<int>(x); }
__forceinline__ int __popc(unsigned x) { return __builtin_popcount(x); }
__forceinline__ int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
__forceinline__ int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
__forceinline__ int __ffs(int x) { return __builtin_ffs(x); }
__forceinline__ unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
__forceinline__ unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
__forceinline__ unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}

// ------------------------------------------------------------------------------- vector types
#define PCN_SIM_VEC2(T, N, A)                                                           \
  struct alignas(A) N##2 { T x, y; };                                                   \
  __forceinline__ N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define PCN_SIM_VEC3(T, N)                                                              \
  struct N##3 { T x, y, z; };                                                           \
  __forceinline__ N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define PCN_SIM_VEC4(T, N, A)                                                           \
  struct alignas(A) N##4 { T x, y, z, w; };                                             \
  __forceinline__ N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
PCN_SIM_VEC2(float, float, 8) PCN_SIM_VEC3(float, float) PCN_SIM_VEC4(float, float, 16)
PCN_SIM_VEC2(int, int, 8) PCN_SIM_VEC3(int, int) PCN_SIM_VEC4(int, int, 16)
PCN_SIM_VEC2(unsigned int, uint, 8) PCN_SIM_VEC4(unsigned int, uint, 16)
PCN_SIM_VEC2(double, double, 16) PCN_SIM_VEC4(double, double, 16)
PCN_SIM_VEC2(unsigned char, uchar, 2) PCN_SIM_VEC4(unsigned char, uchar, 4)
PCN_SIM_VEC2(char, char, 2) PCN_SIM_VEC4(char, char, 4)
PCN_SIM_VEC2(short, short, 4) PCN_SIM_VEC4(short, short, 8)
#undef PCN_SIM_VEC2
#undef PCN_SIM_VEC3
#undef PCN_SIM_VEC4
__forceinline__ uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ------------------------------------------------------------------- inline-PTX twins
#include "pcn_sim_ptx.h"
