#!/usr/bin/env python3
"""Creates AES-256 keys over KMIP and records them, or checks recorded keys are unchanged.

Usage: kmip_keys.py HOST PORT CLIENT_CERT CLIENT_KEY CA_CERT create N FILE
       kmip_keys.py HOST PORT CLIENT_CERT CLIENT_KEY CA_CERT check FILE
`create` writes one "uid hex-of-the-key" line per key it made and got back; `check`
Gets each and fails unless every key is there with the same bytes (used by image/test
across a reboot and by image/upgrade-test across an upgrade).
"""
import sys

from kmip_smoke import client  # this folder is on the path; it sets PyKMIP up

from kmip import enums  # noqa: E402


def main():
    host, port, cert, key, ca, mode = sys.argv[1:7]
    with client(host, port, cert, key, ca) as c:
        if mode == "create":
            count, path = int(sys.argv[7]), sys.argv[8]
            with open(path, "w") as out:
                for _ in range(count):
                    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
                    out.write("%s %s\n" % (uid, c.get(uid).value.hex()))
            print("created %d keys" % count)
        elif mode == "check":
            lines = [line.split() for line in open(sys.argv[7]) if line.strip()]
            for uid, value in lines:
                got = c.get(uid).value.hex()
                if got != value:
                    sys.exit("key %s changed: %s != %s" % (uid, got, value))
            print("all %d keys read back unchanged" % len(lines))
        else:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
