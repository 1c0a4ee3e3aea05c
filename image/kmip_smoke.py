#!/usr/bin/env python3
"""Discover Versions + Create + Get over mutual TLS, as vCenter's first steps do.

Usage: kmip_smoke.py HOST PORT CLIENT_CERT CLIENT_KEY CA_CERT
Prints one line per step and exits non-zero on the first failure (used by image/test).
"""
import ssl
import sys

# PyKMIP 0.11 still calls ssl.wrap_socket, which Python 3.12 removed.
if not hasattr(ssl, "wrap_socket"):
    def _wrap_socket(sock, keyfile=None, certfile=None, server_side=False,
                     cert_reqs=ssl.CERT_NONE, ssl_version=None, ca_certs=None,
                     do_handshake_on_connect=True, suppress_ragged_eofs=True, **_):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = cert_reqs
        if ca_certs:
            ctx.load_verify_locations(ca_certs)
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        return ctx.wrap_socket(sock, server_side=server_side,
                               do_handshake_on_connect=do_handshake_on_connect,
                               suppress_ragged_eofs=suppress_ragged_eofs)
    ssl.wrap_socket = _wrap_socket

from kmip import enums  # noqa: E402
from kmip.pie import client as pie_client  # noqa: E402


def step(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + str(detail) if detail else ""), flush=True)
    if not ok:
        sys.exit(1)


def main():
    host, port, cert, key, ca = sys.argv[1:6]
    # KMIP 1.1, as every vCenter request is; the server's certificate must chain to CA.
    c = pie_client.ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca,
        config_file="/dev/null", kmip_version=enums.KMIPVersion.KMIP_1_1)
    with c:
        result = c.proxy.discover_versions()
        versions = ["%d.%d" % (v.major, v.minor) for v in (result.protocol_versions or [])]
        step("discover versions lists 1.1",
             result.result_status.value == enums.ResultStatus.SUCCESS and "1.1" in versions,
             ", ".join(versions))
        uid = c.create(enums.CryptographicAlgorithm.AES, 256,
                       cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                 enums.CryptographicUsageMask.DECRYPT])
        step("create AES-256", bool(uid), uid)
        got = c.get(uid)
        step("get returns 32 bytes of AES key",
             len(got.value) == 32 and got.cryptographic_algorithm == enums.CryptographicAlgorithm.AES,
             "%d bits" % got.cryptographic_length)


if __name__ == "__main__":
    main()
