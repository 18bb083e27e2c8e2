#pragma once
// `morphctl top`: a live terminal view of the fleet — VMs with their KPIs (CPU %, run-queue wait %, disk
// and network rates), what each has bought, the latest prices, recent shifts and bid outcomes. Fed by the
// same events consumer as the dashboard (controller/dashboard/fleet_view.h). On a terminal it redraws in
// place every --interval; when stdout is not a terminal, or with --once / --count N, it prints plain-text
// frames one after another (no escape codes), so it can be piped, logged or tested. --json prints each frame
// as one line of JSON instead (the dashboard's /api/state with the latest sample of each series).

#include <chrono>
#include <ostream>
#include <string>

#include "controller/dashboard/fleet_view.h"

namespace morph::cli {

struct TopOptions {
  fleet::ControllerAddress controller;
  bool once = false;                         // one frame, then exit
  int count = 0;                             // N frames, then exit (0: until Ctrl-C)
  std::chrono::milliseconds interval{1000};  // between frames
  std::chrono::milliseconds wait{5000};      // for the first KPIs before the first frame
  std::ostream* out = nullptr;               // nullptr: stdout
  int ansi = -1;                             // -1: when stdout is a terminal and not --once/--count
  bool json = false;                         // each frame as one line of JSON (the dashboard's /api/state, last sample)
};

// Exit status: 0, 1 when no data arrived within `wait` (--once/--count), 2 on bad options.
int run_top(const TopOptions& opts);
// One frame as text (ansi: bold headers and a highlighted run-queue wait).
std::string render_top(const fleet::FleetState& s, bool ansi);

}  // namespace morph::cli
