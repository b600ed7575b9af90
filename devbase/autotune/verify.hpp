// attnforge-tune --verify's rule for one pick (auto's, or the heuristics'): does it hold up against
// the winner timed beside it?
#pragma once
#include <string>

namespace attnforge::tuner {

// A pick holds when it is the winner itself, or when its time is within `slack` (0.05: 5 %) of the
// winner's time in the same pass. The winner itself always holds: two timings of one variant measure
// only the device's spread, which on the lent H200 reached 5–26 % for single large calls. A pick
// that failed to run (time ≤ 0) never holds.
inline bool pick_holds(const std::string& picked, double picked_ms, const std::string& winner, double winner_ms,
                       double slack) {
  if (picked_ms <= 0) return false;
  if (!picked.empty() && picked == winner) return true;
  return winner_ms > 0 && picked_ms <= (1.0 + slack) * winner_ms;
}

}  // namespace attnforge::tuner
