"""Turns ledger_bench JSON output (and, when given, http_bench.py's JSON) into the table in
bench/README.md: each figure next to its same-run reference, so machine noise cancels out.
Usage: ratios.py RESULTS_JSON [HTTP_JSON] [--identity IDENTITY_JSON]"""
import json
import sys


def main(path, http_path=None, identity_path=None):
    with open(path) as f:
        data = json.load(f)
    by_name = {b["name"]: b for b in data["benchmarks"] if b.get("run_type") != "aggregate"}

    def rate(name):
        b = by_name.get(name)
        return b["items_per_second"] if b else None

    ctx = data["context"]
    print(f"machine: {ctx.get('num_cpus')} cpus @ {ctx.get('mhz_per_cpu')} MHz, "
          f"date {ctx.get('date')}")
    print("| measure | ours | reference (same run) | ratio |")
    print("| --- | --- | --- | --- |")
    for batch in (1, 64, 100, 512):
        ours = rate(f"BM_LedgerAppend/{batch}/min_time:2.000/real_time")
        raw = rate(f"BM_RawRocksSyncWrite/{batch}/min_time:2.000/real_time")
        if ours and raw:
            print(f"| durable append, batch {batch} | {ours:,.0f} events/s | raw RocksDB sync "
                  f"write {raw:,.0f} events/s | cost {raw / ours:.2f}x raw |")
    conc = by_name.get("BM_ConcurrentAppendLatency/400/iterations:3/real_time")
    rawc = by_name.get("BM_RawRocksConcurrentSyncPut/400/iterations:3/real_time")
    if conc and rawc:
        print(f"| 8 concurrent appenders, 1 event each | p50 {conc['p50_us']:.0f} us, "
              f"p99 {conc['p99_us']:.0f} us, {conc['items_per_second']:,.0f} events/s | raw "
              f"RocksDB 8 sync writers p50 {rawc['p50_us']:.0f} us, p99 {rawc['p99_us']:.0f} us,"
              f" {rawc['items_per_second']:,.0f} events/s | p99 {conc['p99_us'] / rawc['p99_us']:.2f}x raw |")
    ver = rate("BM_Verify/200000/min_time:2.000/real_time")
    sha = rate("BM_Sha256/300")
    if ver and sha:
        print(f"| verify (2 threads), ~300-byte events | {ver:,.0f} events/s | raw SHA-256 of "
              f"300 bytes {sha:,.0f}/s on one core | {ver / sha:.2f}x one-core hashing |")

    kafka = by_name.get("BM_KafkaAppend8Partitions/min_time:5.000/real_time")
    emb = rate("BM_EmbeddedAppend8Partitions/min_time:5.000/real_time")
    if kafka and emb and "items_per_second" in kafka:
        print(f"| Kafka log append, 8 partition writers x 512 events (transactional, acks=all, "
              f"idempotent) | {kafka['items_per_second']:,.0f} events/s, one transaction p50 "
              f"{kafka['p50_us'] / 1000:.1f} ms, p99 {kafka['p99_us'] / 1000:.1f} ms | embedded log, "
              f"same load {emb:,.0f} events/s | {kafka['items_per_second'] / emb:.2f}x embedded |")
    kc = rate("BM_KafkaCatchUp/iterations:2/real_time")
    ec = rate("BM_EmbeddedCatchUp/iterations:2/real_time")
    if kc and ec:
        print(f"| projection catch-up, 8 x 5,000 events | from Kafka {kc:,.0f} events/s | from the "
              f"embedded log {ec:,.0f} events/s | {kc / ec:.2f}x embedded |")

    raw_tok = rate("BM_RawEs256Verify/min_time:1.000")
    for name, label in (("BM_VerifyAccessTokenUncached/min_time:1.000",
                         "token validation, uncached (verify_access_token)"),
                        ("BM_TokenVerifierCached/min_time:1.000",
                         "token validation, cache hit (TokenVerifier)")):
        ours = rate(name)
        if ours and raw_tok:
            print(f"| {label} | {1e6 / ours:.1f} us | raw OpenSSL ES256 verify "
                  f"{1e6 / raw_tok:.1f} us | time {raw_tok / ours:.2f}x raw |")
    if http_path:
        http_rows(http_path, rate("BM_RawRocksSyncWrite/100/min_time:2.000/real_time"))
    if identity_path:
        identity_rows(identity_path)


def http_rows(path, raw_rocks_100):
    with open(path) as f:
        h = json.load(f)
    ref = h["raw_healthz"]
    load = f"{h['connections']} conns, wrk {h['wrk_threads']} threads, {h['seconds']} s"

    def row(label, r):
        print(f"| {label} ({load}) | {r['ok_rps']:,.0f} req/s, p99 {r['p99_us'] / 1000:.2f} ms"
              f"{errors(r)} | bare Beast GET {ref['rps']:,.0f} req/s, p99 "
              f"{ref['p99_us'] / 1000:.2f} ms | {r['ok_rps'] / ref['rps']:.2f}x reference req/s |")

    def errors(r):
        bad = r["errors_status"] + r["errors_connect"] + r["errors_read"] + r["errors_timeout"]
        return f", {bad} errors" if bad else ""

    row("GET /healthz", h["healthz"])
    row("GET /v1/admin/audit?limit=1, admin bearer", h["audit"])
    ing = h["ingest"]
    ref_txt = (f"raw RocksDB sync write, batch {h['batch']}, one writer {raw_rocks_100:,.0f} events/s"
               if raw_rocks_100 else "n/a")
    ratio = f"{ing['events_per_s'] / raw_rocks_100:.2f}x raw events/s" if raw_rocks_100 else ""
    print(f"| POST /v1/events, batches of {h['batch']} ({load}) | {ing['events_per_s']:,.0f} "
          f"events/s ({ing['ok_rps']:,.0f} req/s, p99 {ing['p99_us'] / 1000:.1f} ms{errors(ing)})"
          f" | {ref_txt} | {ratio} |")
    for key, label, refkey in (("idle", "ledgerd", "raw_idle"),):
        i, r = h[key], h[refkey]
        print(f"| RSS, {i['connections']:,} idle keep-alive connections ({i['still_open']:,} "
              f"still open) | {label} {i['rss_before_kb'] / 1024:.1f} -> "
              f"{i['rss_after_kb'] / 1024:.1f} MB, {i['per_conn_bytes']:,.0f} B/conn | bare Beast"
              f" {r['rss_before_kb'] / 1024:.1f} -> {r['rss_after_kb'] / 1024:.1f} MB, "
              f"{r['per_conn_bytes']:,.0f} B/conn | {i['per_conn_bytes'] / r['per_conn_bytes']:.2f}x"
              f" reference per connection |")


