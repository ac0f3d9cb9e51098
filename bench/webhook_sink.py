"""A lean webhook receiver for bench/payments_bench.py: answers every POST 204 and counts them.
Prints "listening on 127.0.0.1:PORT" on stderr.
  webhook_sink.py            serve
  webhook_sink.py ref N PORT  the reference: N POSTs to PORT one after the other, each on a new
                              connection (as ledgerd's worker sends them); prints the rate"""
import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def reference(n, port):
    body = b'{"type":"payment.created","data":{"paymentId":"pay_x"}}'
    start = time.monotonic()
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        c.request("POST", "/hooks", body, {"Content-Type": "application/json"})
        c.getresponse().read()
        c.close()
    print(n / (time.monotonic() - start))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ref":
        reference(int(sys.argv[2]), int(sys.argv[3]))
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        print(f"listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
        server.serve_forever()
