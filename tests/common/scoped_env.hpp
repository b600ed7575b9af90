// An environment variable that a test sets for the library calls it makes, unset again when the test
// ends, also when a check throws (the library reads these per call: ATTNFORGE_FLASH_BWD_OVERLAP, …).
#pragma once
#include <cstdlib>

namespace attnforge::test {

class ScopedEnv {
 public:
  explicit ScopedEnv(const char* name) : name_(name) {}
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() { unsetenv(name_); }
  void set(const char* value) const { setenv(name_, value, 1); }

 private:
  const char* name_;
};

}  // namespace attnforge::test
