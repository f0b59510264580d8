// C++ unit test of csrc/include/fastgan/kernel_sum_plan.h, the CUDA kernel_sum walk's plan (tiles, super-blocks, partial
// buffers), on a CPU: every plan's partial buffers stay within kPartialBytesPerSide per side (issue 28: n = m = 4096,
// d = 12288 in fp32 had 16 slots of 201 MB per side and copy), the grid still fills an H100 (132 SMs) at the
// benchmark shapes, a side without partials is not bounded by them, and the plans within the budget are the ones
// the walk had before the bound (the fixed shapes below, written out). ctest runs it.
#include <cstdio>
#include <string>

#include "expect.h"
#include "fastgan/kernel_sum_plan.h"

namespace {

using fastgan_test::expect;

std::string shape(int64_t n, int64_t m, int64_t d, int64_t elem, bool self, int cr, int cc) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "n=%lld m=%lld d=%lld elem=%lld self=%d copies=(%d, %d)", (long long)n,
                (long long)m, (long long)d, (long long)elem, int(self), cr, cc);
  return buf;
}

}  // namespace

int main() {
  using namespace fastgan;
  const int sms = 132;
  // the budget, on every shape from tiny to huge, both sides, every copy count
  for (int64_t n : {1, 64, 1000, 4096, 65536}) {
    for (int64_t m : {1, 128, 4096, 50000}) {
      for (int64_t d : {1, 64, 784, 12288}) {
        for (int64_t elem : {4, 8}) {
          for (bool self : {false, true}) {
            for (int cr : {0, 1, 2}) {
              for (int cc : {0, 1, 2}) {
                if (self && cc) continue;  // a self-sum keeps the row side's partials only
                const int64_t mm = self ? n : m;
                const TilePlan P = plan_tiles(n, mm, d, elem, self, sms, 64, cr, cc);
                const std::string s = shape(n, mm, d, elem, self, cr, cc);
                const int64_t row_bytes = int64_t(cr) * P.pc * n * d * elem;
                const int64_t col_bytes = int64_t(cc) * P.pr * mm * d * elem;
                // one slot is always allowed: a single copy larger than the budget is the input's own size
                expect(row_bytes <= kPartialBytesPerSide || P.pc == 1, s + ": row partials over budget");
                expect(col_bytes <= kPartialBytesPerSide || P.pr == 1, s + ": column partials over budget");
                expect(partial_bytes(P, n, mm, d, elem, cr, cc) == row_bytes + col_bytes, s + ": partial_bytes");
                expect(P.pr >= 1 && P.pc >= 1 && P.pr <= P.tr && P.pc <= P.tc, s + ": slots within the tiles");
                expect(P.ctas == (self ? int64_t(P.pr) * (P.pr + 1) / 2 : int64_t(P.pr) * P.pc), s + ": ctas");
              }
            }
          }
        }
      }
    }
  }
  // the case: 16 x 16 slots of 201 MB before (the old plan: 3.2 GB per side and copy); now 1 GiB per side
  {
    const TilePlan P = plan_tiles(4096, 4096, 12288, 4, false, sms, 64, 1, 1);
    expect(P.pr == 5 && P.pc == 5, "n = m = 4096, d = 12288 fp32: 5 slots a side (1 GiB / 201 MB)");
    const TilePlan Q = plan_tiles(4096, 4096, 12288, 4, true, sms, 64, 2, 0);
    expect(Q.pr == 2 && Q.pc == 2, "self, second order: 2 slots (1 GiB / 2 copies of 201 MB)");
  }
  // within the budget: the plans the walk had before the bound (tile, slots), which fill the SMs
  struct Want {
    int64_t n, m, d;
    bool self;
    int tile, pr, pc;
  };
  for (const Want& w : {Want{1024, 1024, 64, true, 64, 16, 16}, Want{256, 256, 64, true, 16, 16, 16},
                        Want{1024, 1024, 64, false, 64, 16, 16}, Want{64, 50000, 64, false, 64, 1, 264},
                        Want{128, 128, 784, false, 16, 8, 8}}) {
    const TilePlan P = plan_tiles(w.n, w.m, w.d, 4, w.self, sms, 64, 1, w.self ? 0 : 1);
    const std::string s = shape(w.n, w.m, w.d, 4, w.self, 1, w.self ? 0 : 1);
    expect(P.tile == w.tile && P.pr == w.pr && P.pc == w.pc,
           s + ": plan tile " + std::to_string(P.tile) + " slots " + std::to_string(P.pr) + " x " +
               std::to_string(P.pc));
  }
  // a side without partials (value only, or no gradient for y) is not held to the byte bound
  {
    const TilePlan P = plan_tiles(4096, 4096, 12288, 4, false, sms, 64, 1, 0);
    expect(P.pr == 16 && P.pc == 5, "no column partials: 16 super-rows, the row side bounded");
  }
  return fastgan_test::report();
}
