// CPU kernels of bias_act, bias_act_backward and bias_act_backward2.
//
// One pass over memory in layout order ([O][C][S], see fastgan/bias_act.h). The templated part is only the inner
// loop over a unit-stride run (`run_const`: one bias value; `run_vec`: a bias per element, S == 1); the driver that
// splits the work into fixed-size chunks for at::parallel_for (results never depend on the thread count) and fuses
// the bias gradient (a sum over all dimensions but `dim`, accumulated in double) is compiled once.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "fastgan/bias_act.h"

namespace fastgan {
namespace {

constexpr int64_t kChunk = int64_t(1) << 15;  // elements per parallel task

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

enum class Kind { kFwd, kBwd, kBwd2 };

struct Params {
  double alpha, gain, clamp;
};

// in[0..N-1]: unit-stride runs (the last is the reference), out: the output run; n elements.
using RunConst = double (*)(const void* const* in, void* out, int64_t n, double bias, const Params& prm, bool sum);
using RunVec = void (*)(const void* const* in, const int64_t* rstride, void* out, int64_t rows, int64_t n,
                       const void* bias, double* acc, const Params& prm);

template <Kind K, int A, bool YREF, typename scalar_t>
struct Kernel {
  using acc_t = at::opmath_type<scalar_t>;
  static constexpr int N = K == Kind::kFwd ? 1 : (K == Kind::kBwd ? 2 : 3);

  static inline acc_t elem(const scalar_t* const* in, int64_t i, acc_t bv, acc_t alpha, acc_t gain, acc_t clamp) {
    if constexpr (K == Kind::kFwd) {
      return bias_act_fwd_elem<A>(acc_t(in[0][i]), bv, alpha, gain, clamp);
    } else if constexpr (K == Kind::kBwd) {
      return bias_act_bwd_elem<A, YREF>(acc_t(in[0][i]), acc_t(in[1][i]), bv, alpha, gain, clamp);
    } else {
      return bias_act_bwd2_elem<A, YREF>(acc_t(in[0][i]), acc_t(in[1][i]), acc_t(in[2][i]), bv, alpha, gain,
                                         clamp);
    }
  }

  // Blocks of kBlock elements: the element computation vectorises on its own (no reduction in the loop), the
  // block's values are then stored and summed in a second, simple loop (fp32 partial sums for halves and fp32,
  // exact to ~1e-7 relative over kBlock terms, then accumulated in double).
  static constexpr int64_t kBlock = 256;

  static double run_const(const void* const* vin, void* vout, int64_t n, double bias, const Params& prm, bool sum) {
    const scalar_t* in[N];
    for (int k = 0; k < N; ++k) in[k] = static_cast<const scalar_t*>(vin[k]);
    scalar_t* __restrict__ out = static_cast<scalar_t*>(vout);
    const acc_t bv = acc_t(bias), alpha = acc_t(prm.alpha), gain = acc_t(prm.gain), clamp = acc_t(prm.clamp);
    if constexpr (K != Kind::kFwd) {
      if (sum) {
        double total = 0;
        acc_t tmp[kBlock];
        for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
          const int64_t m = std::min(kBlock, n - i0);
          const scalar_t* blk[N];
          for (int k = 0; k < N; ++k) blk[k] = in[k] + i0;
          for (int64_t i = 0; i < m; ++i) tmp[i] = elem(blk, i, bv, alpha, gain, clamp);
          acc_t s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t i = 0; i < m; ++i) {
            out[i0 + i] = scalar_t(tmp[i]);
            s += tmp[i];
          }
          total += double(s);
        }
        return total;
      }
    }
    for (int64_t i = 0; i < n; ++i) out[i] = scalar_t(elem(in, i, bv, alpha, gain, clamp));
    return 0;
  }

