#!/usr/bin/env python3
"""A syslog-over-TLS receiver (RFC 5425 octet-counted framing) for image/test.

Usage: syslog_receiver.py PORT CERT KEY OUT
Listens on 127.0.0.1:PORT only (QEMU's user network brings the guest's connections
to 10.0.2.2 here), presents CERT/KEY, and appends every message it receives, one per
line, to OUT. Runs until killed.
"""
import socket
import ssl
import sys
import threading


def frames(tls):
    """Yields the messages of an octet-counted stream: "LEN SP MSG" repeated."""
    buf = b""
    while True:
        chunk = tls.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b" " in buf:
            length, rest = buf.split(b" ", 1)
            if not length.isdigit():
                raise ValueError("not octet-counted framing: %r" % buf[:40])
            n = int(length)
            if len(rest) < n:
                break
            yield rest[:n]
            buf = rest[n:]


def serve(conn, ctx, out, lock):
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            for message in frames(tls):
                line = message.decode("utf-8", "replace").replace("\n", " ")
                with lock, open(out, "a") as f:
                    f.write(line + "\n")
    except (OSError, ValueError) as e:
        with lock, open(out + ".errors", "a") as f:
            f.write("%s\n" % e)


def main():
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lock = threading.Lock()
    with socket.create_server(("127.0.0.1", port)) as server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn, ctx, out, lock), daemon=True).start()


if __name__ == "__main__":
    main()
