// Links against the installed library through find_package(attnforge) and calls the C API: the
// version, the compiled variants, and a rejected call's message (no GPU needed for any of them).
#include <attnforge/attnforge.h>

#include <cstdio>
#include <cstring>

int main() {
  std::printf("attnforge %s, %d variants, first %s\n", attnforge_version(), attnforge_variant_count(),
              attnforge_variant_count() > 0 ? attnforge_variant_name(0) : "-");
  attnforge_args args;
  attnforge_args_init(&args);
  const attnforge_status st = attnforge_forward(&args, nullptr);  // q.data is NULL: refused, nothing launched
  std::printf("forward without tensors: %s: %s\n", attnforge_status_string(st), attnforge_last_error());
  return attnforge_variant_count() > 0 && st == ATTNFORGE_INVALID_ARGUMENT && std::strstr(attnforge_last_error(), "q") ? 0 : 1;
}
