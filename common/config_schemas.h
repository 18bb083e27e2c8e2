#pragma once
// The configuration keys of morph-agent and morph-controller: the one place they are declared. Each
// daemon loads its file against its schema (config.h); docs/operations.md and config/*.toml are
// generated from these declarations and checked by tests/unit/config_docs_test.cpp.
//
// Components read values by the names below (config.get_duration(agent_keys::interval)); a name that is
// not declared throws, so a typo fails the first test that reads it.

#include <string_view>

#include "common/config.h"

namespace morph::config {

const Schema& agent_schema();
const Schema& controller_schema();

namespace agent_keys {
inline constexpr std::string_view host_id = "agent.host_id";
inline constexpr std::string_view libvirt_uri = "agent.libvirt_uri";
inline constexpr std::string_view interval = "agent.interval";
inline constexpr std::string_view bpf_pin_dir = "agent.bpf_pin_dir";
inline constexpr std::string_view ingest = "endpoints.ingest";
inline constexpr std::string_view control = "endpoints.control";
inline constexpr std::string_view keys_dir = "security.keys_dir";
inline constexpr std::string_view lease_default = "lease.default";
inline constexpr std::string_view lease_on_expiry = "lease.on_expiry";
inline constexpr std::string_view lease_state_file = "lease.state_file";
inline constexpr std::string_view metrics_listen = "metrics.listen";
inline constexpr std::string_view log_level = "log.level";
}  // namespace agent_keys

namespace controller_keys {
inline constexpr std::string_view tick = "controller.tick";
inline constexpr std::string_view tick_offset = "controller.tick_offset";
inline constexpr std::string_view ingest = "endpoints.ingest";
inline constexpr std::string_view control = "endpoints.control";
inline constexpr std::string_view api = "endpoints.api";
inline constexpr std::string_view events = "endpoints.events";
inline constexpr std::string_view ledger_path = "ledger.path";
inline constexpr std::string_view retention_keep = "ledger.retention.keep";
inline constexpr std::string_view retention_archive = "ledger.retention.archive";
inline constexpr std::string_view retention_batch_ticks = "ledger.retention.batch_ticks";
// market.reserve.<resource> for each resource the market sells (kMarketResources, common/resource.h).
inline constexpr std::string_view reserve_prefix = "market.reserve.";
inline constexpr std::string_view min_hold_ticks = "market.min_hold_ticks";
inline constexpr std::string_view speculative_notice_ticks = "market.speculative_notice_ticks";
inline constexpr std::string_view hysteresis_pct = "market.hysteresis_pct";
inline constexpr std::string_view forecast_step = "forecast.step";
inline constexpr std::string_view forecast_min_steps = "forecast.min_steps";
inline constexpr std::string_view keys_dir = "security.keys_dir";
inline constexpr std::string_view allow_list = "security.allow_list";
inline constexpr std::string_view metrics_listen = "metrics.listen";
inline constexpr std::string_view dashboard_listen = "dashboard.listen";
inline constexpr std::string_view log_level = "log.level";
}  // namespace controller_keys

}  // namespace morph::config
