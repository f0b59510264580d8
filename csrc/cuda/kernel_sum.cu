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
//
// Files: this one (the value and first order: fastgan::kernel_sum), kernel_sum_backward2.cu (the second order), and
// the headers they share: kernel_sum_device.cuh (argument structs, helpers, the small kernels), kernel_sum_tiles.cuh
// (the pair walk's kernel), kernel_sum_walk.cuh (the host walk and the finishing passes).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "kernel_sum_walk.cuh"

namespace fastgan {
namespace {

// S from the CTAs' shares (value_kernel: one block, in order).
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
  const Walk W = grads ? walk_pairs<T, 1>(P, call, diagonal, grad_x, col_side, at::Tensor(), at::Tensor(), sms, stream)
                       : walk_pairs<T, 0>(P, call, diagonal, grad_x, col_side, at::Tensor(), at::Tensor(), sms, stream);
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

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) {
  m.impl("kernel_sum", &kernel_sum_cuda);
}

}  // namespace fastgan
