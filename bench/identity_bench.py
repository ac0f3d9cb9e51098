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
    both at 64 connections against the bare Beast server (bench/raw_http_server.cc), as the other
    HTTP rows.
Writes one JSON file (argv[2]) that bench/ratios.py reads (--identity).
Usage: identity_bench.py BUILD_DIR OUT_JSON [SECONDS]"""
import concurrent.futures
import json
import os
import re
import resource
import shutil
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
TOKEN_RE = re.compile(r"\?token=([A-Za-z0-9_-]+)")
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


def verify_tokens(outbox, wanted, timeout=120.0):
    """email -> verification token, from the .eml files the mail worker writes."""
    found = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name in os.listdir(outbox) if os.path.isdir(outbox) else []:
            if not name.endswith(".eml"):
                continue
            with open(os.path.join(outbox, name), errors="replace") as f:
                text = f.read().replace("=\r\n", "").replace("=\n", "")  # QP soft breaks
            to, tok = TO_RE.search(text), TOKEN_RE.search(text)
            if to and tok:
                found[to.group(1).lower()] = tok.group(1)
        if wanted <= found.keys():
            return found
        time.sleep(0.2)
    raise RuntimeError(f"only {len(found)} of {len(wanted)} verification mails arrived")


def setup_accounts(port, data):
    t0 = time.time()
    statuses = parallel(lambda i: call(port, "POST", "/v1/auth/register",
                                       {"email": email(i), "password": PASSWORD, "consent": True},
                                       ip=f"172.16.{i // 256}.{i % 256}")[0], range(ACCOUNTS))
    if any(s != 201 for s in statuses):
        raise RuntimeError(f"registration statuses: {sorted(set(statuses))}")
    registered = time.time() - t0
    tokens = verify_tokens(os.path.join(data, "outbox"), {email(i) for i in range(ACCOUNTS)})
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
    CPU ms per hash of the benchmark process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([os.path.join(build, "bench", "ledger_bench"),
                          "--benchmark_filter=^BM_Argon2idRaw/real_time/threads:2$",
                          f"--benchmark_min_time={RAW_ARGON_MIN_TIME}",
                          "--benchmark_format=json"], check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    b = json.loads(out)["benchmarks"][0]
    cpu_ms = 1000 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    cpu_ms_per_hash = cpu_ms / b["iterations"]
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

        ledgerd, port = start([os.path.join(build, "api", "ledgerd"), "--data-dir", data,
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
