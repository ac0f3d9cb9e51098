"""Exclusive mode under load (issue 14, 000 NFR-02/NFR-03): starts a release ledgerd on a
temporary data dir (--trusted-proxy 127.0.0.1, cheapest Argon2id parameters so that thousands
of accounts take seconds, --allow-self-attestation so that software keys can enrol), then
  - registers and verifies SESSIONS accounts, logs each in, grants it premium, and activates one
    exclusive session per account with its own P-256 key (packed self attestation, as
    `ledgerctl device attest` makes it): SESSIONS distinct devices with live sessions;
  - RSS of ledgerd before and after the activations (VmRSS): bytes per live session;
  - ROUNDS rounds of: pre-sign LINES proofs (round-robin over the sessions, iat a few seconds
    ahead so none goes stale during the round), then POST /v1/secure/exclusive/validate each
    once with wrk (bench/wrk_identity.lua mode signed) at 64 connections; validations/s = 200s
    over the time from the first request to the last answer; end-to-end p50/p99 from wrk;
    server-side p50/p99 of the token + proof checks from the sechex_exclusive_proof_check_seconds
    histogram (its change over the round, interpolated within buckets);
  - the reference: raw OpenSSL ES256 verifications/s on both cores (ledger_bench
    BM_RawEs256Verify threads:2), right before and right after the rounds;
  - the ceiling: the last round's requests sent the same way to the bare Beast server
    (raw_http_server, a fixed 200), whose rate t with the raw verify rate v bounds any
    validation rate on these cores at 1 / (1/t + 1/v) (a request and a verify, nothing else).
Writes one JSON file (argv[2]); prints the table rows.
Usage: exclusive_bench.py BUILD_DIR OUT_JSON [SESSIONS]"""
import base64
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import start, stop, wait_quiet, wait_ready  # noqa: E402
from identity_bench import (TOKEN_RE, call, new_mails, parallel,  # noqa: E402
                            wrk_once)

SESSIONS = 10_000
ROUNDS = 3
LINES = int(os.environ.get("SECHEX_BENCH_EXCLUSIVE_LINES", "15000"))
PASSWORD = "Bench-Tr0ub4dor&3x"
ORIGIN = "https://bench.example"  # --public-url: proofs name it, whatever the port
LEDGERD_ARGS = ["--password-memory-kib", "8", "--password-passes", "1",
                "--allow-self-attestation", "--public-url", ORIGIN,
                *os.environ.get("SECHEX_BENCH_EXCLUSIVE_ARGS", "").split()]
WORKERS = 16


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cbor(value):
    """The CBOR of the few shapes an attestation object needs (ints, text, bytes, maps): enough
    for a bench client; the server parses with libcbor."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | info]) + struct.pack(fmt, n)
        raise ValueError(n)
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def coordinates(key):
    numbers = key.public_key().public_numbers()
    return numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")


def start_body(key, challenge):
    """POST /v1/secure/exclusive/start: packed self attestation, UP and UV set."""
    client_data = json.dumps({"type": "webauthn.create", "challenge": challenge,
                              "origin": ORIGIN}).encode()
    x, y = coordinates(key)
    cose = cbor({1: 2, 3: -7, -1: 1, -2: x, -3: y})
    credential_id = hashlib.sha256(b"\x04" + x + y).digest()
    auth = (hashlib.sha256(b"bench.example").digest() + b"\x45" + b"\0" * 4 + b"\0" * 16
            + struct.pack(">H", len(credential_id)) + credential_id + cose)
    sig = key.sign(auth + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
    obj = cbor({"fmt": "packed", "attStmt": {"alg": -7, "sig": sig}, "authData": auth})
    return {"deviceAttestation": b64url(obj), "clientDataJSON": b64url(client_data)}


def proof(key, jwk_header, token_hash, jti, iat):
    claims = json.dumps({"jti": jti, "htm": "POST",
                         "htu": ORIGIN + "/v1/secure/exclusive/validate", "iat": iat,
                         "ath": token_hash}, separators=(",", ":")).encode()
    signing_input = jwk_header + "." + b64url(claims)
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def histogram(metrics_port):
    """le -> cumulative count of sechex_exclusive_proof_check_seconds."""
    text = subprocess.run(["curl", "-s", f"http://127.0.0.1:{metrics_port}/metrics"],
                          capture_output=True, text=True, check=True).stdout
    out = {}
    for le, n in re.findall(r'sechex_exclusive_proof_check_seconds_bucket\{le="([^"]+)"\} (\d+)',
                            text):
        out[float("inf") if le == "+Inf" else float(le)] = int(n)
    return out


def quantile(before, after, q):
    """The q-quantile of the observations between two scrapes, linear within its bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1]
    if total == 0:
        return None
    rank, lower, below = q * total, 0.0, 0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def raw_es256(build):
    out = subprocess.run([os.path.join(build, "bench", "ledger_bench"),
                          "--benchmark_filter=BM_RawEs256Verify/.*threads:2",
                          "--benchmark_format=json"], capture_output=True, text=True, check=True)
    runs = json.loads(out.stdout)["benchmarks"]
    return runs[0]["items_per_second"]


