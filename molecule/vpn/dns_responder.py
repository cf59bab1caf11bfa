"""A tiny DNS responder and a one-shot DNS query, for the vpn scenario's step g and h (test only).

    python3 dns_responder.py serve ADDRESS          answer every A query on ADDRESS:53 (UDP and TCP)
    python3 dns_responder.py query SERVER NAME [tcp]  ask SERVER:53 once; print "NAME ADDRESS", exit 0,
                                                     or "no answer: <reason>", exit 1

The responder runs inside the test host's own network namespace (behind a bridge, at a private
address); the query runs on the test host or inside one of its Docker containers. The answer is
TEST-NET-1's 192.0.2.53 for every name: nothing real is looked up or contacted. Standard library
only, so it runs in the fixture images as they are.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

ANSWER = "192.0.2.53"
PORT = 53
TIMEOUT = 3  # seconds: a dropped query fails quickly (a bound, not a timing claim)
QUERY_ID = 0x1C53


def build_query(name: str) -> bytes:
    # Header: id, flags (recursion desired), 1 question; then QNAME, QTYPE A, QCLASS IN.
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.strip(".").split("."))
    return struct.pack("!HHHHHH", QUERY_ID, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def build_answer(query: bytes) -> bytes:
    (qid,) = struct.unpack("!H", query[:2])
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    # The question as asked (one question, nothing after it), then one A record pointing at it.
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ANSWER)
    return header + query[12:] + record


def read_exact(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def serve_tcp(listener: socket.socket) -> None:
    while True:
        conn, _peer = listener.accept()
        with conn:
            try:
                (length,) = struct.unpack("!H", read_exact(conn, 2))
                reply = build_answer(read_exact(conn, length))
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, struct.error):
                continue


def serve(address: str) -> int:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, PORT))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, PORT))
    tcp.listen(8)
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print(f"answering on {address}:{PORT}", flush=True)
    while True:
        query, peer = udp.recvfrom(512)
        if len(query) > 12:
            udp.sendto(build_answer(query), peer)


def query(server: str, name: str, tcp: bool) -> int:
    request = build_query(name)
    try:
        if tcp:
            with socket.create_connection((server, PORT), timeout=TIMEOUT) as conn:
                conn.sendall(struct.pack("!H", len(request)) + request)
                (length,) = struct.unpack("!H", read_exact(conn, 2))
                reply = read_exact(conn, length)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendto(request, (server, PORT))
                reply, _peer = sock.recvfrom(512)
    except OSError as exc:
        print(f"no answer: {type(exc).__name__} {exc}")
        return 1
    qid, _flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
    if qid != QUERY_ID or ancount < 1:
        print(f"no answer: unexpected reply {reply!r}")
        return 1
    print(name, socket.inet_ntoa(reply[-4:]))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        return serve(argv[1])
    if len(argv) in (3, 4) and argv[0] == "query":
        return query(argv[1], argv[2], argv[3:] == ["tcp"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
