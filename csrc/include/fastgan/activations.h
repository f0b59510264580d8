// The activation table of fastgan: ONE definition of every activation and its first and second derivatives,
// shared by the CPU (C++) and CUDA kernels. The Python table (fastgan/activations.py) carries the same names,
// ids and defaults; tests/test_bias_act.py checks the two agree through fastgan._C.activation_table().
//
// Notation: s = x + b is the pre-activation, a = f(s) the activation, y = clamp(a * gain, -c, c) the op's output.
//   d1_x(s, a)  = f'(s)                       d2_x(s, a) = f''(s)
//   d1_y(a)     = f'(s) written in terms of a  d2_y(a)    = d f'(s) / d a   (only where y_ok: f' is a function of a)
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#if !defined(__CUDACC__) && !defined(__HIPCC__)
#include "fastgan/vec_math.h"
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FG_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
// forced on the host too: GCC stops inlining in a file with many instantiations (csrc/cpu/bias_act.cpp), and one
// out-of-line call per element keeps a loop scalar (bias_act tanh took 650 us for 128 x 784 floats, 4.7x torch.tanh)
#define FG_HD inline __attribute__((always_inline))
#else
#define FG_HD inline
#endif

namespace fastgan {

enum Act : int {
  kLinear = 0,
  kRelu = 1,
  kLrelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kElu = 5,
  kSelu = 6,
  kSoftplus = 7,
  kSwish = 8,
  kNumActs = 9,
};

struct ActSpec {
  const char* name;
  double default_alpha;
  double default_gain;
  bool y_ok;     // the backward can be computed from the output alone (given alpha >= 0 and gain != 0)
  bool has_2nd;  // non-zero second derivative
};

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kSeluLambda = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

constexpr ActSpec kActTable[kNumActs] = {
    {"linear", 0.0, 1.0, true, false},  {"relu", 0.0, kSqrt2, true, false}, {"lrelu", 0.2, kSqrt2, true, false},
    {"tanh", 0.0, 1.0, true, true},     {"sigmoid", 0.0, 1.0, true, true},  {"elu", 1.0, 1.0, true, true},
    {"selu", 0.0, 1.0, true, true},     {"softplus", 0.0, 1.0, true, true}, {"swish", 0.0, kSqrt2, false, true},
};

// ---- elementary functions, overloaded for float and double on host and device ----
#if defined(__CUDACC__) || defined(__HIPCC__)
FG_HD float fg_exp(float v) { return ::expf(v); }
FG_HD double fg_exp(double v) { return ::exp(v); }
FG_HD float fg_expm1(float v) { return ::expm1f(v); }
FG_HD double fg_expm1(double v) { return ::expm1(v); }
FG_HD float fg_log1p(float v) { return ::log1pf(v); }
FG_HD double fg_log1p(double v) { return ::log1p(v); }
FG_HD float fg_tanh(float v) { return ::tanhf(v); }
FG_HD double fg_tanh(double v) { return ::tanh(v); }
#else
// float on the host: the vectorisable vec_math versions (bias_act's loops then compile to SIMD code; libm's scalar
// expf / tanhf kept them scalar, several times slower than torch's own vectorised tanh / sigmoid)
FG_HD float fg_exp(float v) { return vec_exp(v); }
FG_HD double fg_exp(double v) { return std::exp(v); }
FG_HD float fg_expm1(float v) { return std::expm1(v); }
FG_HD double fg_expm1(double v) { return std::expm1(v); }
FG_HD float fg_log1p(float v) { return std::log1p(v); }
FG_HD double fg_log1p(double v) { return std::log1p(v); }
FG_HD float fg_tanh(float v) { return vec_tanh(v); }
FG_HD double fg_tanh(double v) { return std::tanh(v); }
#endif

// Numerically stable logistic sigmoid.
template <typename T>
FG_HD T fg_sigmoid(T s) {
  const T e = fg_exp(-(s < T(0) ? -s : s));  // exp(-|s|) in (0, 1]
  const T r = T(1) / (T(1) + e);
  return s >= T(0) ? r : e * r;
}

// a = f(s)
template <int A, typename T>
FG_HD T act_fwd(T s, T alpha) {
  if constexpr (A == kLinear) {
    return s;
  } else if constexpr (A == kRelu) {
    return s < T(0) ? T(0) : s;  // NaN passes through, as torch.relu's (issue 31)
  } else if constexpr (A == kLrelu) {
    return s > T(0) ? s : alpha * s;
  } else if constexpr (A == kTanh) {
    return fg_tanh(s);
  } else if constexpr (A == kSigmoid) {
    return fg_sigmoid(s);
  } else if constexpr (A == kElu) {
    return s > T(0) ? s : alpha * fg_expm1(s);
  } else if constexpr (A == kSelu) {
    return s > T(0) ? T(kSeluLambda) * s : T(kSeluLambda * kSeluAlpha) * fg_expm1(s);
  } else if constexpr (A == kSoftplus) {
    // log(1 + e^s) = max(s, 0) + log1p(e^-|s|)
    return (s > T(0) ? s : T(0)) + fg_log1p(fg_exp(-(s < T(0) ? -s : s)));
  } else {  // kSwish
    return s * fg_sigmoid(s);
  }
}

// f'(s), given s and a = f(s)
template <int A, typename T>
FG_HD T act_d1_x(T s, T a, T alpha) {
  if constexpr (A == kLinear) {
    return T(1);
  } else if constexpr (A == kRelu) {
    return s <= T(0) ? T(0) : T(1);  // at NaN: 1, the gradient passes (torch's threshold_backward)
  } else if constexpr (A == kLrelu) {
    return s > T(0) ? T(1) : alpha;
  } else if constexpr (A == kTanh) {
    return T(1) - a * a;
  } else if constexpr (A == kSigmoid) {
    return a * (T(1) - a);
  } else if constexpr (A == kElu) {
    return s > T(0) ? T(1) : (s <= T(0) ? alpha * fg_exp(s) : T(0));  // NaN: 0, the reference's (issue 31)
  } else if constexpr (A == kSelu) {
    return s > T(0) ? T(kSeluLambda) : (s <= T(0) ? T(kSeluLambda * kSeluAlpha) * fg_exp(s) : T(0));
  } else if constexpr (A == kSoftplus) {
    return fg_sigmoid(s);
  } else {  // kSwish
    const T sg = fg_sigmoid(s);
    return sg * (T(1) + s * (T(1) - sg));
  }
}

// f''(s), given s and a = f(s)
template <int A, typename T>
FG_HD T act_d2_x(T s, T a, T alpha) {
  if constexpr (A == kLinear || A == kRelu || A == kLrelu) {
    return T(0);
  } else if constexpr (A == kTanh) {
    return T(-2) * a * (T(1) - a * a);
  } else if constexpr (A == kSigmoid) {
    return a * (T(1) - a) * (T(1) - T(2) * a);
  } else if constexpr (A == kElu) {
    return s > T(0) ? T(0) : alpha * fg_exp(s);
  } else if constexpr (A == kSelu) {
    return s > T(0) ? T(0) : T(kSeluLambda * kSeluAlpha) * fg_exp(s);
  } else if constexpr (A == kSoftplus) {
    const T sg = fg_sigmoid(s);
    return sg * (T(1) - sg);
  } else {  // kSwish
    const T sg = fg_sigmoid(s);
    return sg * (T(1) - sg) * (T(2) + s * (T(1) - T(2) * sg));
  }
}

// f'(s) from a = f(s) alone; valid for y_ok activations with alpha >= 0.
template <int A, typename T>
FG_HD T act_d1_y(T a, T alpha) {
  if constexpr (A == kLinear) {
    return T(1);
  } else if constexpr (A == kRelu) {
    return a <= T(0) ? T(0) : T(1);
  } else if constexpr (A == kLrelu) {
    return a > T(0) ? T(1) : alpha;
  } else if constexpr (A == kTanh) {
    return T(1) - a * a;
  } else if constexpr (A == kSigmoid) {
    return a * (T(1) - a);
  } else if constexpr (A == kElu) {
    return a > T(0) ? T(1) : (a <= T(0) ? a + alpha : T(0));
  } else if constexpr (A == kSelu) {
    return a > T(0) ? T(kSeluLambda) : (a <= T(0) ? a + T(kSeluLambda * kSeluAlpha) : T(0));
  } else if constexpr (A == kSoftplus) {
    return -fg_expm1(-a);  // sigmoid(s) = 1 - e^-a
  } else {  // kSwish: not y_ok; never instantiated on the y path
    return T(0);
  }
}

// d f'(s) / d a from a alone; valid for y_ok activations with alpha >= 0.
template <int A, typename T>
FG_HD T act_d2_y(T a, T alpha) {
  (void)alpha;
  if constexpr (A == kLinear || A == kRelu || A == kLrelu || A == kSwish) {
    return T(0);
  } else if constexpr (A == kTanh) {
    return T(-2) * a;
  } else if constexpr (A == kSigmoid) {
    return T(1) - T(2) * a;
  } else if constexpr (A == kElu || A == kSelu) {
    return a > T(0) ? T(0) : T(1);
  } else {  // kSoftplus
    return fg_exp(-a);
  }
}

// Clamp of the scaled activation; NaN propagates (as torch.clamp). clamp < 0 means no clamp.
template <typename T>
FG_HD T apply_clamp(T v, T clamp) {
  if (clamp < T(0)) return v;
  return v > clamp ? clamp : (v < -clamp ? -clamp : v);
}

// Whether the gradient passes the clamp: strictly inside (-clamp, clamp). The boundary counts as clamped, so the
// answer is the same from the unclamped value v and from the clamped output y (an output equal to +-clamp cannot
// tell whether it was clamped); NaN never passes.
template <typename T>
FG_HD bool clamp_pass(T v, T clamp) {
  return clamp < T(0) || (v > -clamp && v < clamp);
}

// Element-wise pieces of the three ops (forward, first and second derivative), so CPU and CUDA compute
// exactly the same expressions.  bv is the bias value (0 without bias); ref is x (YREF=false) or y (YREF=true).
template <int A, typename T>
FG_HD T bias_act_fwd_elem(T x, T bv, T alpha, T gain, T clamp) {
  return apply_clamp(act_fwd<A>(x + bv, alpha) * gain, clamp);
}

template <int A, bool YREF, typename T>
FG_HD T bias_act_bwd_elem(T g, T ref, T bv, T alpha, T gain, T clamp) {
  if constexpr (YREF) {
    const T a = gain == T(1) ? ref : ref / gain;  // the same value; a loop-invariant test the compiler unswitches
    return clamp_pass(ref, clamp) ? g * gain * act_d1_y<A>(a, alpha) : T(0);
  } else {
    const T s = ref + bv;
    const T a = act_fwd<A>(s, alpha);
    return clamp_pass(a * gain, clamp) ? g * gain * act_d1_x<A>(s, a, alpha) : T(0);
  }
}

// d/d(ref) of bias_act_bwd_elem, contracted with the incoming gradient gg.
template <int A, bool YREF, typename T>
FG_HD T bias_act_bwd2_elem(T gg, T g, T ref, T bv, T alpha, T gain, T clamp) {
  if constexpr (YREF) {
    const T a = ref / gain;
    return clamp_pass(ref, clamp) ? gg * g * act_d2_y<A>(a, alpha) : T(0);
  } else {
    const T s = ref + bv;
    const T a = act_fwd<A>(s, alpha);
    return clamp_pass(a * gain, clamp) ? gg * g * gain * act_d2_x<A>(s, a, alpha) : T(0);
  }
}

// Calls f(std::integral_constant<int, A>{}) with the activation as a compile-time constant
// (C++17: a generic lambda reads it back as `constexpr int A = decltype(tag)::value;`).
template <typename F>
inline void dispatch_act(int act, F&& f) {
  switch (act) {
    case kLinear: f(std::integral_constant<int, kLinear>{}); break;
    case kRelu: f(std::integral_constant<int, kRelu>{}); break;
    case kLrelu: f(std::integral_constant<int, kLrelu>{}); break;
    case kTanh: f(std::integral_constant<int, kTanh>{}); break;
    case kSigmoid: f(std::integral_constant<int, kSigmoid>{}); break;
    case kElu: f(std::integral_constant<int, kElu>{}); break;
    case kSelu: f(std::integral_constant<int, kSelu>{}); break;
    case kSoftplus: f(std::integral_constant<int, kSoftplus>{}); break;
    default: f(std::integral_constant<int, kSwish>{}); break;
  }
}

}  // namespace fastgan
