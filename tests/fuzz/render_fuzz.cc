// libFuzzer target for the renderers of stored events (issue 12: one record with a non-UTF-8
// user agent made the audit API, every export and `ledgerctl export` fail). Records written
// before text was validated at entry may hold any bytes, so the input is split into the string
// fields of an envelope (subject, actor, request id, the sealed IP and user agent, and the
// event's own strings and sealed fields), built directly with FlatBuffers (no EventBuilder, which
// now cleans text) and sealed under a real KeyStore. Whatever the bytes:
//   - record_to_json renders it, every string of the result is well-formed UTF-8, strict
//     nlohmann dump() succeeds, and `invalid_utf8` is present exactly when something was
//     repaired;
//   - the CSV row renders and is well-formed UTF-8;
//   - the raw input taken as event bytes renders through render_record without throwing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ledger/export.h"
#include "ledger/key_store.h"
#include "ledger/utf8.h"
#include "schemas/events.h"

namespace {

using namespace sechex;

// Data keys in memory: the fuzzer must not touch a disk.
class MemoryKeys final : public ledger::KeyBackend {
 public:
  bool read_only() const override { return false; }
  std::uint32_t partition_count() const override { return 1; }
  Result<Stored> get(std::string_view subject) override {
    const auto it = keys_.find(std::string(subject));
    if (it == keys_.end()) return Stored{};
    return Stored{State::present, it->second};
  }
  Result<void> put(std::string_view subject, std::string_view wrapped) override {
    keys_[std::string(subject)] = std::string(wrapped);
    return boost::outcome_v2::success();
  }
  Result<ledger::AppendResult> erase(std::string_view, ledger::ByteView) override {
    return ledger::Errc::invalid_argument;
  }
  Result<std::optional<std::string>> meta_check(std::string_view,
                                                std::string_view candidate) override {
    return std::optional<std::string>(std::string(candidate));
  }
  std::uint64_t erasure_epoch() override { return 0; }

 private:
  std::map<std::string, std::string> keys_;
};

ledger::KeyStore& keys() {
  static auto store = [] {
    // base64 of 32 bytes 0x00..0x1f
    auto kek = ledger::Kek::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    if (!kek) std::abort();
    auto s = ledger::KeyStore::open(std::make_unique<MemoryKeys>(), std::move(kek).value());
    if (!s) std::abort();
    return std::move(s).value();
  }();
  return *store;
}

// Walks `j`, aborting on any string or key that is not well-formed UTF-8.
void require_utf8(const nlohmann::json& j) {
  if (j.is_string()) {
    if (!ledger::is_utf8(j.get_ref<const std::string&>())) std::abort();
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!ledger::is_utf8(it.key())) std::abort();
      require_utf8(it.value());
    }
  } else if (j.is_array()) {
    for (const auto& v : j) require_utf8(v);
  }
}

std::vector<std::string> split(std::string_view in, std::size_t n) {
  std::vector<std::string> parts;
  while (parts.size() + 1 < n) {
    const auto at = in.find('\x1f');
    if (at == std::string_view::npos) break;
    parts.emplace_back(in.substr(0, at));
    in.remove_prefix(at + 1);
  }
  parts.emplace_back(in);
  parts.resize(n);
  return parts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto f = split(input, 8);
  // subject, actor, request id, ip, user agent, first string, second string, sealed field
  if (f[0].empty()) f[0] = "s";
  const std::uint8_t event_id[16] = {1, 2, 3};
  const ledger::ByteView id(event_id, 16);
  auto seal = [&](flatbuffers::FlatBufferBuilder& b, const char* field, const std::string& text) {
    auto sealed = keys().seal(
        f[0], id, field,
        ledger::ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    if (!sealed) std::abort();
    return b.CreateVector(sealed.value());
  };
  flatbuffers::FlatBufferBuilder b;
  const auto ip = seal(b, "ip", f[3]);
  const auto ua = seal(b, "user_agent", f[4]);
  const auto source = schema::CreateSource(b, ip, ua);
  const auto kind = size == 0 ? 0 : data[0] % 4;
  flatbuffers::Offset<void> body;
  schema::Event type = schema::Event::CsrfRejected;
  switch (kind) {
    case 0:
      body = schema::CreateCsrfRejected(b, b.CreateString(f[5]), b.CreateString(f[6])).Union();
      break;
    case 1:
      type = schema::Event::SessionStarted;
      body = schema::CreateSessionStarted(b, b.CreateString(f[5]), b.CreateString(f[6]), 0, false,
                                          0, 0, seal(b, "device", f[7]))
                 .Union();
      break;
    case 2:
      type = schema::Event::ApplicationEvent;
      body = schema::CreateApplicationEvent(b, b.CreateString(f[5]), b.CreateString(f[6]),
                                            b.CreateString(f[7]), seal(b, "payload", f[7]))
                 .Union();
      break;
    default:
      type = schema::Event::AccountUnlocked;
      body = schema::CreateAccountUnlocked(b, true, b.CreateString(f[5])).Union();
      break;
  }
  const auto subject = b.CreateString(f[0]);
  const auto actor = b.CreateString(f[1]);
  const auto request_id = b.CreateString(f[2]);
  const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(event_id, 16));
  schema::EnvelopeBuilder env(b);
  env.add_schema_version(schemas::kSchemaVersion);
  env.add_event_id(&eid);
  env.add_time_micros(1'700'000'000'000'000);
  env.add_subject(subject);
  env.add_actor(actor);
  env.add_request_id(request_id);
  env.add_source(source);
  env.add_event_type(type);
  env.add_event(body);
  schema::FinishEnvelopeBuffer(b, env.Finish());

  ledger::Record record;
  record.event.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  auto rendered = ledger::record_to_json(record, &keys());
  if (!rendered) std::abort();  // a well-formed envelope always renders
  const auto& j = rendered.value();
  require_utf8(j);
  (void)j.dump();  // strict: throws (and so fails the run) on ill-formed UTF-8
  // The fields each kind of event above stores.
  const std::size_t used = kind == 3 ? 6 : kind == 0 ? 7 : 8;
  bool all_valid = true;
  for (std::size_t i = 0; i < used; ++i) all_valid = all_valid && ledger::is_utf8(f[i]);
  if (j.contains("invalid_utf8") == all_valid) std::abort();
  if (!ledger::is_utf8(ledger::json_to_csv_row(j))) std::abort();

  // Arbitrary bytes as a stored event: marked, never thrown.
  ledger::Record raw;
  raw.event.assign(data, data + size);
  const auto marked = ledger::render_record(raw, &keys());
  require_utf8(marked);
  (void)ledger::json_to_csv_row(marked);
  return 0;
}
