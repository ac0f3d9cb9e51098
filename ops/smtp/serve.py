#!/usr/bin/python3
"""A real SMTP server for tests (ops/smtp/start runs it; see ops/smtp/README.md).

aiosmtpd (Debian python3-aiosmtpd) on 127.0.0.1, plain SMTP with 8BITMIME and SMTPUTF8, no TLS
and no AUTH. Each message accepted is written to DIR/<n>.eml (n = 1, 2, ...) exactly as received,
with its envelope in DIR/<n>.json ({"mail_from", "rcpt_tos"}); both go through a temporary file
and a rename, and the .json lands first, so a reader that sees <n>.eml finds a complete message
and its envelope.

Failure injection for retry tests: when DIR/fail_next holds a number N > 0, the next N messages
are refused after DATA with "451 4.3.0 Try again later" (N counts down in the file).

On start it writes DIR/port (the listening port) and DIR/pid; SIGTERM or SIGINT stop it, and
so does DIR disappearing (a test that died before stopping its server leaves none behind).
"""
import argparse
import asyncio
import json
import os
import signal
import socket

from aiosmtpd.smtp import SMTP


def write_atomically(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Handler:
    def __init__(self, directory):
        self.dir = directory
        self.count = sum(1 for n in os.listdir(directory) if n.endswith(".eml"))

    def take_failure(self):
        path = os.path.join(self.dir, "fail_next")
        try:
            with open(path) as f:
                n = int(f.read().strip() or "0")
        except (OSError, ValueError):
            return False
        if n <= 0:
            return False
        write_atomically(path, str(n - 1).encode())
        return True

    async def handle_DATA(self, server, session, envelope):
        if self.take_failure():
            return "451 4.3.0 Try again later"
        self.count += 1
        base = os.path.join(self.dir, str(self.count))
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        write_atomically(base + ".json", json.dumps(meta).encode())
        write_atomically(base + ".eml", envelope.original_content)
        return "250 2.0.0 OK"


async def serve(directory, host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    handler = Handler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, decode_data=False, enable_SMTPUTF8=True, hostname="sechex-test-smtp"),
        sock=sock,
    )
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    write_atomically(os.path.join(directory, "pid"), str(os.getpid()).encode())
    write_atomically(os.path.join(directory, "port"), str(sock.getsockname()[1]).encode())
    # A test that died before stopping its server removed (or will remove) DIR: exit then.
    while not stop.done():
        await asyncio.wait([stop], timeout=1.0)
        if not os.path.isdir(directory):
            break
    server.close()
    await server.wait_closed()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    asyncio.run(serve(os.path.abspath(a.dir), a.host, a.port))


if __name__ == "__main__":
    main()
