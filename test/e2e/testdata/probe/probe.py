# probe: a hostile tenant's job for the network isolation scenario. It
# serves GET /try?op=...&addr=HOST:PORT and answers, as JSON, whether the
# attempt worked from inside its own job: connect, bind (optionally with
# SO_REUSEPORT) and the /proc/net/tcp it can see.
import http.server, json, signal, socket, sys, urllib.parse

signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))


def attempt(op, addr):
    if op == "proctcp":
        with open("/proc/net/tcp") as f:
            return True, f.read()
    if op == "resolve":
        try:
            return True, " ".join(sorted(socket.gethostbyname_ex(addr)[2]))
        except OSError as e:
            return False, str(e)
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        if op == "connect":
            s.connect((host, int(port)))
        elif op in ("bind", "reuseport"):
            if op == "reuseport":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, int(port)))
            s.listen(1)
        else:
            return False, "unknown op " + op
        return True, ""
    except OSError as e:
        return False, str(e)
    finally:
        s.close()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/try":
            ok, detail = attempt(q.get("op", [""])[0], q.get("addr", [":0"])[0])
            body = json.dumps({"ok": ok, "detail": detail}).encode()
        else:
            body = b"probe\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(("", int(sys.argv[1])), Handler).serve_forever()
