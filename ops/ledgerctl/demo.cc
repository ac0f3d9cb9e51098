#include "demo.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>

#include "ledger/clock.h"
#include "ledger/crypto.h"
#include "schemas/json_codec.h"

namespace sechex::ops {
namespace {

// FlatBuffers JSON needs a union's type field before its value: keep insertion order.
using json = nlohmann::ordered_json;
using ledger::Bytes;
using ledger::ByteView;
namespace crypto = ledger::crypto;

// Plaintext for a sealed field, chosen by its name so exports look like real data.
std::string pii_for(const std::string& field, std::uint32_t subject, std::mt19937_64& rng) {
  if (field == "email") return "user" + std::to_string(subject) + "@example.com";
  if (field == "ip") {
    return "198.51.100." + std::to_string(rng() % 250 + 1);  // TEST-NET-2 (RFC 5737)
  }
  if (field == "user_agent")
    return "Mozilla/5.0 (X11; Linux x86_64) Demo/" + std::to_string(rng() % 9);
  if (field == "password_hash") {
    return "$argon2id$v=19$m=19456,t=2,p=1$ZGVtb3NhbHQ$ZGVtb2hhc2hkZW1vaGFzaGRlbW9oYXNo";
  }
  if (field == "description") return "Order #" + std::to_string(rng() % 100000);
  if (field == "device" || field == "device_model") return "Pixel 9 Pro";
  if (field == "to") return "user" + std::to_string(subject) + "@example.com";
  if (field == "secret") return std::to_string(10'000'000 + rng() % 90'000'000);  // an OTP code
  return "demo " + field;
}

json string_for(const std::string& field, std::uint64_t n, std::mt19937_64& rng) {
  static const char* const kCurrencies[] = {"EUR", "USD", "GBP", "CNY"};
  static const char* const kStatuses[] = {"pending", "succeeded", "failed", "refunded"};
  if (field == "currency") return kCurrencies[rng() % 4];
  if (field == "status") return kStatuses[rng() % 4];
  if (field == "provider") return "example-oidc";
  if (field == "role") return rng() % 2 ? "premium" : "admin";
  // Mail events (MailQueued and its outcomes) look like the mail worker's.
  if (field == "message_id") {
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(rng()));
    return std::string(hex);
  }
  if (field == "kind") return rng() % 2 ? "otp_code" : "account_locked";
  if (field == "locale") return rng() % 2 ? "en" : "zh-CN";
  if (field == "transport") return rng() % 2 ? "smtp" : "file";
  if (field.size() > 5 && field.substr(field.size() - 5) == "_json") return "{\"demo\":true}";
  if (field.size() > 3 && field.substr(field.size() - 3) == "_id") {
    return field.substr(0, field.size() - 3) + "-" + std::to_string(n);
  }
  return field + "-" + std::to_string(rng() % 1000);
}

json bytes_json(const Bytes& b) {
  json arr = json::array();
  for (const auto v : b) arr.push_back(v);
  return arr;
}

}  // namespace

Result<std::uint64_t> run_demo(ledger::Log& log, ledger::KeyStore& keys, const DemoOptions& opts,
                               std::ostream& progress) {
  std::mt19937_64 rng(opts.seed != 0 ? opts.seed : std::random_device{}());
  const auto& types = schemas::event_type_names();
  const std::uint32_t subjects =
      opts.subjects != 0
          ? opts.subjects
          : static_cast<std::uint32_t>(std::clamp<std::uint64_t>(opts.events / 50, 10, 2000));
  const auto partitions = log.partition_count();
  std::vector<std::vector<Bytes>> pending(partitions);
  const auto base_time = SystemClock::instance().now_micros();
  std::uint64_t written = 0;

  auto flush = [&](std::uint32_t p) -> Result<void> {
    if (pending[p].empty()) return boost::outcome_v2::success();
    std::vector<ByteView> views(pending[p].begin(), pending[p].end());
    SECHEX_TRY(auto r, log.append(ledger::Partition{p}, views));
    (void)r;
    written += pending[p].size();
    pending[p].clear();
    return boost::outcome_v2::success();
  };

  for (std::uint64_t n = 0; n < opts.events; ++n) {
    const auto& type = types[n % types.size()];  // round-robin: every type appears
    const auto subject_no = static_cast<std::uint32_t>(rng() % subjects);
    const std::string subject = "user-" + std::to_string(subject_no);
    SECHEX_TRY(auto id_bytes, crypto::random_bytes(16));
    auto seal = [&](const std::string& field, const std::string& text) -> Result<json> {
      SECHEX_TRY(auto sealed, keys.seal(subject, id_bytes, field, ledger::as_bytes(text)));
      return bytes_json(sealed);
    };
    json body = json::object();
    for (const auto& f : schemas::event_fields(type)) {
      const auto& name = f.name;
      if (name.size() > 7 && name.substr(name.size() - 7) == "_sealed") {
        const auto field = name.substr(0, name.size() - 7);
        SECHEX_TRY(body[name], seal(field, pii_for(field, subject_no, rng)));
      } else if (f.type == "ubyte_vector") {
        SECHEX_TRY(auto h, crypto::random_bytes(32));
        body[name] = bytes_json(h);
      } else if (f.type == "string") {
        body[name] = string_for(name, n, rng);
      } else if (f.type == "bool") {
        body[name] = rng() % 2 == 0;
      } else if (f.type == "int64") {
        body[name] = name == "amount_minor" ? static_cast<std::int64_t>(rng() % 100000)
                                            : base_time + 3'600'000'000;
      } else if (f.type.rfind("uint", 0) == 0 || f.type.rfind("int", 0) == 0) {
        body[name] = rng() % 6;
      }
    }
    json env;
    env["schema_version"] = 1;
    env["event_id"] = {{"bytes", bytes_json(id_bytes)}};
    // Spread over the last 100 days so time filters and retention have something to act on.
    env["time_micros"] =
        base_time - static_cast<std::int64_t>((opts.events - n) * 86'400'000'000ULL * 100 /
                                              std::max<std::uint64_t>(opts.events, 1));
    env["subject"] = subject;
    env["actor"] = n % 7 == 0 ? "admin:ops" : subject;
    env["request_id"] = "req-" + std::to_string(n);
    json source;
    SECHEX_TRY(source["ip_sealed"], seal("ip", pii_for("ip", subject_no, rng)));
    SECHEX_TRY(source["user_agent_sealed"], seal("user_agent", pii_for("user_agent", 0, rng)));
    env["source"] = source;
    env["event_type"] = type;
    env["event"] = body;
    std::string error;
    auto bytes = schemas::envelope_from_json(env.dump(), &error);
    if (!bytes) {
      progress << "demo: cannot build " << type << ": " << error << "\n";
      return ledger::Errc::invalid_argument;
    }
    const auto p = ledger::partition_for(subject, partitions).value;
    pending[p].push_back(std::move(*bytes));
    if (pending[p].size() >= opts.batch) SECHEX_TRYV(flush(p));
    if ((n + 1) % 20000 == 0) progress << "demo: " << (n + 1) << " events\n";
  }
  for (std::uint32_t p = 0; p < partitions; ++p) SECHEX_TRYV(flush(p));
  return written;
}

}  // namespace sechex::ops
