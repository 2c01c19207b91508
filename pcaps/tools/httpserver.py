#!/usr/bin/env python3
"""Small HTTP/1.x server (standard library only) for the vxtap fixtures.

It produces the cases nginx cannot (or not on demand): close-delimited
HTTP/1.0 responses, 100-continue, a 101 upgrade to websocket followed by
frames, hand-chunked bodies with extensions and a trailer, a slow response,
and an upstream for nginx's proxied (re-chunked) response.

Endpoints (anything else: 404 with a Content-Length body):
  GET  /close10           HTTP/1.0 200, no Content-Length, body ends at close
  GET  /chunked?size=N    200, Transfer-Encoding: chunked, N bytes in chunks of
                          varying size, one chunk extension, a trailer
  GET  /slow              200 chunked, three pieces 0.4 s apart
  GET  /gen?size=N        200, no Content-Length, close-delimited (nginx's
                          upstream for /stream/, nginx re-chunks it)
  POST|PUT /upload        reads the body (Content-Length), answers 201 with a
                          short text body (length and sha256 of what it read)
  any  /echo              200, body echoes method and body length
  GET  /delay?ms=N        200 with a Content-Length body, after N ms
  GET  /ws                101 Switching Protocols (websocket), then echoes
                          every data frame back unmasked until a close frame
Usage: httpserver.py ADDRESS PORT
"""
import base64
import hashlib
import http.server
import socketserver
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern(n):
    """Deterministic, mildly compressible text of n bytes."""
    line = b"vxtap fixture line %05d: the quick brown fox jumps over the lazy dog\n"
    out = bytearray()
    i = 0
    while len(out) < n:
        out += line % i
        i += 1
    return bytes(out[:n])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vxtap-fixture/1"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def date_time_string(self, timestamp=None):
        return super().date_time_string(timestamp)

    def _query(self):
        return parse_qs(urlsplit(self.path).query)

    def _route(self):
        return urlsplit(self.path).path

    def _simple(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def do_GET(self):
        route = self._route()
        if route == "/close10":
            body = pattern(5000)
            # HTTP/1.0 response without Content-Length: the body ends at close.
            self.wfile.write(b"HTTP/1.0 200 OK\r\nServer: vxtap-fixture/1\r\n"
                             b"Content-Type: text/plain\r\n\r\n")
            self.wfile.flush()
            self.wfile.write(body[:2000])
            self.wfile.flush()
            time.sleep(0.05)
            self.wfile.write(body[2000:])
            self.close_connection = True
        elif route == "/gen":
            size = int(self._query().get("size", ["30000"])[0])
            body = pattern(size)
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            for off in range(0, size, 7000):
                self.wfile.write(body[off:off + 7000])
                self.wfile.flush()
                time.sleep(0.02)
            self.close_connection = True
        elif route == "/chunked":
            size = int(self._query().get("size", ["20000"])[0])
            body = pattern(size)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Body-Sha256")
            self.end_headers()
            sizes = [1, 10, 100, 1000, 4096, 8192, 16384]
            off = i = 0
            while off < size:
                n = min(sizes[i % len(sizes)], size - off)
                ext = b";fixture=yes" if i == 2 else b""
                self.wfile.write(b"%x%s\r\n" % (n, ext) + body[off:off + n] + b"\r\n")
                off += n
                i += 1
            digest = hashlib.sha256(body).hexdigest().encode()
            self.wfile.write(b"0\r\nX-Body-Sha256: " + digest + b"\r\n\r\n")
        elif route == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(3):
                time.sleep(0.4)
                piece = b"slow piece %d\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif route == "/delay":
            time.sleep(int(self._query().get("ms", ["500"])[0]) / 1000)
            self._simple(200, b"delayed response\n")
        elif route == "/ws":
            self._websocket()
        elif route == "/echo":
            self._echo()
        else:
            self._simple(404, b"not found\n")

    def do_HEAD(self):
        route = self._route()
        if route == "/echo":
            self._echo()
        else:
            self._simple(404, b"not found\n")

    def do_POST(self):
        route = self._route()
        if route == "/upload":
            data = self._read_body()
            body = b"received %d bytes sha256 %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
            self._simple(201, body)
        elif route == "/echo":
            self._echo()
        else:
            self._read_body()
            self._simple(404, b"not found\n")

    do_PUT = do_POST

    def do_DELETE(self):
        self._echo()

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        self.end_headers()

    def _echo(self):
        data = self._read_body()
        body = b"%s %s body %d\n" % (self.command.encode(), self.path.encode(), len(data))
        self._simple(200, body)

    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            hdr = self.rfile.read(2)
            if len(hdr) < 2:
                break
            opcode = hdr[0] & 0x0F
            masked = hdr[1] & 0x80
            n = hdr[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            if opcode == 8:
                self.wfile.write(bytes([0x88, len(payload)]) + payload)
                self.wfile.flush()
                break
            reply = b"echo: " + payload
            if len(reply) < 126:
                frame = bytes([0x80 | opcode, len(reply)]) + reply
            else:
                frame = bytes([0x80 | opcode, 126]) + struct.pack("!H", len(reply)) + reply
            self.wfile.write(frame)
            self.wfile.flush()
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    Server((addr, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
