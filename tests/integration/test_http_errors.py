"""Every answer under /api/ is JSON, also the ones httpd gives itself before the module
sees the request (security fix L6): encoded slashes and NULs, bad chunk sizes, over-long
request lines and headers, unknown Expect values, malformed request lines. Outside /api/
httpd's own pages are left alone."""

import json
import socket

import pytest


def raw(apache, data, read_body=True):
    """Sends bytes as they are; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", apache.port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip()
               for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers, body


def req(line, *headers, body=b""):
    h = "".join(f"{x}\r\n" for x in headers)
    return f"{line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n{h}\r\n".encode() + body


HOSTILE = [
    ("encoded-slash", req("GET /api/vps/1%2f2 HTTP/1.1"), 404),
    ("encoded-nul", req("GET /api/vps/%00 HTTP/1.1"), 404),
    ("bad-escape", req("GET /api/vps/%zz HTTP/1.1"), 400),
    ("long-uri", req("GET /api/" + "a" * 9000 + " HTTP/1.1"), 414),
    ("long-header", req("GET /api/health HTTP/1.1", "X-Big: " + "b" * 9000), 400),
    ("many-headers", req("GET /api/health HTTP/1.1",
                         *[f"X-H{i}: {i}" for i in range(120)]), 400),
    ("expect", req("POST /api/vps/sync HTTP/1.1", "Expect: 200-maybe", "Content-Length: 2",
                   body=b"{}"), 417),
    ("bad-chunk", req("POST /api/vps/sync HTTP/1.1", "Content-Type: application/json",
                      "X-API-Key: {key}", "Transfer-Encoding: chunked",
                      body=b"zz\r\n{}\r\n0\r\n\r\n"), 400),
    ("header-no-colon", req("GET /api/health HTTP/1.1", "NoColonHere"), 400),
    ("bad-version", req("GET /api/health HTTP/1.x"), 400),
    ("ctl-in-uri", b"GET /api/he\x01alth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("both-lengths", req("POST /api/vps/sync HTTP/1.1", "Content-Type: application/json",
                         "X-API-Key: {key}", "Content-Length: 2", "Transfer-Encoding: chunked",
                         body=b"2\r\n{}\r\n0\r\n\r\n"), 400),
]


@pytest.mark.parametrize("name,data,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_httpd_errors_under_api_are_json(apache, name, data, status, allow_log):
    allow_log(r"AH10244: invalid URI path")          # httpd logs a bad escape at error
    got, headers, body = raw(apache, data.replace(b"{key}", apache.sync_key.encode()))
    assert got == status, (got, headers, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200])
    doc = json.loads(body)
    assert set(doc) <= {"error", "fields"} and isinstance(doc["error"], str) and doc["error"], doc
    assert int(headers["content-length"]) == len(body), headers


def test_head_request_errors_are_json_too(apache):
    got, headers, body = raw(apache, req("HEAD /api/vps/1%2f2 HTTP/1.1"))
    assert got == 404 and headers["content-type"].startswith("application/json"), headers
    assert body == b""


def test_other_paths_keep_httpds_pages(apache):
    got, headers, body = raw(apache, req("GET /nowhere/1%2f2 HTTP/1.1"))
    assert got == 404 and headers["content-type"].startswith("text/html"), headers
