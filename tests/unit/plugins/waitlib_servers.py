"""Real HTTP(S) servers on loopback whose behaviour the tests steer."""

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def tls_context(cert_path, key_path, client_ca_path=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    if client_ca_path:
        ctx.load_verify_locations(client_ca_path)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _TLSServer(_Server):
    """Does the TLS handshake in the request thread, so a failing client cannot stall accept()."""

    tls = None

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        self.RequestHandlerClass(request, client_address, self)


class ServerThread:
    """Runs ``handler(request_handler)`` for each request; ``handler`` returns (status, headers, body) or None."""

    def __init__(self, handler, tls=None, port=0):
        outer = self
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                with outer.lock:
                    outer.requests += 1
                answer = handler(self)
                if answer is None:  # drop the connection without a response
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status, headers, body = answer
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = _serve
            do_POST = _serve
            do_HEAD = _serve

        self.server = _TLSServer(("127.0.0.1", port), Handler)
        self.server.tls = tls
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    def url(self, path="/"):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
