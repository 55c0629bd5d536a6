"""A stand-in for CockroachDB's DB Console TLS listener, run as a script by core.lab.console.

It is NOT the DB Console: it serves one small HTML page. What it copies from CockroachDB
is the part a certificate rotation depends on:

- it speaks TLS directly on its address (no SSLRequest, unlike the SQL port);
- it serves `ui.crt`/`ui.key` from the certs dir when both exist, else `node.crt`/`node.key`
  (CockroachDB's rule for the HTTP server's certificate), the whole chain in the file;
- it re-reads those files on SIGHUP; files it cannot load are logged and the previous
  certificate keeps being served (a node never stops serving over a bad file).

Standard library only, because it runs under whatever Python the lab's server account
(`postgres` when root) can execute, from a copy in the node's own directory.

    python3 -I console_server.py --address 127.4.5.1 --port 8080 --certs-dir DIR --pid-file FILE

It writes its pid to --pid-file once it listens, and removes it when it stops (SIGTERM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANDSHAKE_TIMEOUT = 10.0
PAGE = (b"<!doctype html><title>certrotate lab console</title>"
        b"<p>certrotate lab: a stand-in for the CockroachDB DB Console TLS listener.</p>\n")


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} console[{os.getpid()}] {message}", flush=True)


def certificate_files(certs_dir: str) -> tuple[str, str]:
    """ui.crt/ui.key when both exist (CockroachDB's choice for the HTTP server), else node.crt/node.key."""
    ui_cert, ui_key = os.path.join(certs_dir, "ui.crt"), os.path.join(certs_dir, "ui.key")
    if os.path.exists(ui_cert) and os.path.exists(ui_key):
        return ui_cert, ui_key
    return os.path.join(certs_dir, "node.crt"), os.path.join(certs_dir, "node.key")


def load_context(certs_dir: str) -> ssl.SSLContext:
    cert, key = certificate_files(certs_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    log(f"serving {os.path.basename(cert)}")
    return context


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], certs_dir: str) -> None:
        self.certs_dir = certs_dir
        self.tls = load_context(certs_dir)
        super().__init__(address, PageHandler)

    def reload(self) -> None:
        try:
            self.tls = load_context(self.certs_dir)
        except (OSError, ssl.SSLError, ValueError) as error:
            log(f"reload failed, still serving the previous certificate: {error}")

    def get_request(self):
        sock, client = self.socket.accept()
        sock.settimeout(HANDSHAKE_TIMEOUT)
        # The context of the moment: a connection accepted after a SIGHUP gets the new certificate.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), client

    def handle_error(self, request, client_address) -> None:
        pass  # probes close right after the handshake; that is not an error worth a traceback


class PageHandler(BaseHTTPRequestHandler):
    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs-dir", required=True)
    parser.add_argument("--pid-file", required=True)
    args = parser.parse_args(argv)
    try:
        server = ConsoleServer((args.address, args.port), args.certs_dir)
    except (OSError, ssl.SSLError) as error:
        log(f"cannot start on {args.address}:{args.port}: {error}")
        return 1
    stopping = threading.Event()

    def on_hup(signum, frame) -> None:
        server.reload()

    def on_term(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(args.pid_file + ".tmp", "w") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(args.pid_file + ".tmp", args.pid_file)
    log(f"listening on {args.address}:{args.port}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        try:
            os.unlink(args.pid_file)
        except OSError:
            pass
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
