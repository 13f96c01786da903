#!/usr/bin/env python3
"""A Git host for the node tier: Git's smart HTTP protocol served by `git http-backend` (the CGI program
Git ships) behind a small HTTP server, so ArgoCD and the developer's `git push` talk to http:// URLs the
way they talk to a Git host, and the repositories' hooks run on push (dev/gitserver/hooks).

    dev/gitserver/git-http.py --root DIR --listen 127.0.0.1:PORT

Serves every bare repository under DIR as http://HOST:PORT/<name>.git. Anonymous, no TLS: bind it to
loopback or to an address only the test's network namespaces reach. Pushing needs `http.receivepack true`
in the repository's config (dev/gitserver/repo.sh sets it). Request bodies over 256 MiB are refused (413).
"""
import argparse
import http.server
import os
import shutil
import subprocess
import sys
import urllib.parse

MAX_BODY = 256 << 20


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one response per connection, its end is the end of the body (CGI output has no length).
    protocol_version = "HTTP/1.0"
    server_version = "mlops-git-http"

    def do_GET(self):
        self.cgi()

    def do_POST(self):
        self.cgi()

    def body(self):
        """The request body, de-chunked (git sends large pushes chunked); None when over MAX_BODY."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts, size = [], 0
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(parts)
                size += n
                if size > MAX_BODY:
                    return None
                parts.append(self.rfile.read(n))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return None if n > MAX_BODY else self.rfile.read(n)

    def cgi(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.body() if self.command == "POST" else b""
        if body is None:
            self.send_error(413, "request body over 256 MiB")
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.0",
        }
        if "GIT_CONFIG_NOSYSTEM" in os.environ:
            env["GIT_CONFIG_NOSYSTEM"] = os.environ["GIT_CONFIG_NOSYSTEM"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=sys.stderr)
        proc.stdin.write(body)
        proc.stdin.close()
        status, headers = 200, []
        for line in iter(proc.stdout.readline, b""):
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        shutil.copyfileobj(proc.stdout, self.wfile)
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="directory holding the bare repositories")
    ap.add_argument("--listen", required=True, help="HOST:PORT (loopback or a test network's address)")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.root = os.path.abspath(args.root)
    print(f"serving {server.root} on http://{args.listen}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