  // rows x n elements, row r of operand k at in[k] + r * rstride[k] (n or 0: a broadcast operand), of the output at
  // out + r * n; bias: n values (or null). With acc (n doubles), acc[i] += the sum over the rows of element i:
  // column tiles of kBlock, summed over at most kBlock rows in acc_t registers, then added to acc in double (the
  // precision of run_const's sums; per element in double the reduction cost ~3x the element pass, issue 29).
  static void run_vec(const void* const* vin, const int64_t* rstride, void* vout, int64_t rows, int64_t n,
                      const void* vbias, double* acc, const Params& prm) {
    const scalar_t* in[N];
    for (int k = 0; k < N; ++k) in[k] = static_cast<const scalar_t*>(vin[k]);
    scalar_t* __restrict__ out = static_cast<scalar_t*>(vout);
    const acc_t* __restrict__ bias = static_cast<const acc_t*>(vbias);
    const acc_t alpha = acc_t(prm.alpha), gain = acc_t(prm.gain), clamp = acc_t(prm.clamp);
    if constexpr (K != Kind::kFwd) {
      if (acc) {
        for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
          const int64_t m = std::min(kBlock, n - i0);
          for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
            acc_t s[kBlock] = {};
            const int64_t r1 = std::min(rows, r0 + kBlock);
            for (int64_t r = r0; r < r1; ++r) {
              const scalar_t* blk[N];
              for (int k = 0; k < N; ++k) blk[k] = in[k] + r * rstride[k] + i0;
              scalar_t* __restrict__ o = out + r * n + i0;
              if (bias) {
                for (int64_t i = 0; i < m; ++i) {
                  const acc_t v = elem(blk, i, bias[i0 + i], alpha, gain, clamp);
                  o[i] = scalar_t(v);
                  s[i] += v;
                }
              } else {
                for (int64_t i = 0; i < m; ++i) {
                  const acc_t v = elem(blk, i, acc_t(0), alpha, gain, clamp);
                  o[i] = scalar_t(v);
                  s[i] += v;
                }
              }
            }
            double* __restrict__ a = acc + i0;
            for (int64_t i = 0; i < m; ++i) a[i] += double(s[i]);
          }
        }
        return;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* row[N];
      for (int k = 0; k < N; ++k) row[k] = in[k] + r * rstride[k];
      scalar_t* __restrict__ o = out + r * n;
      if (bias) {
        for (int64_t i = 0; i < n; ++i) o[i] = scalar_t(elem(row, i, bias[i], alpha, gain, clamp));
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = scalar_t(elem(row, i, acc_t(0), alpha, gain, clamp));
      }
    }
  }
};

// The type-erased driver. Operands with inc == 0 (a broadcast gradient) point at a buffer holding the value
// repeated, at least as long as any run, so every kernel reads unit-stride arrays.
struct Job {
  int nin = 0;
  const char* in[3] = {nullptr, nullptr, nullptr};
  int64_t inc[3] = {1, 1, 1};
  char* out = nullptr;
  int64_t elsize = 0;
  const void* bias = nullptr;  // acc_t values, or null
  bool bias_is_double = false;
  double* bias_sum = nullptr;  // length C, or null
  Params prm{};
  RunConst run_const = nullptr;
  RunVec run_vec = nullptr;
};

inline double bias_at(const Job& j, int64_t c) {
  if (!j.bias) return 0.0;
  return j.bias_is_double ? static_cast<const double*>(j.bias)[c] : double(static_cast<const float*>(j.bias)[c]);
}

inline void operands_at(const Job& j, int64_t i, const void** in) {
  for (int k = 0; k < j.nin; ++k) in[k] = j.in[k] + (j.inc[k] ? i * j.elsize : 0);
}