def main():
    build, out_path = sys.argv[1], sys.argv[2]
    sessions = int(sys.argv[3]) if len(sys.argv) > 3 else SESSIONS
    tmp = tempfile.mkdtemp(prefix="sechex-exclusive-bench-")
    data = os.path.join(tmp, "data")
    ctl = os.path.join(build, "ops", "ledgerctl")
    partitions = os.environ.get("SECHEX_BENCH_EXCLUSIVE_PARTITIONS", "8")
    subprocess.run([ctl, "--data-dir", data, "init", "--partitions", partitions], check=True,
                   capture_output=True)
    log_path = os.path.join(tmp, "ledgerd.log")
    binary = os.environ.get("SECHEX_BENCH_LEDGERD", os.path.join(build, "bin", "ledgerd"))
    ledgerd, port = start([binary, "--data-dir", data,
                           "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--trusted-proxy", "127.0.0.1", *LEDGERD_ARGS], log_path)
    results = {"sessions": sessions, "ledgerd_args": LEDGERD_ARGS, "partitions": int(partitions)}
    try:
        wait_ready(port)
        metrics_port = int(re.search(r"metrics on 127\.0\.0\.1:(\d+)", open(log_path).read())
                           .group(1))
        url = f"http://127.0.0.1:{port}"
        emails = [f"x-{i:05d}@example.com" for i in range(sessions)]
        t0 = time.time()
        lines = ["/v1/auth/register " + json.dumps({"email": e, "password": PASSWORD,
                                                    "consent": True}) for e in emails]
        wrk_once(url, lines, tmp, "register", 20, 201)
        tokens = new_mails(os.path.join(data, "outbox"), set(), TOKEN_RE, set(emails),
                           "verification")
        wrk_once(url, ["/v1/auth/verify-email " + json.dumps({"token": tokens[e]})
                       for e in emails], tmp, "verify-email", 22)

        def login(i):
            status, body = call(port, "POST", "/v1/auth/login",
                                {"email": emails[i], "password": PASSWORD},
                                ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}")
            if status != 200:
                raise RuntimeError(f"login {status}: {body}")
            return body["data"]["accessToken"]
        access = parallel(login, range(sessions), WORKERS)
        admin = subprocess.run([ctl, "--data-dir", data, "tokens", "issue", "--role", "admin"],
                               check=True, capture_output=True, text=True).stdout.strip()

        def user_of(token):
            payload = token.split(".")[1]
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
        granted = parallel(lambda t: call(port, "POST", f"/v1/admin/users/{user_of(t)}/roles",
                                          {"grant": ["premium"]}, token=admin)[0], access, WORKERS)
        if set(granted) != {200}:
            raise RuntimeError(f"grant statuses {set(granted)}")
        setup_s = time.time() - t0
        print(f"  {sessions} premium accounts signed in, in {setup_s:.1f} s", flush=True)

        wait_quiet(ledgerd.pid)
        rss_before = rss_bytes(ledgerd.pid)
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(sessions)]

        def activate(i):
            status, body = call(port, "POST", "/v1/secure/exclusive/challenge", token=access[i])
            if status != 200:
                raise RuntimeError(f"challenge {status}: {body}")
            status, body = call(port, "POST", "/v1/secure/exclusive/start",
                                start_body(keys[i], body["data"]["challenge"]), token=access[i])
            if status != 201:
                raise RuntimeError(f"start {status}: {body}")
            return body["data"]["sessionToken"]
        t0 = time.time()
        session_tokens = parallel(activate, range(sessions), WORKERS)
        activation_s = time.time() - t0
        wait_quiet(ledgerd.pid)
        rss_after = rss_bytes(ledgerd.pid)
        results.update(activation_s=activation_s, rss_before=rss_before, rss_after=rss_after,
                       rss_per_session=(rss_after - rss_before) / sessions)
        print(f"  {sessions} exclusive sessions activated in {activation_s:.1f} s; RSS "
              f"{rss_before / 1e6:.1f} -> {rss_after / 1e6:.1f} MB, "
              f"{results['rss_per_session']:,.0f} B/session", flush=True)

        headers = []
        for key in keys:
            x, y = coordinates(key)
            header = {"typ": "dpop+jwt", "alg": "ES256",
                      "jwk": {"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}}
            headers.append(b64url(json.dumps(header, separators=(",", ":")).encode()))
        token_hashes = [b64url(hashlib.sha256(t.encode()).digest()) for t in session_tokens]

        results["raw_es256_before"] = raw_es256(build)
        rounds = []
        for n in range(ROUNDS):
            wait_quiet(ledgerd.pid)
            t0 = time.time()
            iat = int(t0) + 4  # within the 5 s of allowed skew; 30 s of life from there
            lines = []
            for k in range(LINES):
                i = (n * LINES + k) % sessions
                lines.append(session_tokens[i] + " " +
                             proof(keys[i], headers[i], token_hashes[i], f"b{n}-{k}", iat))
            signed_s = time.time() - t0
            before = histogram(metrics_port)
            r = wrk_once(url, lines, tmp, f"validate-{n}", 30 + n, mode="signed")
            after = histogram(metrics_port)
            r["ok"] = r["statuses"].get("200", 0)
            r["ok_per_s"] = r["ok"] / r["span_s"] if r["span_s"] > 0 else 0.0
            r["signing_s"] = signed_s
            r["server_p50_s"] = quantile(before, after, 0.50)
            r["server_p99_s"] = quantile(before, after, 0.99)
            print(f"  round {n}: {r['ok_per_s']:,.0f} validations/s, server-side p50 "
                  f"{r['server_p50_s'] * 1e3:.3f} ms p99 {r['server_p99_s'] * 1e3:.3f} ms",
                  flush=True)
            if time.time() - t0 > 30:
                print("  WARNING: the round outlived its proofs' 30 s (iat_too_old)", flush=True)
            rounds.append(r)
        results["raw_es256_after"] = raw_es256(build)
        results["rounds"] = rounds
        # The same requests (the last round's lines, four times over so that the run is not
        # mostly ramp-up) against the bare Beast server: what the transport and wrk alone cost
        # on these cores, for the ceiling below.
        raw_server, raw_port = start([os.path.join(build, "bench", "raw_http_server")],
                                     os.path.join(tmp, "raw.log"))
        try:
            results["transport"] = wrk_once(f"http://127.0.0.1:{raw_port}", lines * 4, tmp,
                                             "transport", 40, mode="signed")
        finally:
            stop(raw_server)
        by_rate = sorted(rounds, key=lambda r: r["ok_per_s"])
        median = by_rate[len(by_rate) // 2]
        raw = (results["raw_es256_before"] + results["raw_es256_after"]) / 2
        results["median"] = {"ok_per_s": median["ok_per_s"], "p50_us": median["p50_us"],
                             "p99_us": median["p99_us"],
                             "server_p50_s": median["server_p50_s"],
                             "server_p99_s": median["server_p99_s"], "raw_es256": raw,
                             "ratio": median["ok_per_s"] / raw}
        m = results["median"]
        # A validation costs at least the bare server's request (with wrk's share) plus one
        # ES256 verify, both on the same 2 cores: its rate cannot pass 1 / (1/t + 1/v).
        transport = results["transport"]["ok_per_s"]
        ceiling = 1 / (1 / transport + 1 / raw)
        results["ceiling"] = {"transport_per_s": transport, "per_s": ceiling,
                              "ratio": ceiling / raw}
        print(f"| exclusive validations, {sessions:,} live sessions (64 conns, pre-signed proofs, "
              f"median of {ROUNDS} rounds of {LINES:,}) | {m['ok_per_s']:,.0f}/s, end-to-end p50 "
              f"{m['p50_us'] / 1e3:.2f} ms p99 {m['p99_us'] / 1e3:.2f} ms; token + proof checks "
              f"p50 {m['server_p50_s'] * 1e3:.3f} ms p99 {m['server_p99_s'] * 1e3:.3f} ms | raw "
              f"OpenSSL ES256 verify, 2 threads {raw:,.0f}/s | {m['ratio']:.2f}x raw |")
        print(f"| ceiling: the same requests on the bare Beast server ({transport:,.0f}/s) plus one "
              f"ES256 verify each, nothing else | {ceiling:,.0f}/s | raw OpenSSL ES256 verify, 2 "
              f"threads {raw:,.0f}/s | {ceiling / raw:.2f}x raw |")
        print(f"| RSS per live exclusive session ({sessions:,}) | {rss_before / 1e6:.1f} -> "
              f"{rss_after / 1e6:.1f} MB, {results['rss_per_session']:,.0f} B/session | | |")
    finally:
        stop(ledgerd)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
