// CUDA kernels of fastgan::kernel_sum (S = sum_ij sum_s w_s k_s(x_i, y_j) and, in the same walk, dS/dx, dS/dy) and
// fastgan::kernel_sum_backward2 (d/dx, d/dy of <u, dS/dx> + <v, dS/dy>). Same results, checks and messages as
// csrc/cpu/kernel_sum.cpp: fastgan/kernel_sum.h holds the checks, the mixture plan and the centring, fastgan/pair_math.h the
// per-pair math (value, k', k'' of one r2 and one bandwidth), both shared with the CPU kernel.
//
// Decomposition (never the n x m kernel matrix; memory O((n + m) d) plus the partial buffers below)
// -------------
// The pairs are cut into TILE x TILE tiles (TILE = 64, 32 or 16: the largest that still gives at least one tile per
// SM, so that n = m = 256 / 512 / 1024 all fill an H100's 132 SMs; plan_tiles). The tiles are grouped into a grid of
// super-blocks, pr super-rows x pc super-columns (contiguous, balanced ranges of tiles; at most kMaxSlots = 16 each
// and 1 GiB of partials per side, except that an x-y sum with fewer than 16 tiles on one side takes up to 2 SMs /
// that many on the other; csrc/include/fastgan/kernel_sum_plan.h); one CTA
// of 256 threads (16 x 16) walks the tiles of one super-block (A, B), row tile by row tile. A self-sum (y = None)
// walks the upper triangle only: the CTAs are the pr (pr + 1) / 2 super-blocks with B >= A, and inside a diagonal
// super-block only the tiles J >= I; an off-diagonal tile (I < J) counts twice in S and contributes to both its rows
// (row side) and its columns (the mirrored pairs, column side); a diagonal tile (I == J) is computed in full and
// contributes to its rows only.
//
// Per tile, with i over the tile's rows (points x_i) and j over its columns (y_j):
//   pass 1  dot products over d in chunks of BK1 features: the x and y rows of the chunk are staged in shared memory
//           (zero-filled past n, m and d), each thread accumulates R x R pairs (R = TILE / 16; rows ty + 16a, columns
//           tx + 16b) in registers: x_i.y_j (order 2 also e_ij = u_i.y_j + x_i.v_j); the laplacians accumulate
//           |x_i - y_j|_1 or |x_i - y_j|_2^2 from direct differences instead. Then r2 = |x_i|^2 + |y_j|^2 - 2 x_i.y_j
//           (centred points, clamped at 0; exactly 0 on the diagonal of a self-sum) goes to the shared tile Cs.
//   pairs   each thread turns its own cells of Cs into the mixture (all bandwidths from the same r2): the value (summed
//           per thread), c = sum_s w_s k_s'(r2) written back into Cs and, order 2, q = h (u_i - v_j).(x_i - y_j)
//           with h = sum_s w_s k_s''(r2) into Qs. Pairs outside [0, n) x [0, m), and the pairs (i, i) of a self-sum
//           that are left out, get c = q = 0 and no value.
//   sums    rowsum(C) (one warp per row, shuffles) and colsum(C) (row slices per thread, then one thread per column
//           adds the slices in order), likewise Q; added into the partial row / column sums.
//   pass 2  over d in chunks of BK2 = 16 V features (V: elements per 16-byte vector), the products the gradients need,
//           C (TILE x TILE, from shared memory) times the chunk of the other side's points (staged in shared memory):
//           row side (C Y)_i, column side (C^T X)_j (order 2: C V and Q Y; C^T U and Q^T X; laplacians: the direct
//           sums sum_j c_ij f(x_i - y_j) with f = identity or sign). Each thread owns R rows x V features of the
//           result and adds them into the partial buffers in global memory.
// Partial buffers (zero-filled, fp32 or fp64): row side [pc][n][d] and [pc][n] (row sums), slot B of the CTA;
// column side [pr][m][d] and [pr][m], slot A (a self-sum's column side goes to the row buffers, slot A: CTA (A, B)
// owns row slot B of super-row A's rows and row slot A of super-column B's rows, so no two CTAs ever touch the same
// entries, and within a CTA the tile steps are separated by __syncthreads). No atomics: each CTA adds into entries
// that only it owns, in its fixed tile order; the per-CTA values go to a buffer of doubles. Then the finishing kernels
// reduce the slots in slot order and form dS/dx_i = f (rowsum_i x_i - (C Y)_i) (f = 2; 4 for a self-sum, where x_i
// is on both sides of its pairs), dS/dy_j = 2 (colsum_j y_j - (C^T X)_j), order 2 the same forms as the CPU file,
// written in x's dtype, and S in fixed order in double. Results are deterministic for a given GPU model (the tile
// size and the slots depend on its SM count).
//
// poly (a kernel of the dot product t = x.y; pair_math.h is_dot_kernel) takes the same walk as its own instantiations
// (DIST = kPoly: the hot kernels of r2 stay as they were) on the points as given (not centred: it is not translation
// invariant), with t in place of r2, no row or column sums, the pairs (i, i) of
// a self-sum counted in every order when diagonal, q = h e, and gradients f (C Y)_i, (C^T X)_j (order 2:
// (C V + Q Y)_i, (C^T U + Q^T X)_j; f = 2 for a self-sum, else 1): finish kinds 0 and 3. It has never run on a GPU
// (written against the CPU kernel, compiled by nvcc only).
//
// Compute type fp32 for fp32 / fp16 / bf16 (half inputs are widened once while centring, as on the CPU), fp64 for
// fp64; never TF32 (its 10-bit mantissa would wreck |x|^2 + |y|^2 - 2 x.y). The per-bandwidth constants travel by
// value in the kernel's argument struct (at most kMaxPairBandwidths, checked for every backend in kernel_sum.h; the
// argument is __grid_constant__, so indexing it by the bandwidth does not copy it to local memory). No host sync:
// the only host calls are device attributes and the kernel launches, all on the current stream under a device guard.
//
// Headers: only what is needed (ATen/cuda/CUDAContext.h would pull in the cuBLAS/cuSPARSE/cuSOLVER headers).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

