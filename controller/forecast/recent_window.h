#pragma once
// RecentWindow: the last N values of one series in a fixed ring — the bounded history the forecasters keep
// per VM. Storage never grows past N; pushing a value is O(1). It owns no clock and no I/O.

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace morph::forecast {

class RecentWindow {
 public:
  explicit RecentWindow(size_t capacity = 1) : values_(std::max<size_t>(capacity, 1)) {}

  void push(double v) {
    values_[next_] = v;
    next_ = (next_ + 1) % values_.size();
    if (size_ < values_.size()) ++size_;
  }
  void clear() {
    next_ = 0;
    size_ = 0;
  }
  size_t size() const { return size_; }
  size_t capacity() const { return values_.size(); }
  // The value `age` steps back: back(0) is the latest. Requires age < size().
  double back(size_t age) const { return values_[(next_ + values_.size() - 1 - age) % values_.size()]; }
  // The values held, in no particular order (for order statistics).
  std::span<const double> values() const { return {values_.data(), size_}; }

 private:
  std::vector<double> values_;
  size_t next_ = 0;
  size_t size_ = 0;
};

}  // namespace morph::forecast
