// SqliteLedger's operator state: VM policies, owner overrides and rescue bids as the operator and the rescue
// service set them, and the account details, read back whole when the controller starts. Separate from the
// tick's commit: none of it is money, and none of it is written by a tick.
#include "controller/ledger/sqlite_ledger.h"
#include "controller/ledger/sqlite_support.h"

namespace morph::ledger {

using sqlite::now_ns;
using sqlite::prep_error;
using sqlite::Stmt;
using sqlite::Transaction;

Status SqliteLedger::put_rescue_bid(const market::Bid& bid, const RescueRecord& r) {
  if (r.bid != bid.id || r.quantity <= 0) return Error(Errc::invalid_argument, "rescue record does not match its bid");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  MORPH_TRY(upsert_bid(bid));
  Stmt q(db_, "INSERT OR REPLACE INTO rescue_bids(bid_id, vm, signal, quantity) VALUES(?,?,?,?)");
  if (!q.ok()) return prep_error(db_, "rescue bid");
  MORPH_TRY(q.bind(1, r.bid).bind(2, r.vm).bind(3, r.signal).bind(4, r.quantity).run("recording rescue bid"));
  return tx.commit();
}

Status SqliteLedger::put_policy(const PolicyRecord& p) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt q(db_,
         "INSERT OR REPLACE INTO vm_policies(vm, account, rescue, runq_wait_permille, blk_p99_us, drops_per_s, "
         "breach_intervals, recover_intervals, cpu_step, disk_iops_step, net_kbps_step, max_price, budget_per_hour, "
         "funds_horizon_s, predictive, predictive_horizon_s, predictive_quantile_permille, updated_tick) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,(SELECT COALESCE(MAX(tick), 0) FROM ticks))");
  if (!q.ok()) return prep_error(db_, "policy");
  MORPH_TRY(q.bind(1, p.vm)
                .bind(2, p.account)
                .bind(3, int64_t{p.rescue})
                .bind(4, int64_t{p.runq_wait_permille})
                .bind(5, p.blk_p99_us)
                .bind(6, p.drops_per_s)
                .bind(7, int64_t{p.breach_intervals})
                .bind(8, int64_t{p.recover_intervals})
                .bind(9, p.cpu_step)
                .bind(10, p.disk_iops_step)
                .bind(11, p.net_kbps_step)
                .bind(12, p.max_price)
                .bind(13, p.budget_per_hour)
                .bind(14, int64_t{p.funds_horizon_s})
                .bind(15, int64_t{p.predictive})
                .bind(16, int64_t{p.predictive_horizon_s})
                .bind(17, int64_t{p.predictive_quantile_permille})
                .run("recording policy"));
  return tx.commit();
}

Status SqliteLedger::put_owner_override(const OwnerOverride& o) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt q(db_, "INSERT OR REPLACE INTO owner_overrides(vm, account, set_by, set_ns) VALUES(?,?,?,?)");
  if (!q.ok()) return prep_error(db_, "owner override");
  auto st = q.bind(1, o.vm)
                .bind(2, o.account)
                .bind(3, o.set_by)
                .bind(4, o.set_ns ? o.set_ns : static_cast<uint64_t>(now_ns()))
                .run("recording owner override");
  if (!st.ok()) return Error(Errc::not_found, "owner override of " + o.vm + ": " + st.error().message());
  return tx.commit();
}

Result<OperatorState> SqliteLedger::load_operator_state() {
  OperatorState s;
  {
    Stmt q(db_,
           "SELECT a.id, COALESCE(m.display_name, ''), COALESCE(m.created_ns, 0) FROM accounts a "
           "LEFT JOIN account_meta m ON m.account = a.id ORDER BY a.id");
    if (!q.ok()) return prep_error(db_, "account details");
    while (q.row()) s.accounts.push_back({q.text(0), q.text(1), static_cast<uint64_t>(q.i64(2))});
  }
  {
    Stmt q(db_,
           "SELECT vm, account, rescue, runq_wait_permille, blk_p99_us, drops_per_s, breach_intervals, "
           "recover_intervals, cpu_step, disk_iops_step, net_kbps_step, max_price, budget_per_hour, funds_horizon_s, "
           "predictive, predictive_horizon_s, predictive_quantile_permille FROM vm_policies ORDER BY vm");
    if (!q.ok()) return prep_error(db_, "policies");
    while (q.row()) {
      PolicyRecord p;
      p.vm = q.text(0);
      p.account = q.text(1);
      p.rescue = q.i64(2) != 0;
      p.runq_wait_permille = static_cast<uint32_t>(q.i64(3));
      p.blk_p99_us = static_cast<uint64_t>(q.i64(4));
      p.drops_per_s = static_cast<uint64_t>(q.i64(5));
      p.breach_intervals = static_cast<uint32_t>(q.i64(6));
      p.recover_intervals = static_cast<uint32_t>(q.i64(7));
      p.cpu_step = q.i64(8);
      p.disk_iops_step = q.i64(9);
      p.net_kbps_step = q.i64(10);
      p.max_price = q.i64(11);
      p.budget_per_hour = q.i64(12);
      p.funds_horizon_s = static_cast<uint32_t>(q.i64(13));
      p.predictive = q.i64(14) != 0;
      p.predictive_horizon_s = static_cast<uint32_t>(q.i64(15));
      p.predictive_quantile_permille = static_cast<uint32_t>(q.i64(16));
      s.policies.push_back(std::move(p));
    }
  }
  {
    Stmt q(db_, "SELECT vm, account, set_by, set_ns FROM owner_overrides ORDER BY vm");
    if (!q.ok()) return prep_error(db_, "owner overrides");
    while (q.row()) s.owners.push_back({q.text(0), q.text(1), q.text(2), static_cast<uint64_t>(q.i64(3))});
  }
  {
    Stmt q(db_,
           "SELECT r.bid_id, r.vm, r.signal, r.quantity FROM rescue_bids r JOIN bids b ON b.id = r.bid_id "
           "WHERE b.state IN ('active','suspended') ORDER BY r.bid_id");
    if (!q.ok()) return prep_error(db_, "rescue bids");
    while (q.row()) s.rescues.push_back({static_cast<market::BidId>(q.i64(0)), q.text(1), q.text(2), q.i64(3)});
  }
  return s;
}

}  // namespace morph::ledger
