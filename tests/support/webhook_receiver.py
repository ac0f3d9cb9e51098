"""A webhook receiver for the black-box tests (issue 15): an HTTP server on 127.0.0.1 that
answers POSTs as a control file says and verifies every request with the reference Standard
Webhooks library (PyPI `standardwebhooks`).

  webhook_receiver.py DIR
prints "listening on 127.0.0.1:PORT" (stderr) and serves until killed. DIR/plan holds one line per status to answer,
used up in order (the last line repeats), e.g. "503 2" = 503 with Retry-After: 2, "200", "410",
"302 location=/followed" = a redirect, "200 big" = a 1 MiB answer;
DIR/secret, once the test writes it, the endpoint's whsec_ secret. Every request is appended to
DIR/requests.jsonl as {"path", "id", "timestamp", "signature_ok", "body", "answered"}.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DIR = sys.argv[1]
served = 0


def plan_line(n):
    try:
        with open(os.path.join(DIR, "plan")) as f:
            lines = [l.split() for l in f if l.strip()]
    except OSError:
        lines = []
    if not lines:
        return ["200"]
    return lines[min(n, len(lines) - 1)]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        global served
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        ok = False
        try:
            with open(os.path.join(DIR, "secret")) as f:
                Webhook(f.read().strip()).verify(body, {k.lower(): v for k, v in self.headers.items()})
            ok = True
        except (OSError, WebhookVerificationError):
            ok = False
        plan = plan_line(served)
        served += 1
        status = int(plan[0])
        answer = b"{}"
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps({"path": self.path, "id": self.headers.get("webhook-id"),
                                "timestamp": self.headers.get("webhook-timestamp"),
                                "signature_ok": ok, "body": body, "answered": status}) + "\n")
        self.send_response(status)
        for option in plan[1:]:
            if option.startswith("location="):
                self.send_header("Location", option[len("location="):])
            elif option == "big":
                answer = b"x" * (1 << 20)
            else:
                self.send_header("Retry-After", option)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        try:
            self.wfile.write(answer)
        except OSError:
            pass  # the client stopped reading (a capped answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
server.serve_forever()