void drive(const Job& j, const BiasLayout& L) {
  const int64_t O = L.O, C = L.C, S = L.S;
  const bool reduce = j.bias_sum != nullptr;
  if (O * C * S == 0) {
    if (reduce) std::fill(j.bias_sum, j.bias_sum + C, 0.0);
    return;
  }
  if (S >= 16 || C == 1) {
    // Rows of S contiguous elements with one channel each, split into segments of at most kChunk.
    const int64_t nseg = ceil_div(S, kChunk), seglen = ceil_div(S, nseg);
    const int64_t items = O * C * nseg;
    std::vector<double> partial(reduce ? items : 0);
    at::parallel_for(0, items, std::max<int64_t>(1, kChunk / seglen), [&](int64_t begin, int64_t end) {
      const void* in[3];
      for (int64_t it = begin; it < end; ++it) {
        const int64_t row = it / nseg, seg = it % nseg;
        const int64_t s0 = seg * seglen, n = std::min(S, s0 + seglen) - s0, i0 = row * S + s0;
        operands_at(j, i0, in);
        const double s = j.run_const(in, j.out + i0 * j.elsize, n, bias_at(j, row % C), j.prm, reduce);
        if (reduce) partial[it] = s;
      }
    });
    if (reduce) {
      at::parallel_for(0, C, 64, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          double s = 0;
          for (int64_t o = 0; o < O; ++o) {
            const double* p = &partial[(o * C + c) * nseg];
            for (int64_t g = 0; g < nseg; ++g) s += p[g];
          }
          j.bias_sum[c] = s;
        }
      });
    }
    return;
  }
  // Short runs per channel (channels-last, or (N, C) with dim=1): blocks of whole [C][S] rows, one partial bias
  // sum per block.
  // Blocks of equal row counts (at most kChunk elements each): 128 rows of 784 as 4 x 32, not 3 x 41 + 5 (two threads
  // would then take 82 and 46 rows). The split depends on the shape only, never on the thread count.
  const int64_t rowlen = C * S, nblk = ceil_div(O, std::max<int64_t>(1, kChunk / rowlen));
  const int64_t rows_per_blk = ceil_div(O, nblk);
  std::vector<double> partial(reduce ? nblk * C : 0, 0.0);
  int64_t rstride[3];
  for (int k = 0; k < 3; ++k) rstride[k] = j.inc[k] ? rowlen : 0;
  at::parallel_for(0, nblk, 1, [&](int64_t begin, int64_t end) {
    const void* in[3];
    for (int64_t blk = begin; blk < end; ++blk) {
      double* acc = reduce ? &partial[blk * C] : nullptr;
      const int64_t o0 = blk * rows_per_blk, o1 = std::min(O, o0 + rows_per_blk);
      if (S == 1) {
        operands_at(j, o0 * rowlen, in);
        j.run_vec(in, rstride, j.out + o0 * rowlen * j.elsize, o1 - o0, C, j.bias, acc, j.prm);
        continue;
      }
      for (int64_t o = o0; o < o1; ++o) {
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i0 = o * rowlen + c * S;
          operands_at(j, i0, in);
          const double s = j.run_const(in, j.out + i0 * j.elsize, S, bias_at(j, c), j.prm, reduce);
          if (reduce) acc[c] += s;
        }
      }
    }
  });
  if (reduce) {
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t blk = 0; blk < nblk; ++blk) s += partial[blk * C + c];
      j.bias_sum[c] = s;
    }
  }
}

template <Kind K, int A, typename scalar_t>
void pick_kernels(Job& j, bool ref_is_y) {
  if constexpr (K != Kind::kFwd && kActTable[A].y_ok) {
    if (ref_is_y) {
      j.run_const = &Kernel<K, A, true, scalar_t>::run_const;
      j.run_vec = &Kernel<K, A, true, scalar_t>::run_vec;
      return;
    }
  }
  j.run_const = &Kernel<K, A, false, scalar_t>::run_const;
  j.run_vec = &Kernel<K, A, false, scalar_t>::run_vec;
}

