"""A stand-in for CockroachDB's DB Console TLS listener, run as a script by core.lab.console.

It is NOT the DB Console: it serves one small HTML page. What it copies from CockroachDB
is the part a certificate rotation depends on:

- it speaks TLS directly on its address (no SSLRequest, unlike the SQL port);
- it serves `ui.crt`/`ui.key` from the certs dir when both exist, else `node.crt`/`node.key`
  (CockroachDB's rule for the HTTP server's certificate), the whole chain in the file;
- it re-reads those files on SIGHUP; files it cannot load are logged and the previous
  certificate keeps being served (a node never stops serving over a bad file).

With `--sql CA_FILE` it stands in for a node's SQL port instead (a lab node without
PostgreSQL, for scale runs): it answers PostgreSQL's SSLRequest with 'S', serves
node.crt/node.key, asks for a client certificate and checks it against CA_FILE of the
certs dir (ca.crt, or ca-client.crt with a client CA) as PostgreSQL does, re-reads all
three on SIGHUP, and answers every startup message with an error: it proves TLS and trust,
it is not a database.

Standard library only, because it runs under whatever Python the lab's server account
(`postgres` when root) can execute, from a copy in the node's own directory.

    python3 -I console_server.py --address 127.4.5.1 --port 8080 --certs-dir DIR --pid-file FILE [--sql ca.crt]

It writes its pid to --pid-file once it listens, and removes it when it stops (SIGTERM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import StreamRequestHandler

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


def load_context(certs_dir: str, sql_ca_file: str | None = None) -> ssl.SSLContext:
    if sql_ca_file:  # the SQL port serves node.crt and checks client certificates, like PostgreSQL's
        cert, key = os.path.join(certs_dir, "node.crt"), os.path.join(certs_dir, "node.key")
    else:
        cert, key = certificate_files(certs_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if sql_ca_file:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(os.path.join(certs_dir, sql_ca_file))
    log(f"serving {os.path.basename(cert)}")
    return context


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], certs_dir: str, sql_ca_file: str | None = None) -> None:
        self.certs_dir = certs_dir
        self.sql_ca_file = sql_ca_file
        self.tls = load_context(certs_dir, sql_ca_file)
        super().__init__(address, SqlHandler if sql_ca_file else PageHandler)

    def reload(self) -> None:
        try:
            self.tls = load_context(self.certs_dir, self.sql_ca_file)
        except (OSError, ssl.SSLError, ValueError) as error:
            log(f"reload failed, still serving the previous certificate: {error}")

    def get_request(self):
        if not self.sql_ca_file:
            return self._tls_request()
        sock, client = self.socket.accept()
        sock.settimeout(HANDSHAKE_TIMEOUT)
        return sock, client  # SqlHandler answers the SSLRequest, then starts TLS

    def _tls_request(self):
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


SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _error_response(message: str) -> bytes:
    fields = b"".join(code + text.encode() + b"\0" for code, text in
                      ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28000"), (b"M", message)))
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


class SqlHandler(StreamRequestHandler):
    """PostgreSQL's side of a connection up to the first answer: SSLRequest, TLS (client certificate
    checked during the handshake, or at the first read under TLS 1.3), startup message, refusal."""

    def handle(self) -> None:
        raw = self.request
        try:
            if self._read(raw, 8) != SSL_REQUEST:
                return
            raw.sendall(b"S")
            tls = self.server.tls.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError, ValueError, EOFError):
            return  # a refused client certificate (or a probe that left): nothing to answer
        try:
            length = struct.unpack("!i", self._read(tls, 4))[0]
            self._read(tls, max(0, min(length, 10000) - 4))
            tls.sendall(_error_response('role "certrotate-probe" does not exist'))
            tls.unwrap()
        except (OSError, ssl.SSLError, ValueError, EOFError, struct.error):
            pass

    @staticmethod
    def _read(sock, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def finish(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs-dir", required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--sql", metavar="CA_FILE", help="stand in for the SQL port, checking clients against CA_FILE")
    args = parser.parse_args(argv)
    try:
        server = ConsoleServer((args.address, args.port), args.certs_dir, args.sql)
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
