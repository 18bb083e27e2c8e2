#pragma once
// Spans: how the ledger stores what mostly stays the same from tick to tick — only what changed. A row that
// held on unchanged terms over ticks from_tick..to_tick is stored once, as a span, to_tick open while it still
// holds after the last committed tick. A tick therefore opens a span for each row that is new or whose terms
// changed, closes (at tick - 1) the span of each that changed or ended, and writes nothing for one that holds
// on unchanged terms (~99 % of a steady market's allocations). What held after tick T
// is the spans with from_tick <= T and to_tick open or >= T; after the last committed tick, the open ones.
//
// SpanSet keeps the open spans' keys and terms in memory (what the last committed tick held) and tells a
// tick's rows apart against them; it is the same for every backend. A backend writes the changes inside the
// tick's transaction and calls committed() once that is durable; after a commit whose outcome it cannot know
// it calls forget(), and reloads the open spans before the next. The allocations (by bid) use it; charges
// are money and stay one row per tick and bid. It never touches a database.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "controller/market/types.h"

namespace morph::ledger {

template <class Key, class Terms>
class SpanSet {
 public:
  struct Open {
    Key key{};
    market::Tick from = 0;
    Terms terms{};
  };
  // What one tick writes: `opened` point into the tick's rows and `closed` end at tick - 1, both in key order.
  template <class Row>
  struct Changes {
    market::Tick tick = 0;
    std::vector<const Row*> opened;
    std::vector<Open> closed;
    std::vector<Open> open_after;  // the open spans once the tick is committed, in key order
  };

  // The open spans as stored (any order), replacing what was kept.
  void reset(std::vector<Open> open) {
    open_ = std::move(open);
    std::sort(open_.begin(), open_.end(), [](const Open& x, const Open& y) { return x.key < y.key; });
    known_ = true;
  }
  // Whether the open spans are known (reset or committed since construction or the last forget()).
  bool known() const { return known_; }
  void forget() {
    open_ = {};
    known_ = false;
  }
  size_t size() const { return open_.size(); }

  // The tick's rows against the open spans (known() must hold). Two rows with one key are refused
  // (Errc::internal): the market never makes them, and two open spans of one key would restore neither.
  template <class Row, class KeyOf, class TermsOf>
  Result<Changes<Row>> diff(market::Tick tick, const std::vector<Row>& rows, KeyOf key_of, TermsOf terms_of,
                            const char* what) const {
    struct Now {
      Key key;
      const Row* row;
    };
    std::vector<Now> now;
    now.reserve(rows.size());
    for (const Row& r : rows) now.push_back({key_of(r), &r});
    std::sort(now.begin(), now.end(), [](const Now& x, const Now& y) { return x.key < y.key; });
    for (size_t k = 1; k < now.size(); ++k)
      if (!(now[k - 1].key < now[k].key))
        return Error(Errc::internal, "tick " + std::to_string(tick) + ": two " + what + " rows with one key");
    Changes<Row> c;
    c.tick = tick;
    c.open_after.reserve(now.size());
    size_t i = 0, j = 0;
    while (i < open_.size() || j < now.size()) {
      if (j == now.size() || (i < open_.size() && open_[i].key < now[j].key)) {
        c.closed.push_back(open_[i++]);  // ended
        continue;
      }
      if (i == open_.size() || now[j].key < open_[i].key) {
        c.opened.push_back(now[j].row);  // new
        c.open_after.push_back({std::move(now[j].key), tick, terms_of(*now[j].row)});
        ++j;
        continue;
      }
      Terms terms = terms_of(*now[j].row);
      if (terms == open_[i].terms) {
        c.open_after.push_back(open_[i]);  // holds on unchanged terms: nothing to write
      } else {
        c.closed.push_back(open_[i]);
        c.opened.push_back(now[j].row);
        c.open_after.push_back({std::move(now[j].key), tick, terms});
      }
      ++i, ++j;
    }
    return c;
  }

  // The tick of `changes` is durable: its open spans are now the ones kept.
  template <class Row>
  void committed(Changes<Row>&& c) {
    open_ = std::move(c.open_after);
    known_ = true;
  }

 private:
  std::vector<Open> open_;  // in key order
  bool known_ = false;
};

// An allocation's terms. Its identity (account, vm, host, resource, tier: fixed for a bid) is kept as a hash:
// a bid whose identity changed anyway gets a new span, and a collision would only miss a change the market
// never makes.
struct AllocationTerms {
  int64_t quantity = 0;
  market::Micros price = 0;
  market::Tick since = 0, notice_until = 0;
  uint64_t identity = 0;
  bool operator==(const AllocationTerms&) const = default;
};
AllocationTerms allocation_terms(const market::Allocation& a);
inline market::BidId allocation_key(const market::Allocation& a) {
  return a.bid_id;
}
using AllocationSpans = SpanSet<market::BidId, AllocationTerms>;
using AllocationChanges = AllocationSpans::Changes<market::Allocation>;

}  // namespace morph::ledger
