// The work plan of the CUDA kernel_sum walk (csrc/cuda/kernel_sum.cu): TILE x TILE pair tiles grouped into pr x pc
// super-blocks, one CTA each, and the partial buffers that layout costs. Host-only arithmetic, in a header so that
// the C++ unit tests check it on a CPU (csrc/tests/test_kernel_sum_plan_cpu.cpp).
//
// Partial buffers: the row side keeps one [n][d] copy per super-column (pc slots: [pc][n][d]), the column side one
// [m][d] copy per super-row ([pr][m][d]); the second order keeps two of each (t1, t2). So each slot of a side costs
// copies x rows x d x elem bytes, zero-filled per call. Slots are bounded two ways:
//   - in count: at most kMaxSlots per side, more only for an x-y sum with few tiles on the other side, and then only
//     within kExtraSlotBytes of that side's partials;
//   - in bytes: at most kPartialBytesPerSide of a side's partials, whatever the count (issue 28: n = m = 4096,
//     d = 12288 in fp32 took 16 slots x 201 MB = 3.2 GB per side and copy, zero-filled per call). Such a large
//     walk then runs on fewer CTAs: each of its pair tiles is long (d = 12288: 50 MFLOP per 64 x 64 tile).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace fastgan {

constexpr int kMaxSlots = 16;  // super-blocks per side: the partial buffers' copies of each side
// an x-y sum with few tiles on one side may take more slots on the other, within this many bytes of its partials
// (n = 64, d = 12288 against a long y: 264 slots were 830 MB; now 21 slots, 64 MiB)
constexpr int64_t kExtraSlotBytes = int64_t(64) << 20;
constexpr int64_t kPartialBytesPerSide = int64_t(1) << 30;  // a side's partial buffers, all copies, at most

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct TilePlan {
  int tile;
  int64_t tr, tc;  // tiles along n, along m
  int pr, pc;      // super-rows, super-columns (the column side's and the row side's slots)
  int64_t ctas;
};

// Slots one side may have within kPartialBytesPerSide: its buffers hold `copies` x slots x rows x d elements of
// `elem` bytes (copies = 0: that side keeps no partials, no bound).
inline int64_t slot_cap(int64_t rows, int64_t d, int64_t elem, int copies) {
  if (copies <= 0) return std::numeric_limits<int64_t>::max();
  const int64_t per_slot = std::max<int64_t>(1, int64_t(copies) * rows * d * elem);
  return std::max<int64_t>(1, kPartialBytesPerSide / per_slot);
}

// The tile: the largest of 64, 32, 16 (at most tile_cap) with at least one tile (of the walked ones) per SM. The
// super-blocks: at most kMaxSlots per side (and kPartialBytesPerSide); an x-y sum with few tiles on one side takes
// more on the other, up to two CTAs per SM. copies_row / copies_col: the partial copies each side keeps (0, 1, 2;
// a self-sum keeps the row side's only).
inline TilePlan plan_tiles(int64_t n, int64_t m, int64_t d, int64_t elem, bool self, int sms, int tile_cap,
                           int copies_row, int copies_col) {
  TilePlan P{16, 0, 0, 1, 1, 1};
  for (int tile : {64, 32, 16}) {
    if (tile > tile_cap) continue;
    P.tile = tile;
    P.tr = ceil_div(n, tile);
    P.tc = ceil_div(m, tile);
    const int64_t work = self ? P.tr * (P.tr + 1) / 2 : P.tr * P.tc;
    if (work >= sms) break;
  }
  const int64_t pc_bytes = slot_cap(n, d, elem, copies_row);  // row buffers: [pc][n][d]
  const int64_t pr_bytes = slot_cap(m, d, elem, copies_col);  // column buffers: [pr][m][d]
  if (self) {
    P.pr = P.pc = int(std::min<int64_t>({P.tr, kMaxSlots, pc_bytes}));
    P.ctas = int64_t(P.pr) * (P.pr + 1) / 2;
  } else {
    int64_t pr = std::min<int64_t>({P.tr, kMaxSlots, pr_bytes}), pc = std::min<int64_t>({P.tc, kMaxSlots, pc_bytes});
    const int64_t target = 2 * int64_t(sms);
    // beyond kMaxSlots, a side's slots are bounded by kExtraSlotBytes of partial buffer (row buffers: pc x n x d)
    const int64_t pc_cap =
        std::min(pc_bytes, std::max<int64_t>(kMaxSlots, kExtraSlotBytes / std::max<int64_t>(1, n * d * elem)));
    const int64_t pr_cap =
        std::min(pr_bytes, std::max<int64_t>(kMaxSlots, kExtraSlotBytes / std::max<int64_t>(1, m * d * elem)));
    if (pr * pc < target) {
      if (pr < kMaxSlots) pc = std::min({P.tc, pc_cap, std::max(pc, ceil_div(target, pr))});
      if (pc < kMaxSlots) pr = std::min({P.tr, pr_cap, std::max(pr, ceil_div(target, pc))});
    }
    P.pr = int(pr);
    P.pc = int(pc);
    P.ctas = pr * pc;
  }
  return P;
}

// Bytes of the partial buffers a plan allocates ([pc][n][d] x copies_row, [pr][m][d] x copies_col; the per-row sums
// beside them are d times smaller and not counted).
inline int64_t partial_bytes(const TilePlan& P, int64_t n, int64_t m, int64_t d, int64_t elem, int copies_row,
                             int copies_col) {
  return (int64_t(copies_row) * P.pc * n + int64_t(copies_col) * P.pr * m) * d * elem;
}

}  // namespace fastgan
