#pragma once
// Measuring in benchmarks: this thread's CPU time, wall time since an instant, a percentile of samples, and
// the machine's load average to print beside the figures, and a process's resident set.

#include <chrono>
#include <string>
#include <vector>

namespace morph::test {

// CPU time of the calling thread, in ms: what the measured code costs, whatever else shares the cores.
double thread_cpu_ms();
double ms_since(std::chrono::steady_clock::time_point t0);
// The sample at rank floor(p × n) of the sorted samples (the largest for p = 1); 0 for none.
double percentile(std::vector<double> samples, double p);
// /proc/loadavg's 1, 5 and 15 minute figures, e.g. "1.52 1.80 2.03".
std::string loadavg();
// A process's resident set (MiB) from /proc/<pid>/statm; pid 0 is this process. 0 if it cannot be read.
double rss_mib(int pid = 0);

}  // namespace morph::test
