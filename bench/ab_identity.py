"""A/B of GET /v1/me (or POST /v1/auth/refresh) between two release builds, interleaved so that
both see the same machine: for each round and each build, a ledgerd on a fresh data dir, 200
verified accounts, 128 logins, then wrk with their access tokens on /v1/me, or their refresh
tokens (each used once, rotated) on /v1/auth/refresh (bench/wrk_identity.lua, 64 connections).
Prints req/s per round and the median per build, and their ratio.
Usage: ab_identity.py BUILD_A BUILD_B [ROUNDS] [SECONDS] [me|refresh]
(BUILD_A e.g. an older checkout's build/release)"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import CONNECTIONS, start, stop, wait_quiet, wait_ready  # noqa: E402
from identity_bench import login_pairs, setup_accounts, wrk_identity  # noqa: E402


def one(build, seconds, route):
    tmp = tempfile.mkdtemp(prefix="sechex-ab-me-", dir=os.environ.get("TMPDIR"))
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([os.path.join(build, "ops", "ledgerctl"), "--data-dir", data, "init"],
                       check=True, capture_output=True)
        ledgerd, port = start([os.path.join(build, "bin", "ledgerd"), "--data-dir", data,
                               "--listen", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1"],
                              os.path.join(tmp, "ledgerd.log"))
        try:
            wait_ready(port)
            setup_accounts(port, data)
            pairs = login_pairs(port, 2 * CONNECTIONS)
            wait_quiet(ledgerd.pid)
            if route == "refresh":
                return wrk_identity(f"http://127.0.0.1:{port}/v1/auth/refresh", seconds,
                                    "refresh", [p["refreshToken"] for p in pairs], tmp)["ok_rps"]
            return wrk_identity(f"http://127.0.0.1:{port}/v1/me", seconds, "me",
                                [p["accessToken"] for p in pairs], tmp)["ok_rps"]
        finally:
            stop(ledgerd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(a, b, rounds=3, seconds=5, route="me"):
    got = {a: [], b: []}
    for r in range(rounds):
        for build in ((a, b) if r % 2 == 0 else (b, a)):
            got[build].append(one(build, seconds, route))
            print(f"round {r + 1} {build}: {got[build][-1]:,.0f} req/s", flush=True)
    ma, mb = statistics.median(got[a]), statistics.median(got[b])
    print(f"median A {ma:,.0f} req/s, B {mb:,.0f} req/s, B/A {mb / ma:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(x) for x in sys.argv[3:5]),
         *sys.argv[5:6])
