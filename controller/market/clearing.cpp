#include "controller/market/clearing.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace morph::market {
namespace {

// Rank price used only for ordering: an incumbent past its hold time defends its place with a
// hysteresis margin, so two near-equal bids do not swap the capacity back and forth every tick.
int64_t rank_price(const BookBid& b, uint32_t hysteresis_pct) {
  int64_t p = b.max_price * 100;
  if (b.held > 0 && !b.pinned) p = b.max_price * (100 + hysteresis_pct);
  return p;
}

// Per-call scratch, reused across books (clearing runs ~7,000 books per tick; allocating these per book
// was a measurable share of the tick).
struct Scratch {
  std::vector<int64_t> fill;
  std::vector<uint8_t> refused_reserve, protect, noticed;
  std::vector<size_t> prot, order;
};

// One pass of the rule with a given set of protected (noticed) bids; leaves s.fill and s.refused_reserve.
void run_pass(const BookParams& p, std::span<const BookBid> bids, Scratch& s) {
  const size_t n = bids.size();
  s.fill.assign(n, 0);
  s.refused_reserve.assign(n, 0);
  const std::vector<uint8_t>& protect = s.protect;
  int64_t left = std::max<int64_t>(p.supply, 0);

  // 1. Speculative holdings under notice keep what they hold (in seq order if supply itself shrank).
  auto& prot = s.prot;
  prot.clear();
  for (size_t i = 0; i < n; ++i)
    if (protect[i]) prot.push_back(i);
  std::sort(prot.begin(), prot.end(), [&](size_t a, size_t b) { return bids[a].seq < bids[b].seq; });
  for (size_t i : prot) {
    int64_t keep = std::min({bids[i].held, bids[i].quantity, left});
    if (keep < bids[i].min_fill) keep = 0;
    s.fill[i] = keep;
    left -= keep;
  }

  auto& order = s.order;
  for (int t = 0; t < kTierCount; ++t) {
    order.clear();
    for (size_t i = 0; i < n; ++i) {
      if (protect[i] || static_cast<int>(bids[i].tier) != t) continue;
      if (bids[i].max_price < p.reserve[t]) {
        s.refused_reserve[i] = 1;
        continue;
      }
      order.push_back(i);
    }
    // Rank: higher rank price first, then earlier. Pinned holdings go first (2), the rest follows (3).
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      int64_t ra = rank_price(bids[a], p.hysteresis_pct), rb = rank_price(bids[b], p.hysteresis_pct);
      if (ra != rb) return ra > rb;
      return bids[a].seq < bids[b].seq;
    });
    // 2. Pinned holdings of this tier keep what they hold, if the tiers above left it.
    for (size_t i : order) {
      const BookBid& b = bids[i];
      if (!b.pinned || b.held <= 0) continue;
      int64_t keep = std::min({b.held, b.quantity, left});
      if (keep < b.min_fill) keep = 0;
      s.fill[i] = keep;
      left -= keep;
    }
    // 3. Everything else of the tier (and pinned bids' growth) in rank order.
    for (size_t i : order) {
      const BookBid& b = bids[i];
      int64_t want = b.quantity - s.fill[i];
      if (want <= 0 || left <= 0) continue;
      int64_t give = std::min(want, left);
      if (s.fill[i] + give < b.min_fill) continue;  // cannot reach its minimum: skip, capacity stays
      s.fill[i] += give;
      left -= give;
    }
  }
}

}  // namespace

BookResult clear_book(const BookParams& params, std::span<const BookBid> bids) {
  BookResult r;
  clear_book(params, bids, r);
  return r;
}

void clear_book(const BookParams& params, std::span<const BookBid> bids, BookResult& r) {
  thread_local Scratch scratch;
  Scratch& s = scratch;
  const size_t n = bids.size();
  s.protect.assign(n, 0);
  for (size_t i = 0; i < n; ++i)
    s.protect[i] = bids[i].tier == Tier::speculative && bids[i].held > 0 && bids[i].notice == Notice::active;

  s.noticed.assign(n, 0);
  run_pass(params, bids, s);
  // A speculative holding the pass would cut is not cut: it gets notice and keeps its quantity. Keeping
  // it can squeeze others, so repeat until no new notice is needed (each round protects one more bid).
  while (params.give_notice) {
    bool more = false;
    for (size_t i = 0; i < n; ++i) {
      const BookBid& b = bids[i];
      if (s.protect[i] || b.tier != Tier::speculative || b.held <= 0 || b.notice != Notice::none) continue;
      if (s.fill[i] < std::min(b.held, b.quantity)) {
        s.protect[i] = 1;
        s.noticed[i] = 1;
        more = true;
      }
    }
    if (!more) break;
    run_pass(params, bids, s);
  }

  const auto& fill = s.fill;
  const auto& refused_reserve = s.refused_reserve;
  const auto& noticed = s.noticed;
  r.fills.assign(n, BookFill{});
  r.price = {};
  r.sold = {};
  std::array<Micros, kTierCount> lowest_winner{};
  // Uniform price per tier: the highest price among the tier's bids left with unfilled units (the
  // highest losing bid), capped at the lowest price of a winner of the tier (a bid that lost to its own
  // min_fill, to a hold or to a notice while a cheaper bid won must not make that winner pay more than
  // it offered), and never below the tier's reserve. No winner: the reserve.
  for (int t = 0; t < kTierCount; ++t) {
    Micros min_win = std::numeric_limits<Micros>::max();
    Micros max_lose = 0;
    int64_t sold = 0;
    for (size_t i = 0; i < n; ++i) {
      const BookBid& b = bids[i];
      if (static_cast<int>(b.tier) != t || refused_reserve[i]) continue;
      if (fill[i] > 0) {
        min_win = std::min(min_win, b.max_price);
        sold += fill[i];
      }
      if (fill[i] < b.quantity) max_lose = std::max(max_lose, b.max_price);
    }
    Micros price = params.reserve[t];
    if (sold > 0) price = std::max(price, std::min(max_lose, min_win));
    r.price[t] = price;
    r.sold[t] = sold;
    lowest_winner[t] = min_win;
  }
  for (size_t i = 0; i < n; ++i) {
    BookFill& f = r.fills[i];
    f.quantity = fill[i];
    f.notice_given = noticed[i] != 0;
    if (f.quantity == 0) {
      // Outbid (every winner of its tier offered more) or under the reserve: price. Otherwise it lost
      // to tier order, time priority, its own min_fill, a hold, a notice or hysteresis: capacity.
      const size_t t = static_cast<size_t>(bids[i].tier);
      f.reason = (refused_reserve[i] || (r.sold[t] > 0 && bids[i].max_price < lowest_winner[t]))
                     ? FailureReason::price_below_market
                     : FailureReason::no_capacity;
    }
  }
}

}  // namespace morph::market
