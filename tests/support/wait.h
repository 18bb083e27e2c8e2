#pragma once
// Polling for a condition in tests that drive real processes and sockets.

#include <chrono>
#include <functional>
#include <thread>

namespace morph::test {

// True as soon as `pred` holds (polled every 20 ms), false if it still does not after `timeout`.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace morph::test
