"""A web server on $PORT, standard library only, for pier's Python buildpack."""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html>\n<title>hello-python</title>\n<h1>Hello from Python</h1>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    print(f"listening on :{port}", flush=True)
    ThreadingHTTPServer(("", port), Hello).serve_forever()
