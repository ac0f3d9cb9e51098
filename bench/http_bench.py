"""HTTP part of bench/run: starts a release ledgerd on a temporary data dir and the bare Beast
reference server (bench/raw_http_server.cc), then measures, on this same machine:
  - RSS with N idle keep-alive connections (bench/idle_conns.cc), ledgerd and reference;
  - wrk at 64 connections / 2 threads: GET /healthz on the reference and on ledgerd,
    POST /v1/events (batches of 100) and GET /v1/admin/audit?limit=1 with an admin token.
Writes one JSON file (argv[2]) that bench/ratios.py reads.
Usage: http_bench.py BUILD_DIR OUT_JSON [SECONDS]"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECTIONS = 64
WRK_THREADS = 2
IDLE_CONNECTIONS = 10_000
BATCH = 100


def wait_for_port(proc, log_path, timeout=30.0, marker="serving on 127.0.0.1:"):
    """The port from the "serving on 127.0.0.1:PORT" line (or `marker`) the server writes on
    stderr."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {open(log_path).read()[-2000:]}")
        with open(log_path) as f:
            for line in f:
                if marker in line:
                    return int(line.split(marker)[1].split()[0])
        time.sleep(0.05)
    raise RuntimeError("server did not report its port")


def start(cmd, log_path, env=None, marker="serving on 127.0.0.1:"):
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    return proc, wait_for_port(proc, log_path, marker=marker)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(port, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("ledgerd never became ready")


def wrk(url, seconds, token=None, body_file=None, script="wrk_report.lua", env=None,
        connections=CONNECTIONS):
    """One wrk run with a bench/ Lua script that prints the BENCH_JSON line (wrk_report.lua, or
    wrk_identity.lua with its settings in `env`)."""
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", os.path.join(ROOT, "bench", script)]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    cmd.append(url)
    env = dict(os.environ, WRK_BODY_FILE=body_file or "", **(env or {}))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH_JSON "))
    r = json.loads(line[len("BENCH_JSON "):])
    status = next((l for l in out.splitlines() if l.startswith("BENCH_STATUS ")), None)
    if status:  # wrk_identity.lua: responses by status, the first refusal's body
        r.update(json.loads(status[len("BENCH_STATUS "):]))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["ok_rps"] = (r["requests"] - r["errors_status"]) / (r["duration_us"] / 1e6)
    print(f"  wrk {url}: {r['rps']:,.0f} req/s, p99 {r['p99_us'] / 1000:.2f} ms, "
          f"status errors {r['errors_status']}, socket errors "
          f"{r['errors_connect'] + r['errors_read'] + r['errors_write'] + r['errors_timeout']}"
          + (f", statuses {r['statuses']}" if "statuses" in r else "")
          + (f", first refusal {r['first_refusal']}" if r.get("first_refusal") else ""),
          flush=True)
    return r


def idle(build, port, pid):
    out = subprocess.run([os.path.join(build, "bench", "idle_conns"), str(port), str(pid),
                          str(IDLE_CONNECTIONS)], capture_output=True, text=True)
    r = json.loads(out.stdout)
    print(f"  idle: {r}", flush=True)
    return r


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_quiet(pid, timeout=60.0):
    """Waits until the process uses under 5% of a CPU for a second (RocksDB flushes and
    compactions after the ingest run would otherwise eat into the next measurement); returns
    the seconds waited."""
    hz = os.sysconf("SC_CLK_TCK")
    start = time.time()
    while time.time() - start < timeout:
        before = cpu_ticks(pid)
        time.sleep(1.0)
        if (cpu_ticks(pid) - before) / hz < 0.05:
            break
    return round(time.time() - start, 1)


def ingest_body(path):
    events = [{"subject": f"bench-subject-{i}", "type": "order.created",
               "payload": {"order": f"o-{i:05d}", "amount": 1000 + i, "currency": "EUR",
                           "sku": "SKU-" + "x" * 40}} for i in range(BATCH)]
    with open(path, "w") as f:
        json.dump({"events": events}, f, separators=(",", ":"))


def main(build, out_path, seconds=10):
    # 10k idle connections need more than the usual 1024 descriptors, in the servers as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {"nproc": os.cpu_count(), "seconds": seconds, "connections": CONNECTIONS,
               "wrk_threads": WRK_THREADS, "batch": BATCH}
    tmp = tempfile.mkdtemp(prefix="sechex-http-bench-", dir=os.environ.get("TMPDIR"))
    try:
        data = os.path.join(tmp, "data")
        ctl = os.path.join(build, "ops", "ledgerctl")
        subprocess.run([ctl, "--data-dir", data, "init"], check=True, capture_output=True)

        # The reference first: a bare Beast server, same threads as ledgerd's default.
        raw, raw_port = start([os.path.join(build, "bench", "raw_http_server")],
                              os.path.join(tmp, "raw.log"))
        try:
            print("reference: bare Beast server", flush=True)
            results["raw_idle"] = idle(build, raw_port, raw.pid)
            results["raw_healthz"] = wrk(f"http://127.0.0.1:{raw_port}/healthz", seconds)
        finally:
            stop(raw)

        # ledgerd, fresh, with an idle timeout long enough for the idle-connection test.
        ledgerd, port = start([os.path.join(build, "bin", "ledgerd"), "--data-dir", data,
                               "--listen", "127.0.0.1:0", "--idle-timeout", "300"],
                              os.path.join(tmp, "ledgerd.log"))
        try:
            wait_ready(port)
            token = subprocess.run([ctl, "--data-dir", data, "tokens", "issue", "--role",
                                    "admin", "--ttl", "3600"], check=True, capture_output=True,
                                   text=True).stdout.strip()
            print("ledgerd", flush=True)
            results["idle"] = idle(build, port, ledgerd.pid)
            results["healthz"] = wrk(f"http://127.0.0.1:{port}/healthz", seconds)
            body = os.path.join(tmp, "ingest.json")
            ingest_body(body)
            results["ingest"] = wrk(f"http://127.0.0.1:{port}/v1/events", seconds, token, body)
            results["ingest"]["events_per_s"] = results["ingest"]["ok_rps"] * BATCH
            results["quiet_wait_s"] = wait_quiet(ledgerd.pid)
            print(f"  waited {results['quiet_wait_s']} s for background work to settle", flush=True)
            results["audit"] = wrk(f"http://127.0.0.1:{port}/v1/admin/audit?limit=1", seconds,
                                   token)
            with open(f"/proc/{ledgerd.pid}/status") as f:
                rss = next(l for l in f if l.startswith("VmRSS:"))
            results["rss_after_load_kb"] = int(rss.split()[1])
        finally:
            stop(ledgerd)
    finally:
        if os.environ.get("SECHEX_KEEP_TMP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10)
