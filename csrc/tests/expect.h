// The C++ unit tests' check counter: expect(ok, what) counts a check and prints what failed; main() ends with
// `return report();` (the count, and exit status 1 on any failure).
#pragma once

#include <cstdio>
#include <string>

namespace fastgan_test {

inline int failures = 0;
inline int checks = 0;

inline void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

inline int report() {
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace fastgan_test
