// The key tables of docs/operations.md and the example files in config/ are generated from the schemas;
// these tests keep the committed copies true. To regenerate after changing a schema:
//   MORPH_UPDATE_DOCS=1 build/tests/unit/unit_config
// which rewrites only the generated parts (between the markers in operations.md, and config/*.toml).

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/config_schemas.h"
#include "tests/support/files.h"
#include "tests/support/requirements.h"

namespace morph::config {
namespace {

using test::slurp;

bool updating() {
  const char* u = std::getenv("MORPH_UPDATE_DOCS");
  return u && std::string(u) == "1";
}

const std::string kHint = "; regenerate with MORPH_UPDATE_DOCS=1 and the unit_config test binary";

void check_example(const Schema& schema) {
  std::string path = test::source_dir() + "/config/" + schema.program() + ".toml";
  std::string want = render_example_toml(schema);
  if (updating()) std::ofstream(path, std::ios::binary) << want;
  EXPECT_EQ(slurp(path), want) << path << " differs from the schema" << kHint;
  // The example must load, and give every key its default.
  auto c = load(schema, path);
  ASSERT_TRUE(c.ok()) << c.error().what();
  auto d = defaults(schema);
  ASSERT_TRUE(d.ok());
  for (const auto& k : schema.keys()) {
    EXPECT_EQ(c->text(k.name()), d->text(k.name())) << k.name();
    EXPECT_NE(c->origin(k.name()).where, "default") << k.name() << " is missing from " << path;
  }
}

TEST(ConfigDocs, ExampleFilesHoldEveryKeyAtItsDefault) {
  check_example(agent_schema());
  check_example(controller_schema());
}

TEST(ConfigDocs, OperationsKeyTablesMatchTheSchemas) {
  std::string path = test::source_dir() + "/docs/operations.md";
  std::string doc = slurp(path);
  ASSERT_FALSE(doc.empty()) << path;
  for (const Schema* s : {&agent_schema(), &controller_schema()}) {
    std::string begin = "<!-- keys:" + s->program() + " (generated from common/config_schemas.cpp) -->\n";
    std::string end = "<!-- /keys:" + s->program() + " -->";
    size_t b = doc.find(begin);
    size_t e = doc.find(end);
    ASSERT_NE(b, std::string::npos) << path << " lacks the marker " << begin;
    ASSERT_NE(e, std::string::npos) << path << " lacks the marker " << end;
    ASSERT_LT(b, e);
    b += begin.size();
    std::string want = render_markdown_table(*s);
    if (updating()) {
      doc.replace(b, e - b, want);
      std::ofstream(path, std::ios::binary) << doc;
    }
    EXPECT_EQ(doc.substr(b, doc.find(end) - b), want)
        << "the " << s->program() << " table of " << path << " differs from the schema" << kHint;
  }
}

}  // namespace
}  // namespace morph::config
