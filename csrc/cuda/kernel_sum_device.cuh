// Device code of the CUDA kernel_sum (csrc/cuda/kernel_sum.cu: the decomposition): the launch shape, the argument
// structs, the load / store helpers, the mixture at one pair, and the small kernels around the pair walk (row dot
// products, the value's ordered sum, the gradients' finishing pass). The pair walk itself: kernel_sum_tiles.cuh.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "fastgan/kernel_sum.h"
#include "fastgan/pair_math.h"

namespace fastgan {
namespace {

constexpr int kThreads = 256;  // 16 x 16
constexpr int kWarps = kThreads / 32;

// smooth kernels of r2 from dot products; laplacians from differences; poly of the dot product itself
enum Dist : int { kDot = 0, kL2 = 1, kL1 = 2, kPolyDot = 3 };

template <typename T>
struct Cfg {
  static constexpr int V = 16 / int(sizeof(T));  // elements per 16-byte vector: 4 float, 2 double
  static constexpr int BK1 = 8 * V;               // pass-1 feature chunk: 32 float, 16 double
  static constexpr int LD1 = BK1 + V;             // its padded row (keeps rows 16-byte aligned, spreads banks)
  static constexpr int BK2 = 16 * V;              // pass-2 feature chunk: 16 threads x V features
  static constexpr int LD2 = BK2 + V;
};

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <typename T>
struct MixArgs {
  int kernel;
  int ns;
  PairCoef<T> cf[kMaxPairBandwidths];
  int sq[kMaxPairBandwidths];  // gaussian squaring chain (kernel_sum.h): -1 = exp, else squarings of the previous value
};

// The arguments of a pair walk, by value. Points are contiguous rows of d values in the compute type T.
template <typename T>
struct PairArgs {
  const T* x;   // (n, d) centred
  const T* y;   // (m, d) centred (= x for a self-sum)
  const T* u;   // order 2: (n, d)
  const T* v;   // order 2: (m, d) (= u for a self-sum)
  const T* nx;  // |x_i|^2 (smooth kernels)
  const T* ny;
  const T* ux;  // order 2: u_i . x_i
  const T* vy;  //          v_j . y_j
  T* row_t1;    // row side [pc][n][d]: C Y (order 2: C V; laplacians: sum_j c_ij f(x_i - y_j))
  T* row_t2;    //          [pc][n][d]: order 2: Q Y
  T* row_s1;    //          [pc][n]: rowsum C
  T* row_s2;    //          [pc][n]: order 2: rowsum Q
  T* col_t1;    // column side [pr][m][d]: C^T X (order 2: C^T U); self-sum: the row buffers
  T* col_t2;    //             order 2: Q^T X
  T* col_s1;    //             colsum C
  T* col_s2;    //             order 2: colsum Q
  double* val_part;  // [CTAs]: each CTA's share of S (MODE < 2)
  int64_t n, m, d;
  int64_t tr, tc;  // tiles per side
  int pr, pc;      // super-blocks per side (self-sum: pr == pc, tr == tc)
  // super-block A holds the row tiles [A br + min(A, rr), (A + 1) br + min(A + 1, rr)) with br = tr / pr,
  // rr = tr % pr (divided on the host: a 64-bit division is a subroutine call on the GPU); columns likewise
  int64_t br, rr, bc, rc;
  bool self, diagonal, row_side, col_side;
  bool vec;  // d % V == 0 and every point pointer 16-byte aligned: 16-byte global loads and stores
  MixArgs<T> mix;
};

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// v[0, N) = p[0, N) from shared memory, in vectors of min(N, V) elements (p aligned to them by construction).
template <typename T, int N>
__device__ __forceinline__ void lds(const T* p, T (&v)[N]) {
  constexpr int W = N < Cfg<T>::V ? N : Cfg<T>::V;
  static_assert(N % W == 0, "lds: N must be a multiple of the vector width");
#pragma unroll
  for (int c = 0; c < N / W; ++c) {
    const Vec<T, W> w = reinterpret_cast<const Vec<T, W>*>(p)[c];
#pragma unroll
    for (int e = 0; e < W; ++e) v[c * W + e] = w.v[e];
  }
}

// v = row[k, k + V) of a row of d values, zeros past d (ok false: all zeros).
template <typename T>
__device__ __forceinline__ void ldg_chunk(const T* __restrict__ row, int64_t k, int64_t d, bool vec, bool ok,
                                          T (&v)[Cfg<T>::V]) {
  constexpr int V = Cfg<T>::V;
  if (vec) {
    if (ok && k < d) {
      const Vec<T, V> w = *reinterpret_cast<const Vec<T, V>*>(row + k);
#pragma unroll
      for (int c = 0; c < V; ++c) v[c] = w.v[c];
    } else {
#pragma unroll
      for (int c = 0; c < V; ++c) v[c] = T(0);
    }
  } else {
#pragma unroll
    for (int c = 0; c < V; ++c) v[c] = (ok && k + c < d) ? row[k + c] : T(0);
  }
}

// row[k, k + V) += o, masked at d.
template <typename T>
__device__ __forceinline__ void add_chunk(T* row, int64_t k, int64_t d, bool vec, const T (&o)[Cfg<T>::V]) {
  constexpr int V = Cfg<T>::V;
  if (vec) {
    if (k < d) {
      Vec<T, V>* p = reinterpret_cast<Vec<T, V>*>(row + k);
      Vec<T, V> w = *p;
#pragma unroll
      for (int c = 0; c < V; ++c) w.v[c] += o[c];
      *p = w;
    }
  } else {
#pragma unroll
    for (int c = 0; c < V; ++c) {
      if (k + c < d) row[k + c] += o[c];
    }
  }
}

// dst[r][0, COLS) (row stride LD) = src[row0 + r][k0, k0 + COLS) of a (rows, d) row-major matrix, zeros outside it.
template <typename T, int ROWS, int COLS, int LD>
__device__ __forceinline__ void load_tile(T* dst, const T* __restrict__ src, int64_t row0, int64_t rows, int64_t k0,
                                          int64_t d, bool vec) {
  constexpr int V = Cfg<T>::V;
  if (vec) {
    constexpr int CV = COLS / V;
    for (int e = threadIdx.x; e < ROWS * CV; e += kThreads) {
      const int r = e / CV, kk = (e - r * CV) * V;
      const int64_t gr = row0 + r, gk = k0 + kk;
      Vec<T, V> w;
      if (gr < rows && gk < d) {
        w = *reinterpret_cast<const Vec<T, V>*>(src + gr * d + gk);
      } else {
#pragma unroll
        for (int c = 0; c < V; ++c) w.v[c] = T(0);
      }
      *reinterpret_cast<Vec<T, V>*>(dst + r * LD + kk) = w;
    }
  } else {
    for (int e = threadIdx.x; e < ROWS * COLS; e += kThreads) {
      const int r = e / COLS, kk = e - r * COLS;
      const int64_t gr = row0 + r, gk = k0 + kk;
      dst[r * LD + kk] = (gr < rows && gk < d) ? src[gr * d + gk] : T(0);
    }
  }
}

// The mixture at one pair: r = r2 (smooth kernels) or the distance (laplacians). ORDER as in pair_math.h.
template <int ORDER, int DIST, typename T>
__device__ __forceinline__ void mixture(const MixArgs<T>& mx, T r, T& val, T& c, T& h) {
  if constexpr (DIST == kPolyDot) {  // r = the dot product
    for (int s = 0; s < mx.ns; ++s) poly_add<ORDER>(r, mx.cf[s], val, c, h);
  } else if constexpr (DIST == kDot) {
    if (mx.kernel == kGaussian) {
      T e = T(0);
      for (int s = 0; s < mx.ns; ++s) {
        const int steps = mx.sq[s];
        if (steps < 0) {
          e = gaussian_exp(r, mx.cf[s].p);
        } else {
          for (int q = 0; q < steps; ++q) e *= e;
        }
        gaussian_add<ORDER>(e, mx.cf[s], val, c, h);
      }
    } else if (mx.kernel == kRationalQuadratic) {
      for (int s = 0; s < mx.ns; ++s) rq_add<ORDER>(r, mx.cf[s], val, c, h);
    } else {
      for (int s = 0; s < mx.ns; ++s) imq_add<ORDER>(r, mx.cf[s], val, c, h);
    }
  } else {
    for (int s = 0; s < mx.ns; ++s) laplacian_add<ORDER>(r, mx.cf[s], val, c);
  }
}

template <typename T, int TILE, int MODE>
constexpr size_t smem_bytes() {
  using C = Cfg<T>;
  constexpr size_t ldc = TILE + C::V;
  constexpr size_t cs = (MODE == 2 ? 2 : 1) * TILE * ldc;
  constexpr size_t p1 = (MODE == 2 ? 4 : 2) * TILE * C::LD1;
  constexpr size_t p2 = MODE == 0 ? 0 : (MODE == 2 ? 2 : 1) * TILE * C::LD2;
  return (cs + (p1 > p2 ? p1 : p2)) * sizeof(T);
}

// out[i] = a_i . b_i for rows of d values: one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) row_dots_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                                            T* __restrict__ out, int64_t rows, int64_t d) {
  const int lane = threadIdx.x % 32;
  const int64_t nw = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < rows; i += nw) {
    const T* pa = a + i * d;
    const T* pb = b + i * d;
    T s = T(0);
    for (int64_t k = lane; k < d; k += 32) s = pair_fma(pa[k], pb[k], s);
    s = warp_sum(s);
    if (lane == 0) out[i] = s;
  }
}

