// ledger/utf8.h: which byte strings are well-formed UTF-8, how ill-formed ones are repaired
// (one U+FFFD per maximal subpart, checked against Python's decoder as an oracle), cutting at
// character boundaries, and the repair of stored JSON with the pointers it reports. Records that
// failed this used to make the audit API and every export answer 500 (issue 12).
#include "ledger/utf8.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "support/temp_dir.h"

namespace sechex::ledger {
namespace {

const std::string kFffd(kReplacementCharacter);

TEST(Utf8, WellFormedTextIsAcceptedAndKeptAsItIs) {
  for (const std::string& s : std::vector<std::string>{
           "", "plain ascii", "caf\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x94\x91 key",
           "\xEF\xBF\xBD", "\xF4\x8F\xBF\xBF", std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(is_utf8(s)) << s;
    EXPECT_EQ(to_utf8(s), s);
  }
}

// One row per kind of ill-formed input (Unicode 15 section 3.9, table 3-8 for the subparts).
TEST(Utf8, EachMaximalIllFormedSubpartBecomesOneReplacementCharacter) {
  struct Case {
    const char* what;
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"lone 0xFF",
       "a\xFF"
       "b",
       "a" + kFffd + "b"},
      {"lone continuation", "\x80", kFffd},
      {"overlong NUL", "\xC0\x80", kFffd + kFffd},
      {"overlong 3-byte", "\xE0\x80\x80", kFffd + kFffd + kFffd},
      {"surrogate", "\xED\xA0\x80", kFffd + kFffd + kFffd},
      {"above U+10FFFF", "\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},
      {"F5 lead", "\xF5\x80", kFffd + kFffd},
      {"truncated 3-byte at the end", "x\xE2\x82", "x" + kFffd},
      {"truncated 4-byte then ascii", "\xF0\x9F\x94z", kFffd + "z"},
      {"two truncated in a row", "\xE2\x82\xE2\x82\xAC", kFffd + "\xE2\x82\xAC"},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(is_utf8(c.in)) << c.what;
    EXPECT_EQ(to_utf8(c.in), c.out) << c.what;
    EXPECT_TRUE(is_utf8(to_utf8(c.in))) << c.what;
  }
}

TEST(Utf8, CuttingNeverSplitsACharacter) {
  std::string accents;
  for (int i = 0; i < 300; ++i) accents += "\xC3\xA9";  // 600 bytes of 2-byte characters
  EXPECT_EQ(to_utf8(accents, 512).size(), 512u);
  const auto odd = to_utf8("a" + accents, 512);  // the 512th byte would split an é
  EXPECT_EQ(odd.size(), 511u);
  EXPECT_TRUE(is_utf8(odd));
  EXPECT_EQ(to_utf8("\xE4\xB8\xAD\xE6\x96\x87", 5), "\xE4\xB8\xAD");
  // A replacement character counts its 3 bytes against the limit like any other.
  EXPECT_EQ(to_utf8("ab\xFF", 4), "ab");
  EXPECT_EQ(to_utf8("ab\xFF", 5), "ab" + kFffd);
}

// Python's UTF-8 decoder with errors="replace" substitutes maximal subparts too: 3,000 random
// strings over the bytes that matter must come out the same.
TEST(Utf8, RepairAgreesWithPythonsDecoderOnRandomBytes) {
  testing::TempDir dir;
  const auto in_path = dir.sub("in");
  const auto out_path = dir.sub("out");
  std::mt19937 rng(12);
  const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                       0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                       0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFE, 0xFF};
  std::vector<std::string> inputs;
  {
    std::ofstream in(in_path, std::ios::binary);
    for (int i = 0; i < 3000; ++i) {
      std::string s;
      const auto n = rng() % 12;
      for (unsigned j = 0; j < n; ++j) {
        s.push_back(static_cast<char>(interesting[rng() % sizeof(interesting)]));
      }
      inputs.push_back(s);
      for (const char c : s) in << std::hex << (static_cast<unsigned>(c) & 0xFF) << ' ';
      in << '\n';
    }
  }
  const std::string cmd =
      "python3 -c 'import sys\n"
      "for line in open(sys.argv[1]):\n"
      "    b = bytes(int(x, 16) for x in line.split())\n"
      "    print(b.decode(\"utf-8\", \"replace\").encode(\"utf-8\").hex())' " +
      in_path + " > " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream out(out_path);
  std::string hex;
  for (const auto& s : inputs) {
    ASSERT_TRUE(std::getline(out, hex));
    std::string expected;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      expected.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    EXPECT_EQ(to_utf8(s), expected);
    EXPECT_EQ(is_utf8(s), expected == s);
  }
}

TEST(Utf8, RepairOfStoredJsonFixesValuesAndKeysAndSaysWhere) {
  nlohmann::json j = {{"ok", "fine"},
                      {"source", {{"user_agent", "agent\xFF"}, {"ip", "10.0.0.1"}}},
                      {"list", {"a", "b\xC0"}},
                      {"a/b", "\xED\xA0\x80"}};
  j["event"] = nlohmann::json::object();
  j["event"]["bad\xFFkey"] = 1;
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what broke the audit API
  const auto repaired = repair_utf8(j);
  EXPECT_EQ(repaired, (std::vector<std::string>{"/a~1b", "/event/bad" + kFffd + "key", "/list/1",
                                                "/source/user_agent"}));
  EXPECT_EQ(j["source"]["user_agent"], "agent" + kFffd);
  EXPECT_EQ(j["event"]["bad" + kFffd + "key"], 1);
  EXPECT_NO_THROW((void)j.dump());
  EXPECT_TRUE(repair_utf8(j).empty());  // already clean: nothing to report
}

TEST(Utf8, JsonTextNeverThrows) {
  const nlohmann::json j = {{"ua", "\xFF\xFE"}};
  EXPECT_EQ(json_text(j), "{\"ua\":\"" + kFffd + kFffd + "\"}");
}

}  // namespace
}  // namespace sechex::ledger
