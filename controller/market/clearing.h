#pragma once
// ClearingRound: the clearing rule of one order book (one host, one resource) for one tick, as a pure
// function of the book's bids, their incumbent holdings and the book's parameters. The rule is written
// out in docs/market.md; every worked example there is a test in tests/unit/market_clearing_test.cpp.
// Owns no state, does no I/O, and never looks at balances (funds are the Market's concern).

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "controller/market/types.h"

namespace morph::market {

enum class Notice : uint8_t {
  none,     // no revocation notice outstanding
  active,   // notice given, not yet run out: the held quantity is kept whatever happens
  expired,  // notice ran out this tick: no protection, and no new notice this tick
};

struct BookBid {
  BidId id = 0;
  Tier tier = Tier::improve;
  Micros max_price = 0;
  int64_t quantity = 0;
  int64_t min_fill = 0;  // 1..quantity
  uint64_t seq = 0;
  int64_t held = 0;     // quantity allocated to this bid at the previous tick
  bool pinned = false;  // held allocation is inside its minimum hold time
  Notice notice = Notice::none;
};

struct BookParams {
  int64_t supply = 0;                        // capacity - sum of baselines
  std::array<Micros, kTierCount> reserve{};  // per tier
  uint32_t hysteresis_pct = 0;               // challenger must beat an incumbent by this much
  bool give_notice = true;                   // speculative cuts go through notice (notice_ticks > 0)
};

struct BookFill {
  int64_t quantity = 0;
  FailureReason reason = FailureReason::none;  // set when quantity == 0
  bool notice_given = false;                   // a revocation notice starts this tick
};

struct BookResult {
  std::vector<BookFill> fills;             // same order as the input bids
  std::array<Micros, kTierCount> price{};  // uniform price per tier
  std::array<int64_t, kTierCount> sold{};
};

BookResult clear_book(const BookParams& params, std::span<const BookBid> bids);
// The same into `out`, reusing its storage (the Market clears thousands of books per tick).
void clear_book(const BookParams& params, std::span<const BookBid> bids, BookResult& out);

}  // namespace morph::market
