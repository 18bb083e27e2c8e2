// `morph-forecast backtest` as a process: on the repository's PlanetLab excerpt it writes one row per VM and
// step from 36 on and prints the forecaster's and every baseline's accuracy; on bad input it exits non-zero
// with a message naming the file (and line), and writes nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/support/files.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"

namespace morph::test {
namespace {

namespace fs = std::filesystem;

class ForecastCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    dir_ = tmp_.path();
    binary_ = binary_dir() + "/controller/forecast/cli/morph-forecast";
    ASSERT_EQ(access(binary_.c_str(), X_OK), 0) << binary_ << " is not built";
  }
  RunResult backtest(const std::string& trace, const std::string& horizon, const std::string& out) {
    return run_to_end({binary_, "backtest", "--trace", trace, "--horizon", horizon, "--out", out},
                      dir_ / ("run" + std::to_string(++runs_)), std::chrono::seconds(60));
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream((dir_ / name).string()) << text;
    return (dir_ / name).string();
  }

  TempDir tmp_{"forecast-cli"};
  fs::path dir_;
  std::string binary_;
  int runs_ = 0;
};

TEST_F(ForecastCli, BacktestWritesEveryVmAndStepFrom36AndPrintsEveryModel) {
  const std::string trace = source_dir() + "/scripts/testbed.d/planetlab/20110303.csv";
  const std::string out = (dir_ / "f.csv").string();
  const RunResult r = backtest(trace, "6", out);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* model : {"forecaster", "last", "ma-12", "ewma-6", "ewma-12", "vpa-histogram"}) {
    EXPECT_NE(r.out.find(std::string("\n") + model + " "), std::string::npos) << model << " missing in\n" << r.out;
  }
  std::ifstream in(out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "vm,step,p50,p90");
  std::set<std::pair<std::string, int>> seen;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string vm, step, p50, p90;
    ASSERT_TRUE(std::getline(ss, vm, ',') && std::getline(ss, step, ',') && std::getline(ss, p50, ',') &&
                std::getline(ss, p90))
        << line;
    const int s = std::stoi(step);
    EXPECT_GE(s, 36) << line;
    EXPECT_LE(s, 287) << line;
    EXPECT_GE(std::stod(p50), 0.0) << line;
    EXPECT_GE(std::stod(p90), std::stod(p50)) << line;
    EXPECT_TRUE(seen.insert({vm, s}).second) << "repeated " << line;
  }
  EXPECT_EQ(seen.size(), 2u * (288 - 36));  // the excerpt's two VMs, every step from 36
}

TEST_F(ForecastCli, BadInputExitsNonZeroNamingFileAndLine) {
  const std::string out = (dir_ / "never.csv").string();
  struct Case {
    std::string trace, horizon, expect;
  };
  const std::string missing = (dir_ / "missing.csv.gz").string();
  const std::string bad_row = write("badrow.csv", "vm,step,cpu_pct\na,0,1\na,1,x\n");
  const std::string bad_step = write("badstep.csv", "vm,step,cpu_pct\na,0,1\na,300,1\n");
  const std::string good = write("good.csv", "vm,step,cpu_pct\na,0,1\n");
  for (const Case& c :
       {Case{missing, "1", "cannot open trace " + missing},
        Case{bad_row, "1", bad_row + ":3: cpu_pct 'x' is not a number"},
        Case{bad_step, "1", bad_step + ":3: step 300 out of range 0..287"}, Case{good, "0", "horizon 0 out of range"},
        Case{good, "7", "beyond forecaster's longest"}, Case{good, "six", "--horizon"}}) {
    const RunResult r = backtest(c.trace, c.horizon, out);
    EXPECT_NE(r.rc, 0) << c.expect;
    EXPECT_NE(r.rc, -1) << "timed out: " << c.expect;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "stderr: " << r.err << "\nexpected: " << c.expect;
    EXPECT_FALSE(fs::exists(out)) << c.expect;
  }
  const RunResult r = backtest(good, "1", (dir_ / "no-such-dir" / "f.csv").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("cannot write " + (dir_ / "no-such-dir" / "f.csv").string()), std::string::npos) << r.err;
}

}  // namespace
}  // namespace morph::test
