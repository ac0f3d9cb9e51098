"""Sechex beside Keycloak (issue 17, bench/peers): the same machine, the same run, the same load
generator (wrk, bench/peers/wrk_peers.lua) at the same connections for both.

Sides:
  ours       a release ledgerd (build/release) on a temp data dir, at its defaults (Argon2id
             m=19456 KiB, t=2, p=1: its default hashing) with --trusted-proxy 127.0.0.1; USERS
             accounts registered and verified through the outbox (bench/identity_bench.py's setup).
  keycloak   Keycloak in dev mode (bench/peers/keycloak/start: kc.sh start-dev, embedded H2, Temurin
             25), realm "bench" imported with USERS users (verified emails, plain passwords that
             Keycloak hashes on import), the password policy hashAlgorithm(argon2) and the argon2
             provider at m=19456 KiB, t=2, p=1, type id: the same cost as ours.
  keycloak-default  the same realm without a password policy and without SPI options: Keycloak's
             own default hashing (reported separately; --no-default leaves it out).
Every server runs its whole run; the ones not measured sit idle (their CPU during each
measurement is recorded as "bystander_cpu_s").

Measured, per round (the order of the sides rotates each round), each wrk run SECONDS long:
  login    password logins/s (ours POST /v1/auth/login, JSON; Keycloak the password grant on the
           token endpoint, client_secret_post, no openid scope, so no ID token), users round-robin,
           LOGIN_CONNECTIONS connections; only 200s count. Server CPU per login from /proc.
  refresh  refresh/s (ours POST /v1/auth/refresh; Keycloak the refresh_token grant), each refresh
           token used once, the rotated one put back (2 x CONNECTIONS fresh logins first).
  read     an authenticated read (ours GET /v1/me; Keycloak GET userinfo, whose tokens come from
           logins with scope=openid, which userinfo requires), CONNECTIONS connections,
           2 x CONNECTIONS access tokens round-robin.
  p50/p99 from wrk's histogram of each run. Each server waits until it is quiet (< 5% of a CPU
  for a second, at most 30 s) before each run. A WARMUP-second run of each kind first, unmeasured
  (the JVM compiles its hot paths during the first seconds; ours gets the same). Keycloak's
  brute-force detection is off during the load (its default) unless --kc-brute-force on.
Once:
  start-up to ready: ours from the spawn of ledgerd to GET /readyz 200; Keycloak from the spawn of
           kc.sh to GET /realms/bench/.well-known/openid-configuration 200. Both a first start on a
           fresh store (ours: after `ledgerctl init`, no accounts; Keycloak: a fresh copy of the
           distribution, so dev mode's re-augmentation, the master realm, the import and the
           hashing of USERS passwords) and a restart on the populated store (USERS users), which
           is the row of the table.
  RSS after load: VmRSS of ledgerd and of Keycloak's java process after the last round.
  brute force: BRUTE_PARALLEL parallel wrong-password logins for one user (each on its own
           connection, released together), then the right password. Ours locks after 5
           consecutive failures (30 minutes); Keycloak with brute-force detection switched on
           through the admin API (failureFactor 5, its other settings at their defaults, among
           them the quick-login check). Evaluated = the password was checked and found wrong,
           against refused without checking it: ours from sechex_login_failures_total{reason}
           (wrong_password vs locked; the answers are 401 invalid_credentials, and 423
           account_locked for the attempt that locks and all after it), Keycloak from its
           LOGIN_ERROR events (invalid_user_credentials vs user_temporarily_disabled), because it
           answers both alike (400 invalid_grant "Invalid user credentials"). Then the failures
           on record and the lock state (Keycloak: the admin API's attack-detection status), and
           whether the right password works right after.
  Keycloak's stored hashes are checked through the admin API (the credential's algorithm and
  parameters) before and after the load (same createdDate: no rehash on login).

Writes OUT_JSON and OUT_JSON with .md (the tables); prints the tables.
Usage: peers_bench.py BUILD_DIR OUT_JSON [--users N] [--seconds S] [--rounds R] [--warmup W]
                      [--kc-brute-force off|on] [--no-default] [--keep-tmp]
Defaults: 1,000 users, 3 rounds of 15 s, 10 s warm-up. Needs wrk, a release build (ledgerd,
ledgerctl), Temurin 25 at /usr/lib/jvm/temurin-25-jdk-amd64 (KEYCLOAK_JAVA_HOME) and Maven
Central for the first bench/peers/keycloak/fetch.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "peers", "keycloak"))
import identity_bench as ib  # noqa: E402
from http_bench import ROOT, WRK_THREADS, cpu_ticks, wait_quiet  # noqa: E402
import realm as kc_realm  # noqa: E402

LOGIN_CONNECTIONS = ib.LOGIN_CONNECTIONS  # 8, as bench/identity_bench.py (see there why)
CONNECTIONS = 64
BRUTE_PARALLEL = 50
PASSWORD = ib.PASSWORD
assert PASSWORD == kc_realm.PASSWORD
BRUTE_EMAIL = kc_realm.BRUTE_USER
WRONG_PASSWORD = "Wrong-Passw0rd!x"
QUIET_TIMEOUT = 30.0
HZ = os.sysconf("SC_CLK_TCK")
KC_START = os.path.join(HERE, "peers", "keycloak", "start")
LUA = os.path.join(HERE, "peers", "wrk_peers.lua")


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def call_http(method, url, body=None, headers=None, timeout=60):
    """(status, bytes)."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parallel(fn, args, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, args))


