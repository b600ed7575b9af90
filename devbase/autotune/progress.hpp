// A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise (logs).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace attnforge::tuner {

class Progress {
 public:
  explicit Progress(int total) : total_(total), tty_(::isatty(2) != 0), start_(std::chrono::steady_clock::now()) {}
  // Marks one step done; `what` says what is running now (or just finished).
  void step(const std::string& what) {
    ++done_;
    draw(what);
  }
  void note(const std::string& what) { draw(what); }
  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }
  double elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  void draw(const std::string& what) {
    constexpr int kWidth = 30;
    const int filled = total_ > 0 ? done_ * kWidth / total_ : kWidth;
    std::string bar(size_t(filled), '#');
    bar.resize(kWidth, '.');
    if (tty_) {
      std::string w = what.size() > 90 ? what.substr(0, 87) + "..." : what;
      std::fprintf(stderr, "\r\033[K[%s] %d/%d %5.0fs %s", bar.c_str(), done_, total_, elapsed_s(), w.c_str());
    } else {
      std::fprintf(stderr, "[%s] %d/%d %5.0fs %s\n", bar.c_str(), done_, total_, elapsed_s(), what.c_str());
    }
    std::fflush(stderr);
  }
  int total_, done_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace attnforge::tuner
