"""Identity part of bench/run (issue 5): starts a release ledgerd on a temporary data dir with
--trusted-proxy 127.0.0.1 (so each request can name its client in X-Forwarded-For), registers
ACCOUNTS accounts and verifies them with the tokens of the mails in <data-dir>/outbox, then
measures with wrk and bench/wrk_identity.lua, on this same machine:
  - POST /v1/auth/login (successful logins only, accounts round-robin, a new X-Forwarded-For per
    request) at LOGIN_CONNECTIONS, against the raw Argon2id hash rate at the same parameters on
    two threads (ledger_bench BM_Argon2idRaw/real_time/threads:2) measured right before and right
    after the login run, ledgerd idle;
  - POST /v1/auth/refresh, each refresh token used once (the Lua chains the rotated tokens);
  - GET /v1/me with Bearer access tokens;
  - POST /v1/auth/otp/verify, successful verifies of fresh codes, each code once, on a second
    ledgerd (fresh data dir, cheapest Argon2id parameters so that OTP_ACCOUNTS registrations are
    quick; the OTP path hashes no password): OTP_ACCOUNTS verified accounts, then OTP_ROUNDS
    rounds of (one code requested per account, codes read from the .eml files in the outbox,
    every code verified once with wrk, mode "once" of wrk_identity.lua). The rate is 200 answers
    over the time from the first request to the last answer (wrk_once); the median round counts.
    The last three at 64 connections against the bare Beast server (bench/raw_http_server.cc),
    as the other HTTP rows.
Writes one JSON file (argv[2]) that bench/ratios.py reads (--identity).
Usage: identity_bench.py BUILD_DIR OUT_JSON [SECONDS]"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import (CONNECTIONS, ROOT, WRK_THREADS, cpu_ticks, start, stop,  # noqa: E402
                        wait_quiet, wait_ready, wrk)

ACCOUNTS = 200
PASSWORD = "Bench-Tr0ub4dor&3x"
# Logins: 8 in flight, one per pool thread (ledgerd's --pool-threads default), enough to keep
# the two hashing threads busy. p99 grows with connections by Little's law (64 connections
# would queue ~1 s of logins), so more only measures the queue.
LOGIN_CONNECTIONS = 8
RAW_ARGON_MIN_TIME = 3  # seconds per BM_Argon2idRaw measurement
# OTP verify: a second ledgerd (fresh data dir) with OTP_ACCOUNTS verified accounts; each round
# requests one code per account, reads the codes from the outbox and verifies them all, once
# each. OTP_ROUNDS stays within ledgerd's defaults: 5 codes per account per 15 min
# (otp_requests_per_user; beyond that no code is sent) and 5 validations per address per 15 min
# (--otp-validations-per-window; successful ones count too), so no limit is raised. Codes live
# 5 minutes: a round must verify within 5 minutes of its first request.
OTP_ACCOUNTS = int(os.environ.get("SECHEX_BENCH_OTP_ACCOUNTS", "6000"))
OTP_ROUNDS = 3
assert OTP_ROUNDS <= 5
# Registration hashes the password; the OTP path never does. This ledgerd uses the cheapest
# Argon2id parameters it accepts so that thousands of accounts take seconds, not minutes.
OTP_LEDGERD_ARGS = ["--password-memory-kib", "8", "--password-passes", "1"]
TOKEN_RE = re.compile(r"\?token=([A-Za-z0-9_-]+)")
CODE_RE = re.compile(r"^\s*(\d{8})\s*$", re.M)
TO_RE = re.compile(r"^To:.*?<?([^\s<>]+@[^\s<>]+)>?\s*$", re.M)


def call(port, method, path, body=None, ip=None, token=None):
    """(status, parsed JSON or None)."""
    headers = {"Content-Type": "application/json"}
    if ip:
        headers["X-Forwarded-For"] = ip
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def parallel(fn, args, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, args))


def email(i):
    return f"bench-{i:04d}@example.com"


def otp_email(i):
    return f"otp-{i:05d}@example.com"


def new_mails(outbox, seen, pattern, wanted, what, timeout=300.0):
    """email -> the first group of `pattern` in the mails of the outbox not in `seen` (file
    names, updated), until every address of `wanted` has one."""
    found = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name in os.listdir(outbox) if os.path.isdir(outbox) else []:
            if not name.endswith(".eml") or name in seen:
                continue
            seen.add(name)
            with open(os.path.join(outbox, name), errors="replace") as f:
                text = f.read().replace("=\r\n", "").replace("=\n", "")  # QP soft breaks
            to, m = TO_RE.search(text), pattern.search(text)
            if to and m:
                found[to.group(1).lower()] = m.group(1)
        if wanted <= found.keys():
            return found
        time.sleep(0.2)
    raise RuntimeError(f"only {len(wanted & found.keys())} of {len(wanted)} {what} mails arrived")


def otp_verify_rounds(build, tmp, results):
    """Starts the OTP ledgerd, sets up OTP_ACCOUNTS verified accounts, and runs OTP_ROUNDS
    rounds of (request a code for every account, read the codes, verify each once)."""
    data = os.path.join(tmp, "data-otp")
    subprocess.run([os.path.join(build, "ops", "ledgerctl"), "--data-dir", data, "init"],
                   check=True, capture_output=True)
    outbox, seen = os.path.join(data, "outbox"), set()
    ledgerd, port = start([os.path.join(build, "bin", "ledgerd"), "--data-dir", data,
                           "--listen", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1",
                           *OTP_LEDGERD_ARGS], os.path.join(tmp, "ledgerd-otp.log"))
    url = f"http://127.0.0.1:{port}"
    emails = [otp_email(i) for i in range(OTP_ACCOUNTS)]

    def expect(r, status, what):
        if r["statuses"] != {str(status): r["lines"]} or r["answered"] != r["lines"]:
            raise RuntimeError(f"{what}: {r['statuses']}, {r['answered']} of {r['lines']} "
                               f"answered, first refusal {r.get('first_refusal')}")
    try:
        wait_ready(port)
        print(f"ledgerd for OTP ({' '.join(OTP_LEDGERD_ARGS)})", flush=True)
        # A ledgerd built before the OTP routes: no row rather than no bench (an unknown address
        # leaves no event).
        status, _ = call(port, "POST", "/v1/auth/otp/request", {"email": "probe@example.com"},
                         ip="192.0.2.1")
        if status != 202:
            print(f"  POST /v1/auth/otp/request answered {status}: no OTP verify row", flush=True)
            results["otp_verify"] = {"skipped": f"POST /v1/auth/otp/request answered {status}"}
            return
        t0 = time.time()
        lines = ["/v1/auth/register " + json.dumps({"email": e, "password": PASSWORD,
                                                    "consent": True}) for e in emails]
        expect(wrk_once(url, lines, tmp, "register", 20, 201), 201, "register")
        tokens = new_mails(outbox, seen, TOKEN_RE, set(emails), "verification")
        lines = ["/v1/auth/verify-email " + json.dumps({"token": tokens[e]}) for e in emails]
        expect(wrk_once(url, lines, tmp, "verify-email", 22), 200, "verify-email")
        setup_s = time.time() - t0
        print(f"  {OTP_ACCOUNTS} accounts registered and verified in {setup_s:.1f} s", flush=True)
        rounds = []
        hz = os.sysconf("SC_CLK_TCK")
        for n in range(OTP_ROUNDS):
            t0 = time.time()
            lines = ["/v1/auth/otp/request " + json.dumps({"email": e}) for e in emails]
            expect(wrk_once(url, lines, tmp, f"otp-request-{n}", 30 + 2 * n, 202), 202,
                   "otp-request")
            codes = new_mails(outbox, seen, CODE_RE, set(emails), "OTP code")
            mailed_s = time.time() - t0
            quiet_s = wait_quiet(ledgerd.pid)
            # Measured: every code once; only 200s count (wrk_once: ok / span).
            lines = ["/v1/auth/otp/verify " + json.dumps({"email": e, "code": codes[e]})
                     for e in emails]
            cpu0 = cpu_ticks(ledgerd.pid)
            r = wrk_once(url, lines, tmp, f"otp-verify-{n}", 40 + 2 * n)
            r["ledgerd_cpu_ms_per_verify"] = (1000 * (cpu_ticks(ledgerd.pid) - cpu0) / hz
                                              / max(1, r["answered"]))
            r["ok"] = r["statuses"].get("200", 0)  # 201 is no success here
            r["ok_per_s"] = r["ok"] / r["span_s"] if r["span_s"] > 0 else 0.0
            r["errors"] = r["lines"] - r["ok"]
            r["codes_mailed_s"] = round(mailed_s, 1)
            r["quiet_wait_s"] = quiet_s
            rounds.append(r)
        by_rate = sorted(rounds, key=lambda r: r["ok_per_s"])
        results["otp_verify"] = {
            "accounts": OTP_ACCOUNTS, "rounds": rounds, "setup_s": round(setup_s, 1),
            "ledgerd_args": OTP_LEDGERD_ARGS,
            "median_ok_per_s": by_rate[len(by_rate) // 2]["ok_per_s"],
            "median_p99_us": sorted(r["p99_us"] for r in rounds)[len(rounds) // 2],
            "median_p50_us": sorted(r["p50_us"] for r in rounds)[len(rounds) // 2],
            "errors": sum(r["errors"] for r in rounds)}
    finally:
        stop(ledgerd)


def setup_accounts(port, data):
    t0 = time.time()
    statuses = parallel(lambda i: call(port, "POST", "/v1/auth/register",
                                       {"email": email(i), "password": PASSWORD, "consent": True},
                                       ip=f"172.16.{i // 256}.{i % 256}")[0], range(ACCOUNTS))
    if any(s != 201 for s in statuses):
        raise RuntimeError(f"registration statuses: {sorted(set(statuses))}")
    registered = time.time() - t0
    tokens = new_mails(os.path.join(data, "outbox"), set(), TOKEN_RE,
                       {email(i) for i in range(ACCOUNTS)}, "verification", timeout=120.0)
    statuses = parallel(lambda e: call(port, "POST", "/v1/auth/verify-email",
                                       {"token": tokens[e]})[0], sorted(tokens))
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"verification statuses: {sorted(set(statuses))}")
    print(f"  {ACCOUNTS} accounts registered in {registered:.1f} s, verified in "
          f"{time.time() - t0 - registered:.1f} s", flush=True)
    return {"accounts": ACCOUNTS, "register_s": round(registered, 2)}


def login_pairs(port, n):
    """n token pairs from n different accounts (one login each, from its own address)."""
    def one(i):
        status, body = call(port, "POST", "/v1/auth/login",
                            {"email": email(i), "password": PASSWORD}, ip=f"172.17.{i // 256}.{i % 256}")
        if status != 200:
            raise RuntimeError(f"login {email(i)}: {status} {body}")
        return body["data"] if "data" in body else body
    return parallel(one, range(n))


def raw_argon2(build):
    """BM_Argon2idRaw on two threads (default parameters: 19456 KiB, t=2, p=1): (hashes/s,
    CPU ms per hash). The CPU is Google Benchmark's own cpu_time of the measured run (both
    threads' CPU per iteration); the process's rusage would also count the calibration runs
    Google Benchmark makes first (that inflated it by ~1.4x before)."""
    out = subprocess.run([os.path.join(build, "bench", "ledger_bench"),
                          "--benchmark_filter=^BM_Argon2idRaw/real_time/threads:2$",
                          f"--benchmark_min_time={RAW_ARGON_MIN_TIME}",
                          "--benchmark_format=json"], check=True, capture_output=True,
                         text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    cpu_ms_per_hash = b["cpu_time"] * to_ms
    print(f"  raw Argon2id, 2 threads: {b['items_per_second']:.1f} hashes/s, "
          f"{cpu_ms_per_hash:.1f} CPU ms per hash ({b['iterations']} hashes)", flush=True)
    return b["items_per_second"], cpu_ms_per_hash


def wrk_identity(url, seconds, mode, lines, tmp, connections=CONNECTIONS):
    path = os.path.join(tmp, f"{mode}.lines")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    env = {"WRK_MODE": mode, "WRK_LINES_FILE": path, "WRK_THREADS": str(WRK_THREADS),
           "WRK_BENCH_DIR": os.path.join(ROOT, "bench")}
    return wrk(url, seconds, script="wrk_identity.lua", env=env, connections=connections)


def wrk_once(url, lines, tmp, name, ip_base, expect=200, connections=CONNECTIONS, timeout=600,
             mode="once"):
    """POSTs each "PATH JSON" line once (wrk_identity.lua, mode once), at `connections`; ends
    wrk with SIGINT once every thread has all its answers. Adds "ok" (2xx answers),
    "span_s" (first request to last answer, from the Lua) and "ok_per_s" = ok / span_s."""
    path = os.path.join(tmp, f"{name}.lines")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    done_dir = os.path.join(tmp, f"{name}.done")
    os.mkdir(done_dir)
    env = dict(os.environ, WRK_MODE=mode, WRK_LINES_FILE=path, WRK_THREADS=str(WRK_THREADS),
               WRK_BENCH_DIR=os.path.join(ROOT, "bench"), WRK_DONE_DIR=done_dir,
               WRK_IP_BASE=str(ip_base), WRK_EXPECT=str(expect), WRK_BODY_FILE="")
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{timeout}s", "--latency",
           "-s", os.path.join(ROOT, "bench", "wrk_identity.lua"), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    while proc.poll() is None and len(os.listdir(done_dir)) < WRK_THREADS:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    lines_out = out.splitlines()
    bench = next((l for l in lines_out if l.startswith("BENCH_JSON ")), None)
    if bench is None:
        raise RuntimeError(f"wrk {name}: no summary: {out[-2000:]} {err[-2000:]}")
    r = json.loads(bench[len("BENCH_JSON "):])
    status = next(l for l in lines_out if l.startswith("BENCH_STATUS "))
    r.update(json.loads(status[len("BENCH_STATUS "):]))
    r["lines"] = len(lines)
    r["ok"] = sum(n for s, n in r["statuses"].items() if s.startswith("2"))
    r["span_s"] = r["span_us"] / 1e6
    r["ok_per_s"] = r["ok"] / r["span_s"] if r["span_s"] > 0 else 0.0
    socket_errors = r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
    print(f"  wrk {name}: {r['ok']} of {len(lines)} ok in {r['span_s']:.2f} s = "
          f"{r['ok_per_s']:,.0f}/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 "
          f"{r['p99_us'] / 1000:.2f} ms, statuses {r['statuses']}, socket errors {socket_errors}"
          + (f", first refusal {r['first_refusal']}" if r.get("first_refusal") else "")
          + ("" if r["answered"] == len(lines) else f", ONLY {r['answered']} ANSWERED"),
          flush=True)
    return r


def main(build, out_path, seconds=10):
    results = {"nproc": os.cpu_count(), "seconds": seconds, "connections": CONNECTIONS,
               "login_connections": LOGIN_CONNECTIONS, "wrk_threads": WRK_THREADS,
               "loadavg_start": os.getloadavg()}
    tmp = tempfile.mkdtemp(prefix="sechex-identity-bench-", dir=os.environ.get("TMPDIR"))
    try:
        data = os.path.join(tmp, "data")
        ctl = os.path.join(build, "ops", "ledgerctl")
        subprocess.run([ctl, "--data-dir", data, "init"], check=True, capture_output=True)

        raw, raw_port = start([os.path.join(build, "bench", "raw_http_server")],
                              os.path.join(tmp, "raw.log"))
        try:
            print("reference: bare Beast server", flush=True)
            results["raw_healthz"] = wrk(f"http://127.0.0.1:{raw_port}/healthz", seconds)
        finally:
            stop(raw)

        ledgerd, port = start([os.path.join(build, "bin", "ledgerd"), "--data-dir", data,
                               "--listen", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1"],
                              os.path.join(tmp, "ledgerd.log"))
        try:
            wait_ready(port)
            print("ledgerd", flush=True)
            results["setup"] = setup_accounts(port, data)
            results["quiet_wait_s"] = wait_quiet(ledgerd.pid)

            # Logins between two raw-hash measurements, ledgerd idle during both.
            raw_before = raw_argon2(build)
            hz = os.sysconf("SC_CLK_TCK")
            cpu0 = cpu_ticks(ledgerd.pid)
            login = wrk_identity(f"http://127.0.0.1:{port}/v1/auth/login", seconds, "login",
                                 [f"{email(i)} {PASSWORD}" for i in range(ACCOUNTS)], tmp,
                                 connections=LOGIN_CONNECTIONS)
            login["ledgerd_cpu_s"] = (cpu_ticks(ledgerd.pid) - cpu0) / hz
            wait_quiet(ledgerd.pid)
            raw_after = raw_argon2(build)
            login["logins_per_s"] = login["ok_rps"]
            login["ledgerd_cpu_ms_per_login"] = (
                1000 * login["ledgerd_cpu_s"] / max(1, login["requests"] - login["errors_status"]))
            results["login"] = login
            results["raw_argon2_2t"] = {
                "before": raw_before[0], "after": raw_after[0],
                "mean": (raw_before[0] + raw_after[0]) / 2,
                "cpu_ms_per_hash": (raw_before[1] + raw_after[1]) / 2}

            # Refresh: two pairs per connection (see wrk_identity.lua), each token used once,
            # rotated by the Lua.
            pairs = login_pairs(port, 2 * CONNECTIONS)
            results["quiet_wait_refresh_s"] = wait_quiet(ledgerd.pid)
            results["refresh"] = wrk_identity(f"http://127.0.0.1:{port}/v1/auth/refresh",
                                              seconds, "refresh",
                                              [p["refreshToken"] for p in pairs], tmp)
            results["quiet_wait_me_s"] = wait_quiet(ledgerd.pid)
            results["me"] = wrk_identity(f"http://127.0.0.1:{port}/v1/me", seconds, "me",
                                         [p["accessToken"] for p in pairs], tmp)
        finally:
            stop(ledgerd)
        otp_verify_rounds(build, tmp, results)
    finally:
        if os.environ.get("SECHEX_KEEP_TMP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10)