// S = the CTAs' shares summed in order (one block).
template <typename O>
__global__ void __launch_bounds__(kThreads) value_kernel(const double* __restrict__ parts, int64_t count,
                                                         O* __restrict__ out) {
  __shared__ double red[kThreads];
  double t = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) t += parts[i];
  red[threadIdx.x] = t;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = static_cast<O>(red[0]);
}

// A gradient from the partial buffers, summed over the slots in slot order:
//   KIND 0 (laplacians, poly):  f1 t1                    KIND 1: f1 (s1 a1 - t1)
//   KIND 2 (order 2):           f1 (s1 a1 - t1) + f2 (s2 a2 - t2)
//   KIND 3 (poly, order 2):     f1 t1 + f2 t2
template <typename T>
struct FinishArgs {
  const T* t1;
  const T* t2;
  const T* s1;
  const T* s2;
  const T* a1;  // rows x d
  const T* a2;
  int64_t rows, d;
  int slots;
  T f1, f2;
};

template <typename T, typename O, int KIND>
__global__ void __launch_bounds__(kThreads) finish_kernel(const FinishArgs<T> f, O* __restrict__ out) {
  const int64_t total = f.rows * f.d;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    // (a 64-bit division is a subroutine call: 32 bits whenever the sizes allow)
    const int64_t i = total <= INT32_MAX ? int64_t(uint32_t(e) / uint32_t(f.d)) : e / f.d;
    T t1 = T(0), t2 = T(0), s1 = T(0), s2 = T(0);
    for (int p = 0; p < f.slots; ++p) {
      const int64_t row = int64_t(p) * f.rows + i;
      t1 += f.t1[e + int64_t(p) * total];
      if constexpr (KIND == 1 || KIND == 2) s1 += f.s1[row];
      if constexpr (KIND == 2) s2 += f.s2[row];
      if constexpr (KIND >= 2) t2 += f.t2[e + int64_t(p) * total];
    }
    T g;
    if constexpr (KIND == 0) {
      g = f.f1 * t1;
    } else if constexpr (KIND == 3) {
      g = f.f1 * t1 + f.f2 * t2;
    } else {
      g = f.f1 * (s1 * f.a1[e] - t1);
      if constexpr (KIND == 2) g += f.f2 * (s2 * f.a2[e] - t2);
    }
    out[e] = static_cast<O>(g);
  }
}

}  // namespace
}  // namespace fastgan
