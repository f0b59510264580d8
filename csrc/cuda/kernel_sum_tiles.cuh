// The pair walk of the CUDA kernel_sum: one CTA per super-block of tiles (csrc/cuda/kernel_sum.cu: the
// decomposition). Instantiated per (T, TILE, MODE, DIST) by the host walk (kernel_sum_walk.cuh) in the translation
// unit that launches it: kernel_sum.cu the value and first order (MODE 0, 1), kernel_sum_backward2.cu the second
// (MODE 2).
#pragma once

#include "kernel_sum_device.cuh"

namespace fastgan {
namespace {

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

}  // namespace
}  // namespace fastgan