def identity_rows(path):
    """identity_bench.py: logins against raw Argon2id on two threads measured around them;
    refresh, /v1/me and OTP verify against the bare Beast server of the same run (OTP verify
    also against the refresh rate of the run: comparable work, a durable append and a token
    pair)."""
    with open(path) as f:
        h = json.load(f)
    ref = h["raw_healthz"]
    cores = h["nproc"]
    lg, argon = h["login"], h["raw_argon2_2t"]

    def errors(r):
        bad = r["errors_status"] + r["errors_connect"] + r["errors_read"] + r["errors_timeout"]
        return f", {bad} errors" if bad else ""

    print(f"| POST /v1/auth/login, successful logins, {h['setup']['accounts']} accounts "
          f"round-robin ({h['login_connections']} conns, wrk {h['wrk_threads']} threads, "
          f"{h['seconds']} s) | {lg['logins_per_s']:.1f} logins/s ({lg['logins_per_s'] / cores:.1f}"
          f" per core), p99 {lg['p99_us'] / 1000:.0f} ms{errors(lg)}; ledgerd CPU "
          f"{lg['ledgerd_cpu_ms_per_login']:.1f} ms per login | raw Argon2id, same parameters, "
          f"2 threads {argon['mean']:.1f} hashes/s (before {argon['before']:.1f}, after "
          f"{argon['after']:.1f}); {argon['cpu_ms_per_hash']:.1f} CPU ms per hash | "
          f"{lg['logins_per_s'] / argon['mean']:.2f}x raw hashes/s; CPU "
          f"{lg['ledgerd_cpu_ms_per_login'] / argon['cpu_ms_per_hash']:.2f}x raw per hash |")
    load = f"{h['connections']} conns, wrk {h['wrk_threads']} threads, {h['seconds']} s"
    for key, label in (("refresh", "POST /v1/auth/refresh, each token once (rotation)"),
                       ("me", "GET /v1/me, Bearer access token")):
        r = h[key]
        print(f"| {label} ({load}) | {r['ok_rps']:,.0f} req/s ({r['ok_rps'] / cores:,.0f} per "
              f"core), p99 {r['p99_us'] / 1000:.2f} ms{errors(r)} | bare Beast GET "
              f"{ref['rps']:,.0f} req/s, p99 {ref['p99_us'] / 1000:.2f} ms | "
              f"{r['ok_rps'] / ref['rps']:.3f}x reference req/s |")
    otp = h.get("otp_verify")
    if not otp or "skipped" in otp:
        print(f"| OTP verify | not measured: {otp['skipped'] if otp else 'not in this JSON'} | | |")
    else:
        rf, rounds = h["refresh"], otp["rounds"]
        bad = sum(r["errors"] + r["errors_connect"] + r["errors_read"] + r["errors_timeout"]
                  for r in rounds)
        rates = ", ".join(f"{r['ok_per_s']:,.0f}" for r in rounds)
        p99s = ", ".join(f"{r['p99_us'] / 1000:.1f}" for r in rounds)
        cpu = sorted(r["ledgerd_cpu_ms_per_verify"] for r in rounds)[len(rounds) // 2]
        print(f"| POST /v1/auth/otp/verify, successful, each fresh code once ({otp['accounts']:,}"
              f" accounts x {len(rounds)} rounds, {rounds[0]['lines']:,} codes a round; "
              f"{h['connections']} conns, wrk {h['wrk_threads']} threads) | "
              f"{otp['median_ok_per_s']:,.0f} verifies/s ({otp['median_ok_per_s'] / cores:,.0f}"
              f" per core; rounds {rates}), p99 {otp['median_p99_us'] / 1000:.2f} ms (rounds "
              f"{p99s}), {bad} errors; ledgerd CPU {cpu:.2f} ms per verify | bare Beast GET "
              f"{ref['rps']:,.0f} req/s, p99 {ref['p99_us'] / 1000:.2f} ms; refresh, same run "
              f"{rf['ok_rps']:,.0f} req/s, p99 {rf['p99_us'] / 1000:.2f} ms | "
              f"{otp['median_ok_per_s'] / ref['rps']:.3f}x reference req/s; "
              f"{otp['median_ok_per_s'] / rf['ok_rps']:.2f}x refresh |")
    print(f"load average: start {', '.join(f'{x:.1f}' for x in h['loadavg_start'])}; end "
          f"{', '.join(f'{x:.1f}' for x in h['loadavg_end'])}")


if __name__ == "__main__":
    args = sys.argv[1:]
    identity = None
    if "--identity" in args:
        i = args.index("--identity")
        identity = args[i + 1]
        del args[i:i + 2]
    main(args[0], args[1] if len(args) > 1 else None, identity)
