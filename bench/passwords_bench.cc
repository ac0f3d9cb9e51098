// Password verification against its floor, measured in the same run: raw libargon2
// argon2id_hash_raw at the default parameters (19 MiB, t=2, p=1) on one thread, what one core
// does with nothing around it (and on two threads, for what the machine gave two cores). Ours:
// PasswordHasher::verify of a default-parameter PHC string from N caller threads (1, 2, 4) through
// the pool as the server runs it (threads = cores, max_queue 64): parsing, the queue hand-off,
// libargon2's decode, the hash and the constant-time compare. Ratio = verify rate / raw rate; on a
// quiet machine it approaches the core count once N >= cores, since each verify is one single-lane
// hash.
#include <argon2.h>
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "api/crypto/passwords.h"

namespace {

using sechex::api::Argon2Params;
using sechex::api::PasswordHasher;

constexpr std::string_view kPassword = "correct horse battery staple";

void BM_Argon2idRaw(benchmark::State& state) {
  const Argon2Params p;
  std::array<std::uint8_t, 16> salt{};
  salt.fill(0x5a);
  std::array<std::uint8_t, 32> tag{};
  for (auto _ : state) {
    const int rc =
        argon2id_hash_raw(p.t_cost, p.m_cost_kib, p.parallelism, kPassword.data(), kPassword.size(),
                          salt.data(), salt.size(), tag.data(), tag.size());
    if (rc != ARGON2_OK) {
      state.SkipWithError(argon2_error_message(rc));
      break;
    }
    benchmark::DoNotOptimize(tag);
  }
  state.SetItemsProcessed(state.iterations());
}
// threads:1 is the reference of the ratios; threads:2 shows what two cores gave raw libargon2 in
// the same run (other builds share this machine).
BENCHMARK(BM_Argon2idRaw)->Threads(1)->Threads(2)->Unit(benchmark::kMillisecond)->UseRealTime();

struct VerifyFixture {
  std::unique_ptr<PasswordHasher> hasher;
  std::string phc;
};

// One hasher for every thread count, made outside the timed loops.
VerifyFixture& verify_fixture() {
  static VerifyFixture fixture = [] {
    VerifyFixture f;
    auto hasher = PasswordHasher::create({});
    if (!hasher) return f;
    f.hasher = std::move(hasher).value();
    auto phc = f.hasher->hash(sechex::api::Password(kPassword));
    if (phc) f.phc = std::move(phc).value();
    return f;
  }();
  return fixture;
}

void BM_PasswordVerify(benchmark::State& state) {
  auto& f = verify_fixture();
  if (!f.hasher || f.phc.empty()) {
    state.SkipWithError("PasswordHasher::create or hash failed");
    return;
  }
  for (auto _ : state) {
    const auto ok = f.hasher->verify(f.phc, sechex::api::Password(kPassword));
    if (!ok || !ok.value()) {
      const std::string why = ok ? "wrong result" : ok.error().message();
      state.SkipWithError(why.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PasswordVerify)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
