// The backtest's input: PlanetLab-format traces, gzip or plain, read row by row, and every way a trace can be
// wrong refused with an error that names the file and the line (and the horizon checked before any work).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "controller/forecast/baselines.h"
#include "controller/forecast/cli/backtest.h"
#include "controller/forecast/cli/trace.h"
#include "controller/forecast/quantile_forecaster.h"
#include "tests/support/files.h"
#include "tests/support/requirements.h"

namespace morph::forecast {
namespace {

namespace fs = std::filesystem;

class TraceFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    dir_ = tmp_.path();
  }

  std::string plain(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string gz(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
    gzclose(f);
    return path;
  }
  // Expects read_trace to fail with `code` and a message holding "PATH:LINE" (line 0: no line) and `what`.
  void expect_refused(const std::string& path, size_t line, const std::string& what,
                      Errc code = Errc::invalid_argument) {
    auto r = read_trace(path);
    ASSERT_FALSE(r.ok()) << path << " was accepted";
    EXPECT_EQ(r.error().code(), code) << r.error().what();
    const std::string where = line ? path + ":" + std::to_string(line) + ":" : path;
    EXPECT_NE(r.error().what().find(where), std::string::npos) << r.error().what() << " does not name " << where;
    EXPECT_NE(r.error().what().find(what), std::string::npos) << r.error().what() << " does not say " << what;
  }

  test::TempDir tmp_{"forecast-trace"};
  fs::path dir_;
};

const std::string kGood = "vm,step,cpu_pct\na,0,10\na,1,20\nb,0,5\na,2,30\nb,1,7.5\n";

TEST_F(TraceFiles, ReadsGzipAndPlainAlike) {
  for (const std::string& path : {gz("t.csv.gz", kGood), plain("t.csv", kGood)}) {
    auto r = read_trace(path);
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->vms, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(r->cpu_pct[0], (std::vector<double>{10, 20, 30}));
    EXPECT_EQ(r->cpu_pct[1], (std::vector<double>{5, 7.5}));
    EXPECT_EQ(r->steps(), 3u);
  }
}

TEST_F(TraceFiles, AcceptsCrlfLineEndings) {
  auto r = read_trace(plain("crlf.csv", "vm,step,cpu_pct\r\na,0,1\r\na,1,2\r\n"));
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r->cpu_pct[0], (std::vector<double>{1, 2}));
}

TEST_F(TraceFiles, MissingFile) {
  expect_refused((dir_ / "nope.csv.gz").string(), 0, "cannot open", Errc::not_found);
}

TEST_F(TraceFiles, UnreadableFile) {
  const std::string d = (dir_ / "a-directory.csv").string();
  fs::create_directory(d);
  expect_refused(d, 1, "cannot read", Errc::io);
}

TEST_F(TraceFiles, TruncatedGzip) {
  std::string text = "vm,step,cpu_pct\n";
  for (int s = 0; s < 288; ++s)
    text += "some_vm_name_that_is_long," + std::to_string(s) + "," + std::to_string(s % 97) + "\n";
  const std::string path = gz("cut.csv.gz", text);
  fs::resize_file(path, fs::file_size(path) / 2);
  auto r = read_trace(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::io) << r.error().what();
  EXPECT_NE(r.error().what().find(path + ":"), std::string::npos) << r.error().what();
}

TEST_F(TraceFiles, CorruptGzip) {
  std::string bytes = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";  // a gzip header, then garbage
  bytes += std::string(200, '\x7f');
  const std::string path = plain("bad.csv.gz", bytes);
  auto r = read_trace(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::io) << r.error().what();
  EXPECT_NE(r.error().what().find(path + ":1:"), std::string::npos) << r.error().what();
}

// Every kind of bad content: the traces in tests/fixtures/traces/bad/, each read as it is and gzipped, must be
// refused with the line and message its expected.txt gives.
TEST_F(TraceFiles, EveryKindOfBadContentIsRefusedNamingTheLine) {
  const fs::path fixtures = fs::path(test::source_dir()) / "tests/fixtures/traces/bad";
  std::ifstream expected(fixtures / "expected.txt");
  ASSERT_TRUE(expected) << "cannot read " << (fixtures / "expected.txt");
  std::string line;
  int cases = 0;
  while (std::getline(expected, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, what;
    size_t at = 0;
    fields >> name >> at >> std::ws;
    std::getline(fields, what);
    SCOPED_TRACE(name);
    expect_refused((fixtures / name).string(), at, what);
    std::ifstream in(fixtures / name);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    expect_refused(gz(name + ".gz", text), at, what);
    ++cases;
  }
  EXPECT_EQ(cases, 18);
}

TEST(BacktestHorizon, OutOfRangeIsRefusedBeforeAnyWork) {
  QuantileForecaster f;
  LastValueModel last;
  std::vector<DemandModel*> models{&f, &last};
  BacktestOptions o;
  for (int h : {0, -1, 37}) {
    o.horizon = h;
    auto st = check_backtest(o, models);
    ASSERT_FALSE(st.ok()) << h;
    EXPECT_NE(st.error().what().find("horizon " + std::to_string(h) + " out of range 1..36"), std::string::npos)
        << st.error().what();
  }
  o.horizon = 7;  // within the backtest's range, beyond the forecaster's six
  auto st = check_backtest(o, models);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().what().find("beyond forecaster's longest, 6 steps"), std::string::npos) << st.error().what();
  o.horizon = 6;
  EXPECT_TRUE(check_backtest(o, models).ok());
}

}  // namespace
}  // namespace morph::forecast