#include "fastgan/kernel_sum.h"
#include "fastgan/kernel_sum_plan.h"
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

// One CTA: the tiles of super-block (A, B). MODE 0: the value; 1: the value and the first-order products; 2: the
// second-order products (DIST == kDot or kPolyDot only).
template <typename T, int TILE, int MODE, int DIST>
__global__ void __launch_bounds__(kThreads) pair_tiles_kernel(const __grid_constant__ PairArgs<T> a) {
  using C = Cfg<T>;
  constexpr int V = C::V, R = TILE / 16, LDC = TILE + V;
  constexpr bool kSmooth = DIST == kDot || DIST == kPolyDot;
  constexpr bool dotk = DIST == kPolyDot;  // poly: the kernel's argument is x_i.y_j itself
  static_assert(MODE < 2 || kSmooth, "second order: smooth kernels only");
  static_assert(TILE % 16 == 0 && TILE % V == 0 && kThreads % TILE == 0, "tile");
  static_assert(2 * kThreads <= 2 * TILE * C::LD1, "the column-sum scratch fits in the staging area");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const Cs = reinterpret_cast<T*>(smem_raw);     // TILE x LDC: r2 (or the distance), then c
  T* const Qs = Cs + TILE * LDC;                    // MODE 2: e = u_i.y_j + x_i.v_j, then q
  T* const Ub = Cs + (MODE == 2 ? 2 : 1) * TILE * LDC;  // union of the pass-1 and pass-2 staging tiles
  T* const Xs = Ub;
  T* const Ys = Ub + TILE * C::LD1;
  T* const Us = Ub + 2 * TILE * C::LD1;
  T* const Vs = Ub + 3 * TILE * C::LD1;
  T* const P1 = Ub;
  T* const P2 = Ub + TILE * C::LD2;

  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16, lane = tid % 32, warp = tid / 32;

  // this CTA's super-block: (A, B) = (blockIdx / pc, blockIdx % pc); self-sum: the B >= A ones in row-major order
  int A = 0, B = 0;
  if (a.self) {
    int b = int(blockIdx.x);
    while (b >= a.pr - A) {
      b -= a.pr - A;
      ++A;
    }
    B = A + b;
  } else {
    A = int(blockIdx.x) / a.pc;
    B = int(blockIdx.x) % a.pc;
  }
  const int64_t I0 = A * a.br + min(int64_t(A), a.rr), I1 = I0 + a.br + (A < a.rr ? 1 : 0);
  const int64_t J0 = B * a.bc + min(int64_t(B), a.rc), J1 = J0 + a.bc + (B < a.rc ? 1 : 0);

  double vacc = 0.0;  // this thread's share of S
  for (int64_t I = I0; I < I1; ++I) {
    for (int64_t J = (a.self && I > J0) ? I : J0; J < J1; ++J) {
      const int64_t i0 = I * TILE, j0 = J * TILE;
      const bool diag_tile = a.self && I == J;
      __syncthreads();  // the previous tile's readers of Cs / Qs and of the staging tiles are done

      // ---- pass 1: dot products (or distances) of the R x R pairs of this thread ----
      T acc[R][R], eacc[MODE == 2 ? R : 1][MODE == 2 ? R : 1];
#pragma unroll
      for (int p = 0; p < R; ++p) {
#pragma unroll
        for (int q = 0; q < R; ++q) acc[p][q] = T(0);
      }
      if constexpr (MODE == 2) {
#pragma unroll
        for (int p = 0; p < R; ++p) {
#pragma unroll
          for (int q = 0; q < R; ++q) eacc[p][q] = T(0);
        }
      }
      for (int64_t k0 = 0; k0 < a.d; k0 += C::BK1) {
        load_tile<T, TILE, C::BK1, C::LD1>(Xs, a.x, i0, a.n, k0, a.d, a.vec);
        load_tile<T, TILE, C::BK1, C::LD1>(Ys, a.y, j0, a.m, k0, a.d, a.vec);
        if constexpr (MODE == 2) {
          load_tile<T, TILE, C::BK1, C::LD1>(Us, a.u, i0, a.n, k0, a.d, a.vec);
          load_tile<T, TILE, C::BK1, C::LD1>(Vs, a.v, j0, a.m, k0, a.d, a.vec);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < C::BK1; kk += V) {
          T xa[R][V], yb[R][V];
#pragma unroll
          for (int p = 0; p < R; ++p) lds(Xs + (ty + 16 * p) * C::LD1 + kk, xa[p]);
#pragma unroll
          for (int q = 0; q < R; ++q) lds(Ys + (tx + 16 * q) * C::LD1 + kk, yb[q]);
#pragma unroll
          for (int p = 0; p < R; ++p) {
#pragma unroll
            for (int q = 0; q < R; ++q) {
#pragma unroll
              for (int e = 0; e < V; ++e) {
                if constexpr (kSmooth) {
                  acc[p][q] = pair_fma(xa[p][e], yb[q][e], acc[p][q]);
                } else if constexpr (DIST == kL2) {
                  const T df = xa[p][e] - yb[q][e];
                  acc[p][q] = pair_fma(df, df, acc[p][q]);
                } else {
                  acc[p][q] += ::fabs(xa[p][e] - yb[q][e]);
                }
              }
            }
          }
          if constexpr (MODE == 2) {
            T ua[R][V], vb[R][V];
#pragma unroll
            for (int p = 0; p < R; ++p) lds(Us + (ty + 16 * p) * C::LD1 + kk, ua[p]);
#pragma unroll
            for (int q = 0; q < R; ++q) lds(Vs + (tx + 16 * q) * C::LD1 + kk, vb[q]);
#pragma unroll
            for (int p = 0; p < R; ++p) {
#pragma unroll
              for (int q = 0; q < R; ++q) {
#pragma unroll
                for (int e = 0; e < V; ++e) {
                  eacc[p][q] = pair_fma(ua[p][e], yb[q][e], eacc[p][q]);
                  eacc[p][q] = pair_fma(xa[p][e], vb[q][e], eacc[p][q]);
                }
              }
            }
          }
        }
        __syncthreads();  // the staging tiles are overwritten by the next chunk
      }

      // r2 (or the distance) of this thread's pairs into Cs; MODE 2: e into Qs
      {
        T nxi[R], nyj[R];
#pragma unroll
        for (int p = 0; p < R; ++p) {
          const int64_t i = i0 + ty + 16 * p;
          nxi[p] = (DIST == kDot && i < a.n) ? a.nx[i] : T(0);
        }
#pragma unroll
        for (int q = 0; q < R; ++q) {
          const int64_t j = j0 + tx + 16 * q;
          nyj[q] = (DIST == kDot && j < a.m) ? a.ny[j] : T(0);
        }
#pragma unroll
        for (int p = 0; p < R; ++p) {
#pragma unroll
          for (int q = 0; q < R; ++q) {
            const int r = ty + 16 * p, s = tx + 16 * q;
            T rr;
            if constexpr (dotk) {
              rr = acc[p][q];
            } else if constexpr (DIST == kDot) {
              rr = (diag_tile && r == s) ? T(0) : pair_r2(nxi[p], nyj[q], acc[p][q]);  // exactly 0 for (i, i)
            } else if constexpr (DIST == kL2) {
              rr = pair_sqrt(acc[p][q]);
            } else {
              rr = acc[p][q];
            }
            Cs[r * LDC + s] = rr;
            if constexpr (MODE == 2) Qs[r * LDC + s] = eacc[p][q];
          }
        }
      }

      // ---- the mixture at this thread's pairs (the cells it wrote: no barrier needed) ----
      {
        T tval = T(0);
#pragma unroll 1
        for (int e = 0; e < R * R; ++e) {
          const int r = ty + 16 * (e / R), s = tx + 16 * (e % R);
          const int64_t i = i0 + r, j = j0 + s;
          const bool valid = i < a.n && j < a.m;
          const bool same = diag_tile && r == s;  // the pair (i, i) of a self-sum
          const T rr = Cs[r * LDC + s];
          T val = T(0), c = T(0), h = T(0);
          mixture<MODE, DIST>(a.mix, rr, val, c, h);
          if constexpr (DIST == kL2 && MODE == 1) c = laplacian_l2_weight(c, rr);  // c / dist, 0 at dist 0
          if constexpr (MODE < 2) {
            if (valid && !(same && !a.diagonal)) tval += val;
          }
          if constexpr (MODE >= 1) {
            // left out: pairs outside the tile's range; (i, i) when the diagonal is excluded, in the second order of
            // the kernels of r2 (its terms vanish analytically; not poly's) and for the laplacians (zero gradient at
            // zero distance)
            const bool keep = valid && !(same && ((MODE == 2 && !dotk) || !a.diagonal || !kSmooth));
            Cs[r * LDC + s] = keep ? c : T(0);
            if constexpr (MODE == 2) {
              T q;
              if constexpr (dotk) {
                q = h * Qs[r * LDC + s];
              } else {
                q = pair_q(h, a.ux[i < a.n ? i : 0], a.vy[j < a.m ? j : 0], Qs[r * LDC + s]);
              }
              Qs[r * LDC + s] = keep ? q : T(0);
            }
          }
        }
        if constexpr (MODE < 2) vacc += ((a.self && !diag_tile) ? 2.0 : 1.0) * double(tval);
      }

      if constexpr (MODE >= 1) {
        __syncthreads();  // Cs (and Qs) complete

        // ---- row and column sums of C (and Q): smooth kernels of r2 (poly's gradients have no row-sum terms) ----
        if constexpr (kSmooth && !dotk) {
          if (a.row_side) {
            for (int r = warp; r < TILE; r += kWarps) {
              T s1 = T(0), s2 = T(0);
              for (int s = lane; s < TILE; s += 32) {
                s1 += Cs[r * LDC + s];
                if constexpr (MODE == 2) s2 += Qs[r * LDC + s];
              }
              s1 = warp_sum(s1);
              if constexpr (MODE == 2) s2 = warp_sum(s2);
              const int64_t i = i0 + r;
              if (lane == 0 && i < a.n) {
                a.row_s1[int64_t(B) * a.n + i] += s1;
                if constexpr (MODE == 2) a.row_s2[int64_t(B) * a.n + i] += s2;
              }
            }
          }
          if (a.col_side && !diag_tile) {
            // every thread sums a slice of RS rows of one column into the staging area (free until pass 2's
            // first barrier), then one thread per column adds the SL slices in order
            constexpr int SL = kThreads / TILE, RS = TILE / SL;
            T* const red = Ub;  // SL x TILE (MODE 2: two of them)
            const int s = tid % TILE, sl = tid / TILE;
            T s1 = T(0), s2 = T(0);
#pragma unroll 4
            for (int r = sl * RS; r < (sl + 1) * RS; ++r) {
              s1 += Cs[r * LDC + s];
              if constexpr (MODE == 2) s2 += Qs[r * LDC + s];
            }
            red[sl * TILE + s] = s1;
            if constexpr (MODE == 2) red[(SL + sl) * TILE + s] = s2;
            __syncthreads();
            const int64_t j = j0 + tid;
            if (tid < TILE && j < a.m) {
              T t1 = T(0), t2 = T(0);
              for (int q = 0; q < SL; ++q) {
                t1 += red[q * TILE + tid];
                if constexpr (MODE == 2) t2 += red[(SL + q) * TILE + tid];
              }
              a.col_s1[int64_t(A) * a.m + j] += t1;
              if constexpr (MODE == 2) a.col_s2[int64_t(A) * a.m + j] += t2;
            }
          }
        }

        // ---- pass 2, row side: rows i = i0 + ty + 16p, features k0 + tx V + [0, V) ----
        if (a.row_side) {
          const T* src1 = MODE == 2 ? a.v : a.y;
          for (int64_t k0 = 0; k0 < a.d; k0 += C::BK2) {
            __syncthreads();  // the staging tiles are free
            load_tile<T, TILE, C::BK2, C::LD2>(P1, src1, j0, a.m, k0, a.d, a.vec);
            if constexpr (MODE == 2) load_tile<T, TILE, C::BK2, C::LD2>(P2, a.y, j0, a.m, k0, a.d, a.vec);
            __syncthreads();
            const int64_t k = k0 + tx * V;
            T o1[R][V], o2[MODE == 2 ? R : 1][V], own[kSmooth ? 1 : R][V];
#pragma unroll
            for (int p = 0; p < R; ++p) {
#pragma unroll
              for (int e = 0; e < V; ++e) o1[p][e] = T(0);
            }
            if constexpr (MODE == 2) {
#pragma unroll
              for (int p = 0; p < R; ++p) {
#pragma unroll
                for (int e = 0; e < V; ++e) o2[p][e] = T(0);
              }
            }
            if constexpr (!kSmooth) {  // x_i at these features
#pragma unroll
              for (int p = 0; p < R; ++p) {
                const int64_t i = i0 + ty + 16 * p;
                ldg_chunk(a.x + (i < a.n ? i : 0) * a.d, k, a.d, a.vec, i < a.n, own[p]);
              }
            }
#pragma unroll 2
            for (int s = 0; s < TILE; s += V) {
              T cv[R][V], qv[MODE == 2 ? R : 1][V];
#pragma unroll
              for (int p = 0; p < R; ++p) lds(Cs + (ty + 16 * p) * LDC + s, cv[p]);
              if constexpr (MODE == 2) {
#pragma unroll
                for (int p = 0; p < R; ++p) lds(Qs + (ty + 16 * p) * LDC + s, qv[p]);
              }
#pragma unroll
              for (int t = 0; t < V; ++t) {
                T pv[V], pv2[V];
                lds(P1 + (s + t) * C::LD2 + tx * V, pv);
                if constexpr (MODE == 2) lds(P2 + (s + t) * C::LD2 + tx * V, pv2);
#pragma unroll
                for (int p = 0; p < R; ++p) {
#pragma unroll
                  for (int e = 0; e < V; ++e) {
                    if constexpr (kSmooth) {
                      o1[p][e] = pair_fma(cv[p][t], pv[e], o1[p][e]);
                      if constexpr (MODE == 2) o2[p][e] = pair_fma(qv[p][t], pv2[e], o2[p][e]);
                    } else if constexpr (DIST == kL2) {
                      o1[p][e] = pair_fma(cv[p][t], own[p][e] - pv[e], o1[p][e]);
                    } else {
                      o1[p][e] = pair_fma(cv[p][t], pair_sign(own[p][e] - pv[e]), o1[p][e]);
                    }
                  }
                }
              }
            }
#pragma unroll
            for (int p = 0; p < R; ++p) {
              const int64_t i = i0 + ty + 16 * p;
              if (i < a.n) {
                add_chunk(a.row_t1 + (int64_t(B) * a.n + i) * a.d, k, a.d, a.vec, o1[p]);
                if constexpr (MODE == 2) add_chunk(a.row_t2 + (int64_t(B) * a.n + i) * a.d, k, a.d, a.vec, o2[p]);
              }
            }
          }
        }

        // ---- pass 2, column side (not for a diagonal tile): columns j = j0 + ty R + p ----
        if (a.col_side && !diag_tile) {
          const T* src1 = MODE == 2 ? a.u : a.x;
          for (int64_t k0 = 0; k0 < a.d; k0 += C::BK2) {
            __syncthreads();
            load_tile<T, TILE, C::BK2, C::LD2>(P1, src1, i0, a.n, k0, a.d, a.vec);
            if constexpr (MODE == 2) load_tile<T, TILE, C::BK2, C::LD2>(P2, a.x, i0, a.n, k0, a.d, a.vec);
            __syncthreads();
            const int64_t k = k0 + tx * V;
            T o1[R][V], o2[MODE == 2 ? R : 1][V], own[kSmooth ? 1 : R][V];
#pragma unroll
            for (int p = 0; p < R; ++p) {
#pragma unroll
              for (int e = 0; e < V; ++e) o1[p][e] = T(0);
            }
            if constexpr (MODE == 2) {
#pragma unroll
              for (int p = 0; p < R; ++p) {
#pragma unroll
                for (int e = 0; e < V; ++e) o2[p][e] = T(0);
              }
            }
            if constexpr (!kSmooth) {  // y_j at these features
#pragma unroll
              for (int p = 0; p < R; ++p) {
                const int64_t j = j0 + ty * R + p;
                ldg_chunk(a.y + (j < a.m ? j : 0) * a.d, k, a.d, a.vec, j < a.m, own[p]);
              }
            }
#pragma unroll 4
            for (int s = 0; s < TILE; ++s) {
              T cv[R], qv[MODE == 2 ? R : 1], pv[V], pv2[V];
              lds(Cs + s * LDC + ty * R, cv);  // c_(s, r) for the columns r = ty R + [0, R)
              lds(P1 + s * C::LD2 + tx * V, pv);
              if constexpr (MODE == 2) {
                lds(Qs + s * LDC + ty * R, qv);
                lds(P2 + s * C::LD2 + tx * V, pv2);
              }
#pragma unroll
              for (int p = 0; p < R; ++p) {
#pragma unroll
                for (int e = 0; e < V; ++e) {
                  if constexpr (kSmooth) {
                    o1[p][e] = pair_fma(cv[p], pv[e], o1[p][e]);
                    if constexpr (MODE == 2) o2[p][e] = pair_fma(qv[p], pv2[e], o2[p][e]);
                  } else if constexpr (DIST == kL2) {  // -d/dy_j: c (y_j - x_i)
                    o1[p][e] = pair_fma(cv[p], own[p][e] - pv[e], o1[p][e]);
                  } else {
                    o1[p][e] = pair_fma(cv[p], pair_sign(own[p][e] - pv[e]), o1[p][e]);
                  }
                }
              }
            }
#pragma unroll
            for (int p = 0; p < R; ++p) {
              const int64_t j = j0 + ty * R + p;
              if (j < a.m) {
                add_chunk(a.col_t1 + (int64_t(A) * a.m + j) * a.d, k, a.d, a.vec, o1[p]);
                if constexpr (MODE == 2) add_chunk(a.col_t2 + (int64_t(A) * a.m + j) * a.d, k, a.d, a.vec, o2[p]);
              }
            }
          }
        }
      }
    }
  }

  if constexpr (MODE < 2) {  // this CTA's share of S, in a fixed order
    __shared__ double red[kWarps];
    const double v = warp_sum(vacc);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (tid == 0) {
      double t = 0.0;
      for (int w = 0; w < kWarps; ++w) t += red[w];
      a.val_part[blockIdx.x] = t;
    }
  }
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

// ---------------------------------------------------------------------------------------------------------------
// host side

inline c10::optional<c10::Device> cuda_device_of(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) return t.device();
  return c10::nullopt;
}