class IpPool:
    """Addresses for X-Forwarded-For, never twice in a run (ledgerd counts login attempts per
    address: 5 per 15 minutes)."""
    def __init__(self):
        self.n, self.lock = 0, threading.Lock()
        self.wrk_base = 20  # first octet for wrk runs: two per run (one per wrk thread)

    def next(self):
        with self.lock:
            self.n += 1
            n = self.n
        return f"100.{64 + n // 65536}.{(n // 256) % 256}.{n % 256}"

    def next_wrk_base(self):
        with self.lock:
            base = self.wrk_base
            self.wrk_base += WRK_THREADS
        if base + WRK_THREADS > 99:
            raise RuntimeError("out of X-Forwarded-For ranges for wrk runs")
        return base


IPS = IpPool()


# ---------------------------------------------------------------- ours

class Ours:
    name = "ours"
    label = "Sechex ledgerd"

    def __init__(self, build, tmp, users):
        self.build, self.tmp, self.users = build, tmp, users
        self.data = os.path.join(tmp, "ledgerd-data")
        self.proc = None
        self.port = self.metrics_port = None
        self.info = {"hashing": "Argon2id m=19456 KiB, t=2, p=1 (ledgerd defaults: "
                                "--password-memory-kib 19456 --password-passes 2; one lane)",
                     "args": ["--trusted-proxy", "127.0.0.1"]}

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        log_path = os.path.join(self.tmp, "ledgerd.log")
        logf = open(log_path, "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [os.path.join(self.build, "bin", "ledgerd"), "--data-dir", self.data,
             "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--trusted-proxy", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=logf)
        self.port = None
        offset = os.path.getsize(log_path)
        while time.monotonic() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ledgerd exited: {open(log_path).read()[-2000:]}")
            if self.port is None:
                with open(log_path) as f:
                    f.seek(offset)
                    text = f.read()
                m = re.search(r"serving on 127\.0\.0\.1:(\d+)", text)
                mm = re.search(r"metrics on 127\.0\.0\.1:(\d+)", text)
                if m and mm:
                    self.port, self.metrics_port = int(m.group(1)), int(mm.group(1))
            if self.port is not None:
                try:
                    status, _ = call_http("GET", f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                    if status == 200:
                        return round(time.monotonic() - t0, 3)
                except OSError:
                    pass
            time.sleep(0.01)
        raise RuntimeError("ledgerd not ready in 120 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def setup(self):
        """First start on a fresh store, USERS accounts + the brute-force one, restart."""
        subprocess.run([os.path.join(self.build, "ops", "ledgerctl"), "--data-dir", self.data,
                        "init"], check=True, capture_output=True)
        self.info["first_start_s"] = self.start()
        log(f"ours: first start (fresh store) ready in {self.info['first_start_s']:.2f} s")
        ib.ACCOUNTS = self.users
        t0 = time.monotonic()
        self.info["setup"] = ib.setup_accounts(self.port, self.data)
        status, body = ib.call(self.port, "POST", "/v1/auth/register",
                               {"email": BRUTE_EMAIL, "password": PASSWORD, "consent": True},
                               ip=IPS.next())
        if status != 201:
            raise RuntimeError(f"register {BRUTE_EMAIL}: {status} {body}")
        token = ib.new_mails(os.path.join(self.data, "outbox"), set(), ib.TOKEN_RE,
                             {BRUTE_EMAIL}, "verification", timeout=60.0)[BRUTE_EMAIL]
        status, body = ib.call(self.port, "POST", "/v1/auth/verify-email", {"token": token})
        if status != 200:
            raise RuntimeError(f"verify {BRUTE_EMAIL}: {status} {body}")
        self.info["setup_s"] = round(time.monotonic() - t0, 1)
        self.stop()
        self.info["restart_s"] = self.start()
        self.info["rss_ready_kib"] = rss_kib(self.pid)
        log(f"ours: restart with {self.users + 1} accounts ready in {self.info['restart_s']:.2f} s,"
            f" RSS {self.info['rss_ready_kib'] / 1024:.1f} MiB")

    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def login_spec(self):
        return {"path": "/v1/auth/login", "content_type": "application/json",
                "lines": [json.dumps({"email": ib.email(i), "password": PASSWORD},
                                     separators=(",", ":")) for i in range(self.users)]}

    def login(self, i, for_read=False):
        """One login of user i from a new address: (access token, refresh token)."""
        status, body = ib.call(self.port, "POST", "/v1/auth/login",
                               {"email": ib.email(i), "password": PASSWORD}, ip=IPS.next())
        if status != 200:
            raise RuntimeError(f"ours login {ib.email(i)}: {status} {body}")
        d = body["data"] if "data" in body else body
        return d["accessToken"], d["refreshToken"]

    def refresh_spec(self):
        return {"path": "/v1/auth/refresh", "content_type": "application/json",
                "body": '{"refreshToken":"{token}"}', "field": "refreshToken"}

    def read_path(self):
        return "/v1/me"

    def login_failures(self):
        status, body = call_http("GET", f"http://127.0.0.1:{self.metrics_port}/metrics")
        out = {}
        for m in re.finditer(r'^sechex_login_failures_total\{reason="(\w+)"\}\s+([0-9.e+]+)',
                             body.decode(), re.M):
            out[m.group(1)] = float(m.group(2))
        return out

    def brute_force(self):
        before = self.login_failures()
        headers_of = lambda: {"Content-Type": "application/json", "X-Forwarded-For": IPS.next()}
        body = json.dumps({"email": BRUTE_EMAIL, "password": WRONG_PASSWORD}).encode()
        answers, elapsed = burst(self.port, "/v1/auth/login", body, headers_of, BRUTE_PARALLEL)
        codes = {}
        for status, text, _ in answers:
            code = _json_field(text, "code") or _json_field(text, "error") or ""
            codes[f"{status} {code}".strip()] = codes.get(f"{status} {code}".strip(), 0) + 1
        time.sleep(0.5)  # the metrics counters follow the appends
        after_burst = self.login_failures()
        status, text = call_http(
            "POST", f"http://127.0.0.1:{self.port}/v1/auth/login",
            json.dumps({"email": BRUTE_EMAIL, "password": PASSWORD}).encode(),
            {"Content-Type": "application/json", "X-Forwarded-For": IPS.next()})
        right = f"{status} {_json_field(text, 'code') or ''}".strip()
        delta = {k: after_burst.get(k, 0) - before.get(k, 0) for k in after_burst}
        return {"parallel": BRUTE_PARALLEL, "answers": codes, "burst_s": round(elapsed, 3),
                "evaluated": int(delta.get("wrong_password", 0)),
                "refused_locked": int(delta.get("locked", 0)),
                "metric_deltas": delta,
                "invalid_credentials_answers": sum(n for k, n in codes.items()
                                                   if k.startswith("401")),
                "lock_answers": sum(n for k, n in codes.items() if k.startswith("423")),
                "right_password_after": right, "right_password_works": status == 200,
                "failures_recorded": int(delta.get("wrong_password", 0)),
                "locked_after_burst": status == 423,
                "lock": "5 consecutive failures lock the account for 30 minutes"}


def _json_field(text, field):
    try:
        d = json.loads(text)
    except ValueError:
        return None
    if isinstance(d, dict):
        if isinstance(d.get("error"), dict):
            return d["error"].get(field)
        v = d.get(field)
        return v if isinstance(v, str) else None
    return None


def burst(port, path, body, headers_of, n):
    """n POSTs, each on its own connection opened beforehand, released together by a barrier:
    ([(status, body text, seconds)], seconds from release to the last answer)."""
    barrier = threading.Barrier(n + 1)
    out = [None] * n

    def one(i):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.connect()
            headers = headers_of()
            barrier.wait(timeout=60)
            t0 = time.monotonic()
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            out[i] = (r.status, r.read().decode(errors="replace"), time.monotonic() - t0)
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported as the answer, never a hang
            barrier.abort()
            out[i] = (0, f"{type(e).__name__}: {e}", 0.0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return out, time.monotonic() - t0


# ---------------------------------------------------------------- Keycloak

class Keycloak:
    def __init__(self, tmp, users, hashing, brute_force=False):
        self.tmp, self.users, self.hashing = tmp, users, hashing
        self.brute_force_on = brute_force
        self.name = "keycloak" if hashing == "matched" else "keycloak-default"
        self.label = ("Keycloak, argon2 m=19456 t=2 p=1" if hashing == "matched"
                      else "Keycloak, default hashing")
        self.dir = os.path.join(tmp, self.name)
        self.port, self.mgmt = free_port(), free_port()
        self.proc = None
        self.java = None
        self.admin_token = None
        self.info = {"hashing_requested": hashing}
        self.base = f"http://127.0.0.1:{self.port}"
        self.oidc = f"{self.base}/realms/{kc_realm.REALM}/protocol/openid-connect"
        self.user_ids = {}

    @property
    def pid(self):
        return self.java

    def start(self, fresh=False):
        args = [sys.executable, KC_START, "--dir", self.dir, "--port", str(self.port),
                "--management-port", str(self.mgmt), "--users", str(self.users),
                "--hashing", self.hashing]
        if fresh:
            args.append("--fresh")
        if self.brute_force_on:
            args.append("--brute-force")
        errf = open(os.path.join(self.tmp, f"{self.name}-start.err"), "a")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, text=True)
        for line in self.proc.stdout:
            if line.startswith("KEYCLOAK_READY "):
                ready = json.loads(line[len("KEYCLOAK_READY "):])
                self.java = ready["java_pid"]
                if not self.java:
                    raise RuntimeError(f"{self.name}: no java process under kc.sh")
                self.info["java_home"] = ready["java_home"]
                self.admin_token = None
                return ready
        self.proc.wait()
        raise RuntimeError(f"{self.name}: start exited {self.proc.returncode}; see "
                           f"{self.dir}/keycloak.log and {errf.name}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for p in (self.java, self.proc.pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except (OSError, TypeError):
                        pass
                self.proc.wait()

    def setup(self):
        ready = self.start(fresh=True)
        self.info["first_start_s"] = ready["ready_s"]
        log(f"{self.name}: first start (fresh copy, re-augmentation, import of "
            f"{self.users + 1} users) ready in {ready['ready_s']:.1f} s")
        self.stop()
        ready = self.start()
        self.info["restart_s"] = ready["ready_s"]
        self.info["java_pid"] = self.java
        self.info["rss_ready_kib"] = rss_kib(self.java)
        self.info["started_in_log_s"] = self._started_in()
        log(f"{self.name}: restart with {self.users + 1} users ready in {ready['ready_s']:.1f} s"
            f" (Keycloak's log: started in {self.info['started_in_log_s']} s), java pid "
            f"{self.java}, RSS {self.info['rss_ready_kib'] / 1024:.1f} MiB")
        self.info["credentials_before"] = self.credentials()

    def _started_in(self):
        text = open(os.path.join(self.dir, "keycloak.log"), errors="replace").read()
        found = re.findall(r"started in ([0-9.]+)s", text)
        return float(found[-1]) if found else None

    def url(self):
        return self.base + "/"

    def form(self, **fields):
        return urllib.parse.urlencode(fields)

    def login_spec(self):
        return {"path": f"/realms/{kc_realm.REALM}/protocol/openid-connect/token",
                "content_type": "application/x-www-form-urlencoded",
                "lines": [self.form(grant_type="password", client_id=kc_realm.CLIENT_ID,
                                    client_secret=kc_realm.CLIENT_SECRET,
                                    username=ib.email(i), password=PASSWORD)
                          for i in range(self.users)]}

    def token(self, **fields):
        status, body = call_http("POST", f"{self.oidc}/token", self.form(**fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})
        return status, json.loads(body or b"null")

    def login(self, i, for_read=False):
        extra = {"scope": "openid"} if for_read else {}
        status, body = self.token(grant_type="password", client_id=kc_realm.CLIENT_ID,
                                  client_secret=kc_realm.CLIENT_SECRET, username=ib.email(i),
                                  password=PASSWORD, **extra)
        if status != 200:
            raise RuntimeError(f"{self.name} login {ib.email(i)}: {status} {body}")
        return body["access_token"], body["refresh_token"]

    def refresh_spec(self):
        return {"path": f"/realms/{kc_realm.REALM}/protocol/openid-connect/token",
                "content_type": "application/x-www-form-urlencoded",
                "body": self.form(grant_type="refresh_token", client_id=kc_realm.CLIENT_ID,
                                  client_secret=kc_realm.CLIENT_SECRET) + "&refresh_token={token}",
                "field": "refresh_token"}

    def read_path(self):
        return f"/realms/{kc_realm.REALM}/protocol/openid-connect/userinfo"

    # admin API (service account of bench-admin)
    def admin(self, method, path, body=None):
        if self.admin_token is None:
            status, tok = self.token(grant_type="client_credentials",
                                     client_id=kc_realm.ADMIN_CLIENT_ID,
                                     client_secret=kc_realm.ADMIN_CLIENT_SECRET)
            if status != 200:
                raise RuntimeError(f"{self.name} admin token: {status} {tok}")
            self.admin_token = tok["access_token"]
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, out = call_http(method, f"{self.base}/admin/realms/{kc_realm.REALM}{path}", data,
                           headers)
        if status == 401:  # the admin token ran out (5 min): once more with a new one
            self.admin_token = None
            return self.admin(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{self.name} admin {method} {path}: {status} {out[:300]}")
        return json.loads(out) if out else None

    def user_id(self, username):
        if username not in self.user_ids:
            found = self.admin("GET", "/users?" + urllib.parse.urlencode(
                {"username": username, "exact": "true"}))
            self.user_ids[username] = found[0]["id"]
        return self.user_ids[username]

    def credentials(self):
        """The stored password credential of the first user and of the brute-force user."""
        out = {}
        for username in (ib.email(0), BRUTE_EMAIL):
            creds = self.admin("GET", f"/users/{self.user_id(username)}/credentials")
            pw = [c for c in creds if c["type"] == "password"]
            out[username] = [{"createdDate": c.get("createdDate"),
                              "credentialData": json.loads(c.get("credentialData") or "{}")}
                             for c in pw]
        return out

    def realm_settings(self):
        r = self.admin("GET", "")
        keys = ["passwordPolicy", "bruteForceProtected", "failureFactor", "permanentLockout",
                "quickLoginCheckMilliSeconds", "minimumQuickLoginWaitSeconds",
                "waitIncrementSeconds", "maxFailureWaitSeconds", "maxDeltaTimeSeconds",
                "bruteForceStrategy", "maxTemporaryLockouts", "accessTokenLifespan",
                "ssoSessionIdleTimeout", "revokeRefreshToken"]
        return {k: r.get(k) for k in keys}

    def brute_force(self):
        self.admin("PUT", "", {"realm": kc_realm.REALM, "bruteForceProtected": True,
                               "failureFactor": 5})
        self.admin("PUT", "/events/config", {"eventsEnabled": True,
                                             "enabledEventTypes": ["LOGIN", "LOGIN_ERROR"],
                                             "eventsListeners": ["jboss-logging"]})
        settings = self.realm_settings()
        uid = self.user_id(BRUTE_EMAIL)
        body = self.form(grant_type="password", client_id=kc_realm.CLIENT_ID,
                         client_secret=kc_realm.CLIENT_SECRET, username=BRUTE_EMAIL,
                         password=WRONG_PASSWORD).encode()
        headers_of = lambda: {"Content-Type": "application/x-www-form-urlencoded"}
        answers, elapsed = burst(self.port, f"/realms/{kc_realm.REALM}/protocol/openid-connect/"
                                 "token", body, headers_of, BRUTE_PARALLEL)
        codes = {}
        for status, text, _ in answers:
            key = f"{status} {_json_field(text, 'error') or ''} " \
                  f"({_json_field(text, 'error_description') or ''})"
            codes[key] = codes.get(key, 0) + 1
        time.sleep(1.0)  # events are stored at the end of each request's transaction
        events = self.admin("GET", f"/events?user={uid}&max=1000")
        detection_burst = self.admin("GET", f"/attack-detection/brute-force/users/{uid}")
        status, tok = self.token(grant_type="password", client_id=kc_realm.CLIENT_ID,
                                 client_secret=kc_realm.CLIENT_SECRET, username=BRUTE_EMAIL,
                                 password=PASSWORD)
        right = f"{status} {tok.get('error', '') if isinstance(tok, dict) else ''}".strip()
        time.sleep(1.0)
        events_after = self.admin("GET", f"/events?user={uid}&max=1000")
        by_error = {}
        for e in events:
            k = f"{e.get('type')} {e.get('error') or ''}".strip()
            by_error[k] = by_error.get(k, 0) + 1
        right_events = [f"{e.get('type')} {e.get('error') or ''}".strip()
                        for e in events_after[: max(0, len(events_after) - len(events))]]
        return {"parallel": BRUTE_PARALLEL, "answers": codes, "burst_s": round(elapsed, 3),
                "events": by_error,
                "evaluated": by_error.get("LOGIN_ERROR invalid_user_credentials", 0),
                "refused_locked": by_error.get("LOGIN_ERROR user_temporarily_disabled", 0),
                "right_password_after": right, "right_password_works": status == 200,
                "right_password_events": right_events,
                "failures_recorded": detection_burst.get("numFailures"),
                "locked_after_burst": detection_burst.get("disabled"),
                "attack_detection_after_burst": detection_burst, "settings": settings}


# ---------------------------------------------------------------- load

def run_wrk(side, mode, seconds, connections, env, lines, tmp, tag):
    path = os.path.join(tmp, f"{side.name}-{tag}.lines")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    env = dict(os.environ, WRK_MODE=mode, WRK_LINES_FILE=path, WRK_THREADS=str(WRK_THREADS),
               WRK_BENCH_DIR=HERE, WRK_BODY_FILE="", **env)
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", LUA, side.url()]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    get = lambda prefix: json.loads(next(l for l in out.splitlines()
                                         if l.startswith(prefix))[len(prefix):])
    r = get("BENCH_JSON ")
    r.update(get("BENCH_STATUS "))
    r["ok"] = r["statuses"].get("200", 0)
    r["ok_per_s"] = r["ok"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = (r["errors_connect"] + r["errors_read"] + r["errors_write"]
                          + r["errors_timeout"])
    return r


def measure(side, others, mode, seconds, connections, tmp, tag):
    """One wrk run of `mode` against `side`, with the tokens it needs issued just before."""
    env = {"WRK_IP_BASE": str(IPS.next_wrk_base())}
    if mode == "login":
        spec = side.login_spec()
        env.update(WRK_PATH=spec["path"], WRK_CONTENT_TYPE=spec["content_type"])
        lines = spec["lines"]
    else:
        n = 2 * connections
        pairs = parallel(lambda i: side.login(i % side.users, for_read=(mode == "read")),
                         range(n))
        if mode == "refresh":
            spec = side.refresh_spec()
            env.update(WRK_PATH=spec["path"], WRK_CONTENT_TYPE=spec["content_type"],
                       WRK_REFRESH_BODY=spec["body"], WRK_TOKEN_FIELD=spec["field"])
            lines = [p[1] for p in pairs]
        else:
            env.update(WRK_PATH=side.read_path())
            lines = [p[0] for p in pairs]
    quiet_s = wait_quiet(side.pid, timeout=QUIET_TIMEOUT)
    cpu0 = {s.name: cpu_ticks(s.pid) for s in [side] + others}
    r = run_wrk(side, mode, seconds, connections, env, lines, tmp, tag)
    cpu = {name: (cpu_ticks(s.pid) - cpu0[name]) / HZ
           for name, s in [(x.name, x) for x in [side] + others]}
    r["quiet_wait_s"] = quiet_s
    r["server_cpu_s"] = cpu[side.name]
    r["server_cpu_ms_per_ok"] = 1000 * cpu[side.name] / max(1, r["ok"])
    r["bystander_cpu_s"] = {k: v for k, v in cpu.items() if k != side.name}
    r["connections"] = connections
    bad = {k: v for k, v in r["statuses"].items() if k != "200"}
    log(f"  {side.name:17s} {mode:7s} {r['ok_per_s']:9,.1f}/s  p50 {r['p50_us'] / 1000:7.2f} ms"
        f"  p99 {r['p99_us'] / 1000:7.2f} ms  cpu {r['server_cpu_ms_per_ok']:6.2f} ms/op"
        + (f"  NOT 200: {bad} first {r['first_refusal'][:160]}" if bad else "")
        + (f"  socket errors {r['socket_errors']}" if r["socket_errors"] else "")
        + (f"  sent without token {r['sent_without_token']}" if r.get("sent_without_token")
           else ""))
    return r


MODES = [("login", LOGIN_CONNECTIONS), ("refresh", CONNECTIONS), ("read", CONNECTIONS)]


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(results, sides):
    s = {}
    for side in sides:
        s[side] = {}
        for mode, _ in MODES:
            rounds = [r[side][mode] for r in results["rounds"]]
            s[side][mode] = {"ok_per_s": med([r["ok_per_s"] for r in rounds]),
                             "p50_ms": med([r["p50_us"] / 1000 for r in rounds]),
                             "p99_ms": med([r["p99_us"] / 1000 for r in rounds]),
                             "cpu_ms_per_op": med([r["server_cpu_ms_per_ok"] for r in rounds]),
                             "rounds_ok_per_s": [round(r["ok_per_s"], 1) for r in rounds],
                             "errors": sum(sum(v for k, v in r["statuses"].items() if k != "200")
                                           + r["socket_errors"] for r in rounds)}
    for side in sides:
        if side == "ours":
            continue
        for mode, _ in MODES:
            per_round = [r["ours"][mode]["ok_per_s"] / r[side][mode]["ok_per_s"]
                         if r[side][mode]["ok_per_s"] else float("nan")
                         for r in results["rounds"]]
            p99 = [r["ours"][mode]["p99_us"] / r[side][mode]["p99_us"]
                   if r[side][mode]["p99_us"] else float("nan") for r in results["rounds"]]
            s[side][mode]["ratio_ours_per_s"] = med(per_round)
            s[side][mode]["ratio_rounds"] = [round(x, 3) for x in per_round]
            s[side][mode]["ratio_ours_p99"] = med(p99)
    return s


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def tables(results):
    s = results["summary"]
    info = results["sides"]
    n = results["config"]["users"]
    rounds = results["config"]["rounds"]
    lines = []

    def cell(side, mode):
        m = s[side][mode]
        return (f"{fmt_rate(m['ok_per_s'])}/s, p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms"
                + (f" ({m['errors']} errors)" if m["errors"] else ""))

    def rate_ratio(side, mode):
        m = s[side][mode]
        return (f"{m['ratio_ours_per_s']:.2f}x ({' / '.join(f'{x:.2f}' for x in m['ratio_rounds'])}); "
                f"p99 {m['ratio_ours_p99']:.2f}x")

    names = {"login": f"password logins/s ({LOGIN_CONNECTIONS} conns; ours POST /v1/auth/login, "
                      "Keycloak password grant)",
             "refresh": f"refresh/s ({CONNECTIONS} conns; ours POST /v1/auth/refresh, Keycloak "
                        "refresh_token grant)",
             "read": f"authenticated read ({CONNECTIONS} conns; ours GET /v1/me, Keycloak "
                     "userinfo)"}

    def block(kc, title):
        lines.append(f"### {title}")
        lines.append("")
        lines.append(f"| measure | ours | {info[kc]['label']} | ratio ours/Keycloak |")
        lines.append("| --- | --- | --- | --- |")
        for mode, _ in MODES:
            lines.append(f"| {names[mode]} | {cell('ours', mode)} | {cell(kc, mode)} | "
                         f"{rate_ratio(kc, mode)} |")
        for mode in ("login", "refresh"):
            o, k = s["ours"][mode]["cpu_ms_per_op"], s[kc][mode]["cpu_ms_per_op"]
            lines.append(f"| server CPU per {mode} | {o:.2f} ms | {k:.2f} ms | "
                         f"{o / k if k else float('nan'):.2f}x |")
        o, k = info["ours"]["rss_after_load_kib"] / 1024, info[kc]["rss_after_load_kib"] / 1024
        lines.append(f"| RSS after load (VmRSS; Keycloak: the java process) | {o:.1f} MiB | "
                     f"{k:.1f} MiB | {o / k:.2f}x |")
        o, k = info["ours"]["rss_ready_kib"] / 1024, info[kc]["rss_ready_kib"] / 1024
        lines.append(f"| RSS at ready, after the restart | {o:.1f} MiB | {k:.1f} MiB | "
                     f"{o / k:.2f}x |")
        o, k = info["ours"]["restart_s"], info[kc]["restart_s"]
        lines.append(f"| start-up to ready, restart on a store with {n + 1} users | {o:.2f} s | "
                     f"{k:.2f} s | {o / k:.3f}x |")
        o, k = info["ours"]["first_start_s"], info[kc]["first_start_s"]
        lines.append(f"| first start to ready (ours: empty store; Keycloak: fresh copy, "
                     f"re-augmentation, import and hashing of {n + 1} users) | {o:.2f} s | "
                     f"{k:.1f} s | (not like for like) |")
        lines.append("")

    bf_state = ("on" if results["config"]["kc_brute_force_during_load"] == "on"
                else "off, Keycloak's default")
    block("keycloak", f"Same hashing cost: Argon2id m=19456 KiB, t=2, p=1 on both sides "
                      f"(median of {rounds} rounds; Keycloak brute-force detection {bf_state})")
    if "keycloak-default" in s:
        kd = info["keycloak-default"].get("hash", {})
        block("keycloak-default",
              f"Each side's default hashing: ours Argon2id 19456/2/1 (its default, the same runs "
              f"as above), Keycloak {kd.get('algorithm', '?')} {kd.get('params', '')}")

    lines.append(f"### Brute force: {BRUTE_PARALLEL} parallel wrong-password logins for one user")
    lines.append("")
    bf = results["brute_force"]
    kcs = [k for k in ("keycloak", "keycloak-default") if k in bf]
    lines.append("| | ours (locks after 5 consecutive failures, 30 min) | "
                 + " | ".join(f"{info[k]['label']} (brute-force detection on, failureFactor 5)"
                              for k in kcs) + " |")
    lines.append("| --- | --- |" + " --- |" * len(kcs))

    def row(title, f):
        lines.append(f"| {title} | {f('ours')} | " + " | ".join(f(k) for k in kcs) + " |")
    row("evaluated: password checked and found wrong (ours: wrong_password failures; Keycloak: "
        "invalid_user_credentials events)", lambda k: str(bf[k]["evaluated"]))
    row("refused without checking the password (ours: account locked; Keycloak: "
        "user_temporarily_disabled events)", lambda k: str(bf[k]["refused_locked"]))
    row("after the burst: failures on record, account locked",
        lambda k: f"{bf[k]['failures_recorded']}, {'locked' if bf[k]['locked_after_burst'] else 'not locked'}")
    row("answers", lambda k: ", ".join(f"{v} x {c}" for c, v in sorted(bf[k]["answers"].items())))
    row("time for the burst", lambda k: f"{bf[k]['burst_s']:.2f} s")
    row("right password right after", lambda k: ("works" if bf[k]["right_password_works"]
                                                 else "refused") + f" ({bf[k]['right_password_after']})")
    lines.append("")
    return "\n".join(lines)


def hash_summary(creds):
    """algorithm and parameters of a stored credential (Keycloak's credentialData)."""
    any_user = next(iter(creds.values()))
    if not any_user:
        return {}
    d = any_user[0]["credentialData"]
    extra = {k: v[0] if isinstance(v, list) and len(v) == 1 else v
             for k, v in (d.get("additionalParameters") or {}).items()}
    params = ", ".join([f"iterations={d.get('hashIterations')}"]
                       + [f"{k}={v}" for k, v in sorted(extra.items())])
    return {"algorithm": d.get("algorithm"), "params": params, "raw": d}


def versions():
    out = {}
    try:
        out["git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                    capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    out["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(
        "\n")[0].strip()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build")
    p.add_argument("out_json")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10,
                   help="seconds of each kind first, unmeasured")
    p.add_argument("--kc-brute-force", choices=["off", "on"], default="off",
                   help="Keycloak's brute-force detection during the load (default off, "
                        "Keycloak's default; the brute-force test switches it on either way)")
    p.add_argument("--no-default", action="store_true",
                   help="leave out Keycloak with its default hashing")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args()
    if a.users < 1:
        p.error("--users must be >= 1")

    results = {"config": {"users": a.users, "seconds": a.seconds, "rounds": a.rounds,
                          "warmup": a.warmup, "kc_brute_force_during_load": a.kc_brute_force,
                          "login_connections": LOGIN_CONNECTIONS,
                          "connections": CONNECTIONS, "wrk_threads": WRK_THREADS,
                          "brute_parallel": BRUTE_PARALLEL},
               "nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "versions": versions()}
    tmp = tempfile.mkdtemp(prefix="sechex-peers-bench-", dir=os.environ.get("TMPDIR"))
    log(f"peers bench: {a.users} users, {a.rounds} rounds of {a.seconds} s, warm-up {a.warmup} s, "
        f"temp dir {tmp}")
    ours = Ours(a.build, tmp, a.users)
    bf_on = a.kc_brute_force == "on"
    kcs = [Keycloak(tmp, a.users, "matched", bf_on)]
    if not a.no_default:
        kcs.append(Keycloak(tmp, a.users, "default", bf_on))
    sides = [ours] + kcs
    try:
        ours.setup()
        for kc in kcs:
            kc.setup()
            kc.info["hash"] = hash_summary(kc.info["credentials_before"])
            kc.info["realm_settings"] = kc.realm_settings()
            log(f"{kc.name}: stored hash {kc.info['hash'].get('algorithm')} "
                f"{kc.info['hash'].get('params')}; password policy "
                f"{kc.info['realm_settings']['passwordPolicy']!r}")
        kc_home = os.path.join(kcs[0].dir, "keycloak")
        results["versions"]["keycloak"] = open(os.path.join(kc_home, "version.txt")).read().strip()
        results["versions"]["java_home"] = kcs[0].info["java_home"]
        results["versions"]["java"] = subprocess.run(
            [os.path.join(kcs[0].info["java_home"], "bin", "java"), "-version"],
            capture_output=True, text=True).stderr.strip().splitlines()

        if a.warmup > 0:
            log(f"warm-up, {a.warmup} s of each kind per side (not counted)")
            for side in sides:
                others = [s for s in sides if s is not side]
                for mode, conns in MODES:
                    measure(side, others, mode, a.warmup, conns, tmp, f"warmup-{mode}")

        results["rounds"] = []
        for rnd in range(a.rounds):
            order = sides[rnd % len(sides):] + sides[:rnd % len(sides)]
            log(f"round {rnd + 1} of {a.rounds}: {', '.join(s.name for s in order)}")
            this = {}
            for side in order:
                others = [s for s in sides if s is not side]
                this[side.name] = {mode: measure(side, others, mode, a.seconds, conns, tmp,
                                                 f"r{rnd}-{mode}")
                                   for mode, conns in MODES}
            results["rounds"].append(this)

        for side in sides:
            side.info["rss_after_load_kib"] = rss_kib(side.pid)
            log(f"{side.name}: RSS after load {side.info['rss_after_load_kib'] / 1024:.1f} MiB")
        for kc in kcs:
            kc.info["credentials_after"] = kc.credentials()
            same = kc.info["credentials_after"] == kc.info["credentials_before"]
            kc.info["credentials_unchanged_by_load"] = same
            log(f"{kc.name}: stored credentials unchanged by the load (no rehash): {same}")

        results["brute_force"] = {}
        for side in sides:
            r = side.brute_force()
            results["brute_force"][side.name] = r
            log(f"{side.name}: brute force: evaluated {r['evaluated']}, refused by the lock "
                f"{r['refused_locked']}, answers {r['answers']}, right password after: "
                f"{r['right_password_after']}")
    finally:
        for side in sides:
            side.stop()
        if a.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["sides"] = {s.name: dict(s.info, label=s.label) for s in sides}
    results["summary"] = summarize(results, [s.name for s in sides])
    results["loadavg_end"] = os.getloadavg()
    md = tables(results)
    results["markdown"] = md
    with open(a.out_json, "w") as f:
        json.dump(results, f, indent=1)
    md_path = os.path.splitext(a.out_json)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md + "\n")
    log("")
    log(md)
    log(f"wrote {a.out_json} and {md_path}")


if __name__ == "__main__":
    main()