// Runs one of the three element computations over a plan; returns (out, bias_sum).
template <Kind K, size_t N>
std::tuple<at::Tensor, at::Tensor> run(BiasActPlan<N>& p) {
  const int64_t numel = p.out.numel();
  if (K == Kind::kBwd2 && !kActTable[p.args.act].has_2nd) {  // f'' == 0 (and the clamp mask is flat)
    p.out.zero_();
    p.bias_sum.zero_();
    return {p.out, p.bias_sum};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.out.scalar_type(), "fastgan_bias_act_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Job j;
    j.nin = int(N);
    j.elsize = int64_t(sizeof(scalar_t));
    j.prm = {p.args.alpha, p.args.gain, p.args.clamp};
    j.out = static_cast<char*>(p.out.data_ptr());
    // Operands broadcast from one value read from a buffer of that value, as long as the longest run.
    std::vector<scalar_t> bcast[N];
    const int64_t maxrun = std::min<int64_t>(numel, std::max<int64_t>(kChunk, p.layout.C * p.layout.S));
    for (size_t k = 0; k < N; ++k) {
      const at::Tensor& t = p.in[k].t;
      j.inc[k] = p.in[k].inc;
      if (p.in[k].inc == 0 && numel > 0) {
        bcast[k].assign(size_t(maxrun), t.template const_data_ptr<scalar_t>()[0]);
        j.in[k] = reinterpret_cast<const char*>(bcast[k].data());
      } else {
        j.in[k] = static_cast<const char*>(t.const_data_ptr());
      }
    }
    std::vector<acc_t> bias_vals;
    if (p.bias.defined()) {
      const scalar_t* bp = p.bias.template const_data_ptr<scalar_t>();
      bias_vals.assign(bp, bp + p.bias.numel());
      j.bias = bias_vals.data();
      j.bias_is_double = std::is_same_v<acc_t, double>;
    }
    std::vector<double> bsum(p.args.bias_grad ? p.bias_sum.numel() : 0);
    if (p.args.bias_grad) j.bias_sum = bsum.data();
    dispatch_act(p.args.act, [&](auto tag) {
      constexpr int A = decltype(tag)::value;
      if constexpr (K != Kind::kBwd2 || kActTable[A].has_2nd) pick_kernels<K, A, scalar_t>(j, p.args.ref_is_y);
    });
    drive(j, p.layout);
    if (p.args.bias_grad) {
      scalar_t* bs = p.bias_sum.template data_ptr<scalar_t>();
      for (size_t c = 0; c < bsum.size(); ++c) bs[c] = scalar_t(bsum[c]);
    }
  });
  return {p.out, p.bias_sum};
}

at::Tensor bias_act_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim, c10::string_view act,
                        double alpha, double gain, double clamp) {
  auto p = plan_bias_act<1>({"x"}, {x}, b, dim, std::string(act), alpha, gain, clamp, false, false);
  return std::get<0>(run<Kind::kFwd>(p));
}

std::tuple<at::Tensor, at::Tensor> bias_act_backward_cpu(const at::Tensor& grad, const at::Tensor& ref,
                                                         const c10::optional<at::Tensor>& b, int64_t dim,
                                                         c10::string_view act, double alpha, double gain,
                                                         double clamp, bool ref_is_y, bool bias_grad) {
  auto p = plan_bias_act<2>({"grad", "ref"}, {grad, ref}, b, dim, std::string(act), alpha, gain, clamp, ref_is_y,
                            bias_grad);
  return run<Kind::kBwd>(p);
}

std::tuple<at::Tensor, at::Tensor> bias_act_backward2_cpu(const at::Tensor& grad_grad, const at::Tensor& grad,
                                                          const at::Tensor& ref, const c10::optional<at::Tensor>& b,
                                                          int64_t dim, c10::string_view act, double alpha,
                                                          double gain, double clamp, bool ref_is_y, bool bias_grad) {
  auto p = plan_bias_act<3>({"grad_grad", "grad", "ref"}, {grad_grad, grad, ref}, b, dim, std::string(act), alpha,
                            gain, clamp, ref_is_y, bias_grad);
  return run<Kind::kBwd2>(p);
}

}  // namespace

void bias_act_inplace_cpu(at::Tensor& y, const c10::optional<at::Tensor>& b, int64_t dim, const std::string& act,
                          double alpha, double gain, double clamp) {
  auto p = plan_bias_act<1>({"y"}, {y}, b, dim, act, alpha, gain, clamp, false, false, /*inplace=*/true);
  run<Kind::kFwd>(p);
}

TORCH_LIBRARY_IMPL(fastgan, CPU, m) {
  m.impl("bias_act", &bias_act_cpu);
  m.impl("bias_act_backward", &bias_act_backward_cpu);
  m.impl("bias_act_backward2", &bias_act_backward2_cpu);
}

}  // namespace fastgan
