#!/usr/bin/env python3
"""Discover Versions + Create + Get over mutual TLS, as vCenter's first steps do.

Usage: kmip_smoke.py HOST PORT CLIENT_CERT CLIENT_KEY CA_CERT
Prints one line per step and exits non-zero on the first failure (used by image/test).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "interop"))
import pykmip_compat  # noqa: E402,F401  (PyKMIP on Python 3.12+)

from kmip import enums  # noqa: E402
from kmip.pie import client as pie_client  # noqa: E402


def step(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + str(detail) if detail else ""), flush=True)
    if not ok:
        sys.exit(1)


def client(host, port, cert, key, ca):
    """A PyKMIP client speaking KMIP 1.1, as every vCenter request does; the
    server's certificate must chain to CA."""
    return pie_client.ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca,
        config_file="/dev/null", kmip_version=enums.KMIPVersion.KMIP_1_1)


def main():
    host, port, cert, key, ca = sys.argv[1:6]
    with client(host, port, cert, key, ca) as c:
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
