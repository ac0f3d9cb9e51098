"""Turns ledger_bench JSON output into the table in bench/README.md: each figure next to its
same-run reference, so machine noise cancels out."""
import json
import sys


def main(path):
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
    for batch in (1, 64, 512):
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


if __name__ == "__main__":
    main(sys.argv[1])
