#pragma once
// The controller's reply records as morphctl prints them: one function per record, so a record looks the
// same (the same fields, names and units) in every command that shows it, in the table and in --json
// (docs/operations.md; integration_cli_json checks the shapes). Pure functions of the verified reply; they
// never talk to the controller.

#include "controller/cli/command.h"

namespace morph::cli {

json account_json(const v1::AccountInfo& a);
json bid_json(const v1::BidInfo& b);
json price_json(const v1::PriceInfo& p);
json allocation_json(const v1::AllocationInfo& a);
json ledger_entry_json(const v1::LedgerEntry& e);
json shift_json(const v1::ShiftRecord& s);
json host_json(const v1::HostStatus& h);
json vm_json(const v1::VmStatus& v);
// One VM's latest interval (host from its report): times in ms, the run-queue wait share in permille
// (common/kpi/derived.h).
json kpi_json(const std::string& host, const v1::VmKpi& k);
// A PolicyReply: the VM's policy, then its rescue detection and step settings.
json policy_json(const v1::PolicyReply& r);
// A QuoteReply without its price history (quote_history_json).
json quote_json(const v1::QuoteReply& q);
json quote_history_json(const v1::QuoteReply& q);
// A quote's cost advice from the VM's demand forecast; null when the quote has none (a host or non-cpu quote).
json quote_forecast_json(const v1::QuoteReply& q);
// {"cpu": 2000, ...}: resource amounts (a host's capacity, a VM's baseline) by resource name.
json amounts_json(const flatbuffers::Vector<flatbuffers::Offset<v1::ResourceAmount>>* amounts);

}  // namespace morph::cli
