"""Payments under load (issue 15): starts a release ledgerd on a temporary data dir (cheapest
Argon2id parameters so that the accounts take seconds), then
  - registers, verifies and signs in USERS accounts;
  - ROUNDS rounds of, one after the other on the same ledgerd:
      * the reference: LINES POST /v1/events with ONE event per request (an admin token), each
        of its own subject (so, like the payments of many users, spread over the partitions),
        each sent once at 64 connections: the single-event append rate of the same run;
      * payment creation: LINES POST /v1/payments, each with its own Idempotency-Key (users
        round-robin), each sent once, at 64 connections (wrk_identity.lua mode pay);
      * idempotent replays: the same LINES again (same keys and bodies: every answer 200 with
        Idempotent-Replayed, nothing appended).
Payment creations/s and replays/s are 2xx answers over first request to last answer; the ratio
is to the same round's single-event rate (target >= 0.8x: a payment is one chained event plus
its projection rows). Then webhook deliveries: an endpoint on a loopback sink
(bench/webhook_sink.py, answers 204) subscribed to payment.created, WEBHOOK_LINES payments
created, and deliveries/s = deliveries over the time from the first payment to the last
delivery recorded (sechex_webhook_deliveries_total{outcome="delivered"}); reference in the same
run: the same sink's rate for one client posting one request after the other on a new
connection each (as the worker does). Writes one JSON file (argv[2]); prints the table rows.
Usage: payments_bench.py BUILD_DIR OUT_JSON [USERS]"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import start, stop, wait_quiet, wait_ready  # noqa: E402
from identity_bench import TOKEN_RE, call, new_mails, parallel, wrk_once  # noqa: E402

USERS = 200
ROUNDS = 3
LINES = int(os.environ.get("SECHEX_BENCH_PAYMENT_LINES", "10000"))
PASSWORD = "Bench-Tr0ub4dor&3x"
WEBHOOK_LINES = int(os.environ.get("SECHEX_BENCH_WEBHOOK_LINES", "2000"))
LEDGERD_ARGS = ["--password-memory-kib", "8", "--password-passes", "1",
                "--webhook-allow-private-targets"]


def single_event_line(n, k):
    return "/v1/events " + json.dumps(
        {"events": [{"subject": f"bench-{n}-{k}", "type": "order.created",
                     "payload": {"order": f"{n}-{k}", "amount": 1000 + k, "currency": "EUR"}}]},
        separators=(",", ":"))


def delivered(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'sechex_webhook_deliveries_total\{outcome="delivered"\} ([0-9.e+]+)', text)
    return int(float(m.group(1))) if m else 0


def webhooks(url, port, tmp, access, admin, sink_port, ledgerd):
    log = open(os.path.join(tmp, "ledgerd.log")).read()
    metrics_port = int(re.search(r"metrics on 127\.0\.0\.1:(\d+)", log).group(1))
    ref = float(subprocess.run([sys.executable, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "webhook_sink.py"), "ref", str(WEBHOOK_LINES),
        str(sink_port)], check=True, capture_output=True, text=True).stdout)
    status, body = call(port, "POST", "/v1/admin/webhooks/endpoints",
                        {"url": f"http://127.0.0.1:{sink_port}/hooks",
                         "events": ["payment.created"]}, token=admin)
    if status != 201:
        raise RuntimeError(f"endpoint {status}: {body}")
    wait_quiet(ledgerd.pid)
    before = delivered(metrics_port)
    lines = [f"{access[k % len(access)]} wh-{k} " +
             json.dumps({"amount": 100 + k, "currency": "EUR"}, separators=(",", ":"))
             for k in range(WEBHOOK_LINES)]
    t0 = time.monotonic()
    wrk_once(url, lines, tmp, "pay-webhooks", 60, 201, mode="pay")
    while delivered(metrics_port) - before < WEBHOOK_LINES and time.monotonic() - t0 < 600:
        time.sleep(0.05)
    span = time.monotonic() - t0
    n = delivered(metrics_port) - before
    r = {"deliveries": n, "span_s": span, "deliveries_per_s": n / span, "sink_ref_per_s": ref}
    r["ratio"] = r["deliveries_per_s"] / ref
    print(f"  webhooks: {n} delivered in {span:.2f} s = {r['deliveries_per_s']:,.0f}/s; sink "
          f"reference {ref:,.0f}/s", flush=True)
    return r


def main():
    build, out_path = sys.argv[1], sys.argv[2]
    users = int(sys.argv[3]) if len(sys.argv) > 3 else USERS
    tmp = tempfile.mkdtemp(prefix="sechex-payments-bench-", dir=os.environ.get("TMPDIR"))
    data = os.path.join(tmp, "data")
    ctl = os.path.join(build, "ops", "ledgerctl")
    subprocess.run([ctl, "--data-dir", data, "init"], check=True, capture_output=True)
    ledgerd, port = start([os.path.join(build, "bin", "ledgerd"), "--data-dir", data,
                           "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--trusted-proxy", "127.0.0.1", *LEDGERD_ARGS],
                          os.path.join(tmp, "ledgerd.log"))
    sink, sink_port = start([sys.executable, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "webhook_sink.py")], os.path.join(tmp, "sink.log"),
        marker="listening on 127.0.0.1:")
    results = {"users": users, "lines": LINES, "nproc": os.cpu_count()}
    try:
        wait_ready(port)
        url = f"http://127.0.0.1:{port}"
        emails = [f"p-{i:05d}@example.com" for i in range(users)]
        wrk_once(url, ["/v1/auth/register " + json.dumps({"email": e, "password": PASSWORD,
                                                          "consent": True}) for e in emails],
                 tmp, "register", 20, 201)
        tokens = new_mails(os.path.join(data, "outbox"), set(), TOKEN_RE, set(emails),
                           "verification")
        wrk_once(url, ["/v1/auth/verify-email " + json.dumps({"token": tokens[e]})
                       for e in emails], tmp, "verify-email", 22)

        def login(i):
            status, body = call(port, "POST", "/v1/auth/login",
                                {"email": emails[i], "password": PASSWORD},
                                ip=f"10.0.{i // 256 % 256}.{i % 256}")
            if status != 200:
                raise RuntimeError(f"login {status}: {body}")
            return body["data"]["accessToken"]
        access = parallel(login, range(users), 16)
        admin = subprocess.run([ctl, "--data-dir", data, "tokens", "issue", "--role", "admin",
                                "--ttl", "7200"], check=True, capture_output=True,
                               text=True).stdout.strip()
        os.environ["WRK_TOKEN"] = admin  # wrk_once passes its environment on
        rounds = []
        for n in range(ROUNDS):
            wait_quiet(ledgerd.pid)
            ref = wrk_once(url, [single_event_line(n, k) for k in range(LINES)], tmp,
                           f"events-{n}", 50, 201)
            os.environ["WRK_TOKEN"] = ""
            wait_quiet(ledgerd.pid)
            lines = [f"{access[k % users]} r{n}-k{k} " +
                     json.dumps({"amount": 1000 + k, "currency": "EUR",
                                 "description": f"Order {n}-{k}",
                                 "metadata": {"order": f"{n}-{k}"}}, separators=(",", ":"))
                     for k in range(LINES)]
            created = wrk_once(url, lines, tmp, f"pay-{n}", 30, 201, mode="pay")
            wait_quiet(ledgerd.pid)
            replayed = wrk_once(url, lines, tmp, f"replay-{n}", 40, 200, mode="pay")
            os.environ["WRK_TOKEN"] = admin
            r = {"events_per_s": ref["ok_per_s"], "events_p99_us": ref["p99_us"],
                 "created_per_s": created["statuses"].get("201", 0) / created["span_s"],
                 "created_p99_us": created["p99_us"],
                 "replayed_per_s": replayed["statuses"].get("200", 0) / replayed["span_s"],
                 "replayed_p99_us": replayed["p99_us"]}
            r["ratio"] = r["created_per_s"] / r["events_per_s"]
            print(f"  round {n}: single events {r['events_per_s']:,.0f}/s, payments "
                  f"{r['created_per_s']:,.0f}/s ({r['ratio']:.2f}x), replays "
                  f"{r['replayed_per_s']:,.0f}/s", flush=True)
            rounds.append(r)
        results["rounds"] = rounds
        median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        results["median"] = median
        m = median
        print(f"| payments created, 64 conns, distinct keys ({users} users, median of {ROUNDS} "
              f"rounds of {LINES:,}) | {m['created_per_s']:,.0f}/s, p99 "
              f"{m['created_p99_us'] / 1e3:.1f} ms | POST /v1/events, 1 event per request, "
              f"{m['events_per_s']:,.0f}/s | {m['ratio']:.2f}x |")
        print(f"| idempotent replays (same key and body) | {m['replayed_per_s']:,.0f}/s, p99 "
              f"{m['replayed_p99_us'] / 1e3:.1f} ms | same | "
              f"{m['replayed_per_s'] / m['events_per_s']:.2f}x |")
        results["webhooks"] = webhooks(url, port, tmp, access, admin, sink_port, ledgerd)
        w = results["webhooks"]
        print(f"| webhook deliveries to a loopback sink, {WEBHOOK_LINES:,} payments | "
              f"{w['deliveries_per_s']:,.0f}/s | the sink, one client, a new connection per "
              f"request, {w['sink_ref_per_s']:,.0f}/s | {w['ratio']:.2f}x |")
    finally:
        stop(ledgerd)
        stop(sink)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
