#pragma once
// DecayingHistogram: one series' distribution with older samples weighing less, as Kubernetes' VPA
// recommender keeps CPU usage: exponentially growing buckets, each sample added with weight
// 2^(step / half_life), so a sample loses half its weight every half-life. Memory is one weight per bucket,
// whatever the history's length; a percentile is one pass over the buckets. No clock: the caller counts
// steps.

#include <cstdint>
#include <span>
#include <vector>

namespace morph::forecast {

// Bucket boundaries: the first bucket is [0, first_bucket); bucket n is first_bucket * growth^n wide. The
// defaults are VPA's CPU histogram's, in millicores.
struct HistogramBuckets {
  double first_bucket = 10;  // 0.01 cores
  double growth = 1.05;      // each bucket 5 % wider than the one before
  double max_value = 1e6;    // 1000 cores: the last bucket starts at or above it
  double epsilon = 1e-4;     // a bucket lighter than this is empty
};

// One bucket layout with its boundaries computed once, shared by every histogram that uses it.
class BucketLayout {
 public:
  explicit BucketLayout(HistogramBuckets buckets = {});
  int count() const { return static_cast<int>(starts_.size()); }
  // The bucket holding `value`: values past the last bucket's start fall in it, negative ones in the first.
  int find(double value) const;
  double start(int bucket) const { return starts_[static_cast<size_t>(bucket)]; }
  double epsilon() const { return buckets_.epsilon; }

 private:
  HistogramBuckets buckets_;
  double inv_log_growth_;
  std::vector<double> starts_;
};

class DecayingHistogram {
 public:
  // `layout` must outlive the histogram.
  DecayingHistogram(const BucketLayout& layout, double half_life_steps);

  // Adds a sample at `step` (steps must not go backwards).
  void add(double value, int64_t step);
  void clear();
  bool empty() const;
  // VPA's percentile (p in 0..1): the end of the bucket where the cumulative weight reaches p; 0 when empty.
  double percentile(double p) const;
  // The same, interpolated linearly inside that bucket: finer than a bucket's width.
  double interpolated_percentile(double p) const;
  // Several interpolated percentiles in one pass; `ps` ascending, `out` as long as `ps`.
  void interpolated_percentiles(std::span<const double> ps, std::span<double> out) const;

 private:
  const BucketLayout* layout_;
  double half_life_;
  std::vector<double> weight_;
  double total_ = 0;
  int min_bucket_;
  int max_bucket_ = 0;
  int64_t reference_ = 0;  // the step whose samples weigh 1, moved forward to keep weights finite
  void shift_reference(int64_t step);
};

}  // namespace morph::forecast
