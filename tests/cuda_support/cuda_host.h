// Just enough of CUDA's execution model to run tessera's emitted kernels on the host CPU,
// for tests/cuda_emulated.rs (this machine has no GPU).
//
// A launch runs the grid's blocks one after another; the threads of a block are OS
// threads, so __syncthreads is a barrier over the block and the warp shuffles exchange
// values through a per-warp slot array between two barriers over the warp. __shared__
// variables are function statics: one copy, which is right because only one block runs
// at a time and every thread of the block finishes it before the next block starts.
// f16 is the compiler's _Float16; bf16 is converted with round-to-nearest-even, as
// __float2bfloat16_rn does.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <memory>
#include <thread>
#include <vector>

using std::isinf;
using std::isnan;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }

template <class To, class From>
inline To th_bits(From f) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To t;
  std::memcpy(&t, &f, sizeof t);
  return t;
}
inline float __uint_as_float(unsigned u) { return th_bits<float>(u); }
inline unsigned __float_as_uint(float f) { return th_bits<unsigned>(f); }
inline float __int_as_float(int i) { return th_bits<float>(i); }
inline double __longlong_as_double(long long i) { return th_bits<double>(i); }
inline long long __double_as_longlong(double d) { return th_bits<long long>(d); }

typedef _Float16 __half;
inline float __half2float(__half h) { return (float)h; }
inline __half __float2half_rn(float f) { return (__half)f; }
inline __half __ushort_as_half(unsigned short u) { return th_bits<__half>(u); }
inline unsigned short __half_as_ushort(__half h) { return th_bits<unsigned short>(h); }

struct __nv_bfloat16 {
  unsigned short bits;
};
inline float __bfloat162float(__nv_bfloat16 b) { return th_bits<float>((unsigned)b.bits << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  unsigned u = th_bits<unsigned>(f);
  if (std::isnan(f)) return {(unsigned short)((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {(unsigned short)(u >> 16)};
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return {u}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }

inline unsigned long long atomicOr(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}

namespace th {
struct Block {
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<unsigned long long> slots;
};
inline dim3 grid_dim, block_dim;
inline thread_local dim3 thread_idx, block_idx;
inline thread_local unsigned linear = 0;
inline thread_local Block* block = nullptr;

// Runs f for every thread of every block. A kernel that never synchronizes (no
// __syncthreads, no shuffles) runs its threads one after another on the caller's thread:
// the result is the same, and much cheaper than one OS thread per CUDA thread.
template <class F>
void launch(dim3 grid, dim3 blk, bool synchronizes, F f) {
  grid_dim = grid;
  block_dim = blk;
  unsigned n = blk.x * blk.y * blk.z;
  if (!synchronizes) {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x)
          for (unsigned t = 0; t < n; ++t) {
            block_idx = {x, y, z};
            linear = t;
            thread_idx = {t % blk.x, (t / blk.x) % blk.y, t / (blk.x * blk.y)};
            f();
          }
    return;
  }
  Block b;
  b.all = std::make_unique<std::barrier<>>(n);
  for (unsigned w = 0; w * 32 < n; ++w) {
    unsigned members = n - w * 32 < 32 ? n - w * 32 : 32;
    b.warps.push_back(std::make_unique<std::barrier<>>(members));
  }
  b.slots.assign(n, 0);
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < n; ++t) {
    ts.emplace_back([&, t] {
      block = &b;
      linear = t;
      thread_idx = {t % blk.x, (t / blk.x) % blk.y, t / (blk.x * blk.y)};
      for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
          for (unsigned x = 0; x < grid.x; ++x) {
            block_idx = {x, y, z};
            f();
            b.all->arrive_and_wait();
          }
    });
  }
  for (auto& t : ts) t.join();
}

template <class T>
T exchange(T v, unsigned from_lane) {
  static_assert(sizeof(T) <= 8, "shuffled values are at most 8 bytes");
  unsigned warp = linear / 32;
  unsigned long long s = 0;
  std::memcpy(&s, &v, sizeof v);
  block->slots[linear] = s;
  block->warps[warp]->arrive_and_wait();
  unsigned long long r = block->slots[warp * 32 + from_lane];
  block->warps[warp]->arrive_and_wait();
  T out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}
}  // namespace th

#define threadIdx (th::thread_idx)
#define blockIdx (th::block_idx)
#define blockDim (th::block_dim)
#define gridDim (th::grid_dim)

inline void __syncthreads() { th::block->all->arrive_and_wait(); }
template <class T>
T __shfl_xor_sync(unsigned, T v, int k) {
  return th::exchange(v, (th::linear % 32) ^ (unsigned)k);
}
template <class T>
T __shfl_sync(unsigned, T v, int src) {
  return th::exchange(v, (unsigned)src);
}