inline int sm_count(c10::DeviceIndex device) {
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return std::max(sms, 1);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The largest tile whose shared memory the device grants one block (sm_86 / sm_89 / sm_120: at most 99 KiB, less
// than the fp64 second order's 102 KiB at tile 64; H100 227 KiB, A100 163 KiB).
template <typename T>
int max_tile(int mode, int device) {
  int optin = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const auto bytes = [mode](int tile) {
    if (tile == 64) {
      return mode == 0 ? smem_bytes<T, 64, 0>() : mode == 1 ? smem_bytes<T, 64, 1>() : smem_bytes<T, 64, 2>();
    }
    return mode == 0 ? smem_bytes<T, 32, 0>() : mode == 1 ? smem_bytes<T, 32, 1>() : smem_bytes<T, 32, 2>();
  };
  for (int tile : {64, 32}) {
    if (bytes(tile) <= size_t(optin)) return tile;
  }
  return 16;
}

template <typename T, int TILE, int MODE, int DIST>
void launch_tiles(const PairArgs<T>& a, int64_t ctas, cudaStream_t stream) {
  constexpr size_t smem = smem_bytes<T, TILE, MODE>();
  auto kern = pair_tiles_kernel<T, TILE, MODE, DIST>;
  if constexpr (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  kern<<<unsigned(ctas), kThreads, smem, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int MODE, int DIST>
void launch_tiles_any(const PairArgs<T>& a, int tile, int64_t ctas, cudaStream_t stream) {
  if (tile == 64) {
    launch_tiles<T, 64, MODE, DIST>(a, ctas, stream);
  } else if (tile == 32) {
    launch_tiles<T, 32, MODE, DIST>(a, ctas, stream);
  } else {
    launch_tiles<T, 16, MODE, DIST>(a, ctas, stream);
  }
}

template <typename T>
at::Tensor row_dots(const at::Tensor& a, const at::Tensor& b, int sms, cudaStream_t stream) {
  at::Tensor out = at::empty({a.size(0)}, a.options());
  const int64_t rows = a.size(0);
  if (rows == 0) return out;
  const int64_t blocks = std::clamp<int64_t>(ceil_div(rows, kWarps), 1, int64_t(sms) * 8);
  row_dots_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(a.data_ptr<T>(), b.data_ptr<T>(),
                                                                 out.data_ptr<T>(), rows, a.size(1));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// The partial sums of one walk over the pairs.
struct Walk {
  TilePlan plan;
  at::Tensor val_part;                        // [ctas] double (MODE < 2)
  at::Tensor row_t1, row_t2, row_s1, row_s2;  // [pc][n][d], [pc][n]
  at::Tensor col_t1, col_t2, col_s1, col_s2;  // [pr][m][d], [pr][m] (self-sum: the row buffers)
};

// Walks the pairs of P. mode 0: the value; 1: the value and the first-order products (row side for dS/dx, column
// side for dS/dy or a self-sum's mirrored pairs); 2: the second-order products, with directions u (n, d) and v
// (m, d; = u for a self-sum).
template <typename T>
Walk walk_pairs(const CentredPoints& P, const KernelSumCall& call, int mode, bool diagonal, bool row_side,
                bool col_side, const at::Tensor& uc, const at::Tensor& vc, int sms, cudaStream_t stream) {
  const bool smooth = !is_laplacian(call.kind);
  const auto o = P.xc.options();
  Walk W;
  const int nt = mode == 2 ? 2 : 1;  // partial copies per side: t1 (and t2 for the second order)
  const int copies_row = mode >= 1 && (row_side || (P.self && col_side)) ? nt : 0;
  const int copies_col = mode >= 1 && !P.self && col_side ? nt : 0;
  W.plan = plan_tiles(P.n, P.m, P.d, int64_t(sizeof(T)), P.self, sms, max_tile<T>(mode, P.xc.device().index()),
                      copies_row, copies_col);
  const TilePlan& tp = W.plan;

  PairArgs<T> a{};
  a.x = P.xc.data_ptr<T>();
  a.y = P.yc.data_ptr<T>();
  at::Tensor nx, ny, ux, vy;
  if (smooth && !is_dot_kernel(call.kind)) {  // |x|^2, |y|^2 for r2
    nx = row_dots<T>(P.xc, P.xc, sms, stream);
    ny = P.self ? nx : row_dots<T>(P.yc, P.yc, sms, stream);
    a.nx = nx.data_ptr<T>();
    a.ny = ny.data_ptr<T>();
  }
  bool vec = P.d % Cfg<T>::V == 0 && aligned16(a.x) && aligned16(a.y);
  if (mode == 2) {
    a.u = uc.data_ptr<T>();
    a.v = vc.data_ptr<T>();
    ux = row_dots<T>(uc, P.xc, sms, stream);
    vy = P.self ? ux : row_dots<T>(vc, P.yc, sms, stream);
    a.ux = ux.data_ptr<T>();
    a.vy = vy.data_ptr<T>();
    vec = vec && aligned16(a.u) && aligned16(a.v);
  }
  if (mode >= 1) {
    if (row_side || (P.self && col_side)) {
      W.row_t1 = at::zeros({tp.pc, P.n, P.d}, o);
      W.row_s1 = at::zeros({tp.pc, P.n}, o);
      if (nt == 2) {
        W.row_t2 = at::zeros({tp.pc, P.n, P.d}, o);
        W.row_s2 = at::zeros({tp.pc, P.n}, o);
      }
    }
    if (P.self) {
      W.col_t1 = W.row_t1, W.col_t2 = W.row_t2, W.col_s1 = W.row_s1, W.col_s2 = W.row_s2;
    } else if (col_side) {
      W.col_t1 = at::zeros({tp.pr, P.m, P.d}, o);
      W.col_s1 = at::zeros({tp.pr, P.m}, o);
      if (nt == 2) {
        W.col_t2 = at::zeros({tp.pr, P.m, P.d}, o);
        W.col_s2 = at::zeros({tp.pr, P.m}, o);
      }
    }
    auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : static_cast<T*>(nullptr); };
    a.row_t1 = ptr(W.row_t1), a.row_t2 = ptr(W.row_t2), a.row_s1 = ptr(W.row_s1), a.row_s2 = ptr(W.row_s2);
    a.col_t1 = ptr(W.col_t1), a.col_t2 = ptr(W.col_t2), a.col_s1 = ptr(W.col_s1), a.col_s2 = ptr(W.col_s2);
  }
  if (mode < 2) {
    W.val_part = at::empty({tp.ctas}, o.dtype(at::kDouble));
    a.val_part = W.val_part.data_ptr<double>();
  }
  a.n = P.n, a.m = P.m, a.d = P.d;
  a.tr = tp.tr, a.tc = tp.tc, a.pr = tp.pr, a.pc = tp.pc;
  a.br = tp.tr / tp.pr, a.rr = tp.tr % tp.pr, a.bc = tp.tc / tp.pc, a.rc = tp.tc % tp.pc;
  a.self = P.self;
  a.diagonal = diagonal;
  a.row_side = mode >= 1 && row_side;
  a.col_side = mode >= 1 && col_side;
  a.vec = vec;
  a.mix.kernel = call.kind;
  const MixturePlan<T> mix(call.kind, call.params, call.weights, call.degree, call.offset);
  a.mix.ns = int(mix.coef.size());
  for (int s = 0; s < a.mix.ns; ++s) {
    a.mix.cf[s] = mix.coef[s];
    a.mix.sq[s] = mix.sq[s];
  }

  if (!smooth) {
    const bool l1 = call.kind == kLaplacianL1;
    if (mode == 0) {
      l1 ? launch_tiles_any<T, 0, kL1>(a, tp.tile, tp.ctas, stream)
         : launch_tiles_any<T, 0, kL2>(a, tp.tile, tp.ctas, stream);
    } else {
      l1 ? launch_tiles_any<T, 1, kL1>(a, tp.tile, tp.ctas, stream)
         : launch_tiles_any<T, 1, kL2>(a, tp.tile, tp.ctas, stream);
    }
  } else if (is_dot_kernel(call.kind)) {
    if (mode == 0) {
      launch_tiles_any<T, 0, kPolyDot>(a, tp.tile, tp.ctas, stream);
    } else if (mode == 1) {
      launch_tiles_any<T, 1, kPolyDot>(a, tp.tile, tp.ctas, stream);
    } else {
      launch_tiles_any<T, 2, kPolyDot>(a, tp.tile, tp.ctas, stream);
    }
  } else if (mode == 0) {
    launch_tiles_any<T, 0, kDot>(a, tp.tile, tp.ctas, stream);
  } else if (mode == 1) {
    launch_tiles_any<T, 1, kDot>(a, tp.tile, tp.ctas, stream);
  } else {
    launch_tiles_any<T, 2, kDot>(a, tp.tile, tp.ctas, stream);
  }
  return W;
}

// out (rows x d, its own dtype) from the partial buffers; see finish_kernel.
template <typename T>
void finish(at::Tensor& out, int kind, const at::Tensor& t1, const at::Tensor& t2, const at::Tensor& s1,
            const at::Tensor& s2, const at::Tensor& a1, const at::Tensor& a2, int slots, double f1, double f2, int sms,
            cudaStream_t stream) {
  const int64_t total = out.numel();
  if (total == 0) return;
  FinishArgs<T> f{};
  auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : static_cast<T*>(nullptr); };
  f.t1 = ptr(t1), f.t2 = ptr(t2), f.s1 = ptr(s1), f.s2 = ptr(s2), f.a1 = ptr(a1), f.a2 = ptr(a2);
  f.rows = out.size(0);
  f.d = out.size(1);
  f.slots = slots;
  f.f1 = T(f1);
  f.f2 = T(f2);
  const int64_t blocks = std::clamp<int64_t>(ceil_div(total, kThreads), 1, int64_t(sms) * 8);
  auto go = [&](auto* o) {
    using O = std::remove_pointer_t<decltype(o)>;
    if (kind == 0) {
      finish_kernel<T, O, 0><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else if (kind == 1) {
      finish_kernel<T, O, 1><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else if (kind == 2) {
      finish_kernel<T, O, 2><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else {
      finish_kernel<T, O, 3><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if constexpr (std::is_same_v<T, double>) {
    go(out.data_ptr<double>());
  } else {
    switch (out.scalar_type()) {
      case at::kHalf: go(out.data_ptr<at::Half>()); break;
      case at::kBFloat16: go(out.data_ptr<at::BFloat16>()); break;
      default: go(out.data_ptr<float>()); break;
    }
  }
}

void finish_value(at::Tensor& value, const at::Tensor& parts, cudaStream_t stream) {
  if (value.scalar_type() == at::kDouble) {
    value_kernel<double><<<1, kThreads, 0, stream>>>(parts.data_ptr<double>(), parts.numel(),
                                                     value.data_ptr<double>());
  } else {
    value_kernel<float><<<1, kThreads, 0, stream>>>(parts.data_ptr<double>(), parts.numel(),
                                                    value.data_ptr<float>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void kernel_sum_run(const CentredPoints& P, const KernelSumCall& call, bool diagonal, bool grad_x, bool grad_y,
                    at::Tensor& value, at::Tensor& gx, at::Tensor& gy, int sms, cudaStream_t stream) {
  const bool direct = is_laplacian(call.kind) || is_dot_kernel(call.kind);  // no row-sum terms, f = 1
  const bool grads = grad_x || grad_y;
  const bool col_side = P.self ? grad_x : grad_y;
  const Walk W = walk_pairs<T>(P, call, grads ? 1 : 0, diagonal, grad_x, col_side, at::Tensor(), at::Tensor(), sms,
                               stream);
  finish_value(value, W.val_part, stream);
  const int kind = direct ? 0 : 1;
  if (grad_x) {  // dS/dx: f = 2 (laplacians, poly: 1), doubled for a self-sum
    const double f = (direct ? 1.0 : 2.0) * (P.self ? 2.0 : 1.0);
    finish<T>(gx, kind, W.row_t1, at::Tensor(), W.row_s1, at::Tensor(), P.xc, at::Tensor(), W.plan.pc, f, 0.0, sms,
              stream);
  }
  if (grad_y) {
    finish<T>(gy, kind, W.col_t1, at::Tensor(), W.col_s1, at::Tensor(), P.yc, at::Tensor(), W.plan.pr,
              direct ? 1.0 : 2.0, 0.0, sms, stream);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_cuda(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                               c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                               at::ArrayRef<double> weights, bool diagonal,
                                                               bool grad_x, bool grad_y, int64_t degree,
                                                               double offset) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(x));
  const KernelSumCall call = check_kernel_sum(x, y, kernel, bandwidths, weights, degree, offset);
  const bool self = !(y.has_value() && y->defined());
  const int64_t n = x.size(0), m = self ? n : y->size(0), d = x.size(1);
  grad_y = grad_y && !self;
  if (n == 0 || m == 0) {  // no pairs: S = 0, zero gradients
    return {at::zeros({}, x.options().dtype(kernel_sum_value_type(x))),
            grad_x ? at::zeros({n, d}, x.options()) : x.new_empty({0}),
            grad_y ? at::zeros({m, d}, x.options()) : x.new_empty({0})};
  }
  // (d == 0 walks the pairs all the same: every r2 is 0, S = n m sum_s w_s k_s(0) as on the CPU; no gradient work)
  at::Tensor value = at::empty({}, x.options().dtype(kernel_sum_value_type(x)));
  at::Tensor gx = grad_x ? at::empty({n, d}, x.options()) : x.new_empty({0});
  at::Tensor gy = grad_y ? at::empty({m, d}, x.options()) : x.new_empty({0});
  const c10::DeviceIndex device = x.device().index();
  const int sms = sm_count(device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  const CentredPoints P = centre_points(x, y, kernel_sum_compute_type(x), !is_dot_kernel(call.kind));
  if (P.ct == at::kDouble) {
    kernel_sum_run<double>(P, call, diagonal, grad_x, grad_y, value, gx, gy, sms, stream);
  } else {
    kernel_sum_run<float>(P, call, diagonal, grad_x, grad_y, value, gx, gy, sms, stream);
  }
  return {value, gx, gy};
}

// d/dx_i = f [rowsum(C)_i u_i - (C V)_i] + 2f [rowsum(Q)_i x_i - (Q Y)_i], f = 2 (4 for a self-sum, v = u, y = x)
// d/dy_j = 2 [colsum(C)_j v_j - (C^T U)_j] + 4 [colsum(Q)_j y_j - (Q^T X)_j]     (see csrc/cpu/kernel_sum.cpp)
// poly:  d/dx_i = f [(C V)_i + (Q Y)_i] (f = 2 for a self-sum, else 1),  d/dy_j = (C^T U)_j + (Q^T X)_j
template <typename T>
void backward2_run(const CentredPoints& P, const KernelSumCall& call, const at::Tensor& uc, const at::Tensor& vc,
                   bool diagonal, bool grad_x, bool grad_y, at::Tensor& dx, at::Tensor& dy, int sms,
                   cudaStream_t stream) {
  const bool col_side = P.self ? grad_x : grad_y;
  const Walk W = walk_pairs<T>(P, call, 2, diagonal, grad_x, col_side, uc, vc, sms, stream);
  if (is_dot_kernel(call.kind)) {
    const double f = P.self ? 2.0 : 1.0;
    if (grad_x) finish<T>(dx, 3, W.row_t1, W.row_t2, at::Tensor(), at::Tensor(), uc, P.xc, W.plan.pc, f, f, sms, stream);
    if (grad_y) finish<T>(dy, 3, W.col_t1, W.col_t2, at::Tensor(), at::Tensor(), vc, P.yc, W.plan.pr, 1.0, 1.0, sms, stream);
    return;
  }
  if (grad_x) {
    const double f = P.self ? 4.0 : 2.0;
    finish<T>(dx, 2, W.row_t1, W.row_t2, W.row_s1, W.row_s2, uc, P.xc, W.plan.pc, f, 2.0 * f, sms, stream);
  }
  if (grad_y) {
    finish<T>(dy, 2, W.col_t1, W.col_t2, W.col_s1, W.col_s2, vc, P.yc, W.plan.pr, 2.0, 4.0, sms, stream);
  }
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_cuda(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                             const at::Tensor& u, const c10::optional<at::Tensor>& v,
                                                             c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                             at::ArrayRef<double> weights, bool grad_x, bool grad_y,
                                                             bool diagonal, int64_t degree, double offset) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(x));
  const auto [call, vv] = check_kernel_sum_backward2(x, y, u, v, kernel, bandwidths, weights, degree, offset);
  const bool self = !(y.has_value() && y->defined());
  const int64_t n = x.size(0), m = self ? n : y->size(0), d = x.size(1);
  grad_y = grad_y && !self;
  if (!grad_x && !grad_y) return {x.new_empty({0}), x.new_empty({0})};
  if (n == 0 || m == 0 || d == 0) {  // no pairs, or nothing to differentiate
    return {grad_x ? at::zeros({n, d}, x.options()) : x.new_empty({0}),
            grad_y ? at::zeros({m, d}, x.options()) : x.new_empty({0})};
  }
  at::Tensor dx = grad_x ? at::empty({n, d}, x.options()) : x.new_empty({0});
  at::Tensor dy = grad_y ? at::empty({m, d}, x.options()) : x.new_empty({0});
  const c10::DeviceIndex device = x.device().index();
  const int sms = sm_count(device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  const CentredPoints P = centre_points(x, y, kernel_sum_compute_type(x), !is_dot_kernel(call.kind));
  const at::Tensor uc = u.to(P.ct).contiguous();
  const at::Tensor vc = self ? uc : vv.to(P.ct).contiguous();
  if (P.ct == at::kDouble) {
    backward2_run<double>(P, call, uc, vc, diagonal, grad_x, grad_y, dx, dy, sms, stream);
  } else {
    backward2_run<float>(P, call, uc, vc, diagonal, grad_x, grad_y, dx, dy, sms, stream);
  }
  return {dx, dy};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) {
  m.impl("kernel_sum", &kernel_sum_cuda);
  m.impl("kernel_sum_backward2", &kernel_sum_backward2_cuda);
}

}  // namespace fastgan
