"""A web server on $PORT whose /health fails while it warms up.

It listens at once but answers 503 everywhere for WARMUP seconds (as an
app that loads data or connects to a database before it can serve), so
a TCP check would let traffic in too early: app.json's HTTP health check
on /health keeps it out of the router until it is ready.
"""
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
WARMUP = float(os.environ.get("WARMUP", "3"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if time.monotonic() - STARTED < WARMUP:
            self.answer(503, b"still warming up\n")
        elif self.path == "/health":
            self.answer(200, b"ok\n")
        else:
            self.answer(200, b"Hello from app.json\n")

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # the health check asks every few seconds


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    print(f"listening on :{port}, ready in {WARMUP:g}s", flush=True)
    ThreadingHTTPServer(("", port), Handler).serve_forever()
