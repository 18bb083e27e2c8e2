#include "controller/forecast/decaying_histogram.h"

#include <algorithm>
#include <cmath>

namespace morph::forecast {

namespace {
constexpr double kMaxExponent = 100;  // VPA's maxDecayExponent: beyond it, weights are rescaled
}

BucketLayout::BucketLayout(HistogramBuckets buckets)
    : buckets_(buckets), inv_log_growth_(1.0 / std::log(buckets.growth)) {
  const double ratio = buckets_.growth;
  const auto n = static_cast<int>(std::ceil(std::log(buckets_.max_value * (ratio - 1) / buckets_.first_bucket + 1) *
                                            inv_log_growth_)) +
                 1;
  starts_.resize(static_cast<size_t>(n));
  for (int b = 1; b < n; ++b) {
    starts_[static_cast<size_t>(b)] = buckets_.first_bucket * (std::pow(ratio, b) - 1) / (ratio - 1);
  }
}

int BucketLayout::find(double value) const {
  if (value < buckets_.first_bucket) return 0;
  auto b = static_cast<int>(std::log(value * (buckets_.growth - 1) / buckets_.first_bucket + 1) * inv_log_growth_);
  b = std::min(b, count() - 1);
  // The logarithm may round across a boundary; the boundaries themselves decide.
  if (b + 1 < count() && value >= start(b + 1)) ++b;
  if (b > 0 && value < start(b)) --b;
  return b;
}

DecayingHistogram::DecayingHistogram(const BucketLayout& layout, double half_life_steps)
    : layout_(&layout),
      half_life_(half_life_steps),
      weight_(static_cast<size_t>(layout.count()), 0.0),
      min_bucket_(layout.count() - 1) {}

void DecayingHistogram::clear() {
  std::fill(weight_.begin(), weight_.end(), 0.0);
  total_ = 0;
  min_bucket_ = static_cast<int>(weight_.size()) - 1;
  max_bucket_ = 0;
  reference_ = 0;
}

bool DecayingHistogram::empty() const {
  return weight_[static_cast<size_t>(min_bucket_)] < layout_->epsilon();
}

// Moves the reference forward by whole half-lives and scales every weight to match, as VPA does when the
// exponent would grow too large; percentiles do not change.
void DecayingHistogram::shift_reference(int64_t step) {
  const auto halvings = static_cast<int>(std::floor(static_cast<double>(step - reference_) / half_life_));
  if (halvings <= 0) return;
  const double factor = std::ldexp(1.0, -halvings);
  for (int b = min_bucket_; b <= max_bucket_; ++b) weight_[static_cast<size_t>(b)] *= factor;
  total_ *= factor;
  reference_ += static_cast<int64_t>(std::llround(halvings * half_life_));
  const int last = static_cast<int>(weight_.size()) - 1;
  while (min_bucket_ < last && weight_[static_cast<size_t>(min_bucket_)] < layout_->epsilon()) ++min_bucket_;
  while (max_bucket_ > 0 && weight_[static_cast<size_t>(max_bucket_)] < layout_->epsilon()) --max_bucket_;
}

void DecayingHistogram::add(double value, int64_t step) {
  if (static_cast<double>(step - reference_) / half_life_ > kMaxExponent) shift_reference(step);
  const double w = std::exp2(static_cast<double>(step - reference_) / half_life_);
  const int b = layout_->find(value);
  weight_[static_cast<size_t>(b)] += w;
  total_ += w;
  if (b < min_bucket_ && weight_[static_cast<size_t>(b)] >= layout_->epsilon()) min_bucket_ = b;
  if (b > max_bucket_ && weight_[static_cast<size_t>(b)] >= layout_->epsilon()) max_bucket_ = b;
}

double DecayingHistogram::percentile(double p) const {
  if (empty()) return 0.0;
  const double threshold = p * total_;
  double partial = 0;
  int b = min_bucket_;
  for (; b < max_bucket_; ++b) {
    partial += weight_[static_cast<size_t>(b)];
    if (partial >= threshold) break;
  }
  // The end of the bucket; the last bucket has none, so its start.
  return b + 1 < layout_->count() ? layout_->start(b + 1) : layout_->start(b);
}

double DecayingHistogram::interpolated_percentile(double p) const {
  double out = 0;
  interpolated_percentiles(std::span<const double>(&p, 1), std::span<double>(&out, 1));
  return out;
}

void DecayingHistogram::interpolated_percentiles(std::span<const double> ps, std::span<double> out) const {
  if (empty()) {
    std::fill(out.begin(), out.end(), 0.0);
    return;
  }
  const int last = layout_->count() - 1;
  double partial = 0;  // weight of the buckets below b
  int b = min_bucket_;
  for (size_t i = 0; i < ps.size(); ++i) {
    const double threshold = ps[i] * total_;
    while (b < max_bucket_ && partial + weight_[static_cast<size_t>(b)] < threshold) {
      partial += weight_[static_cast<size_t>(b)];
      ++b;
    }
    const double lo = layout_->start(b);
    if (b >= last) {
      out[i] = lo;
      continue;
    }
    const double w = weight_[static_cast<size_t>(b)];
    const double frac = w > 0 ? std::clamp((threshold - partial) / w, 0.0, 1.0) : 1.0;
    out[i] = lo + (layout_->start(b + 1) - lo) * frac;
  }
}

}  // namespace morph::forecast
