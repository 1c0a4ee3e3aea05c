#!/usr/bin/env python3
"""Drives a running keyward with PyKMIP's client: a key's whole life.

Usage: pykmip_lifecycle.py HOST PORT CLIENT_CERT CLIENT_KEY CA_CERT [KMIP_VERSION]
Prints one line per step and exits non-zero on the first failure.
"""
import sys

import pykmip_compat  # noqa: F401  (PyKMIP on Python 3.12+; beside this file)

from kmip import enums
from kmip.pie import client as pie_client
from kmip.pie import exceptions as pie_exceptions
from kmip.core.factories import attributes as attr_factory


def step(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + str(detail) if detail else ""), flush=True)
    if not ok:
        sys.exit(1)


def main():
    host, port, cert, key, ca = sys.argv[1:6]
    version = sys.argv[6] if len(sys.argv) > 6 else "1.2"
    kmip_version = {
        "1.0": enums.KMIPVersion.KMIP_1_0, "1.1": enums.KMIPVersion.KMIP_1_1,
        "1.2": enums.KMIPVersion.KMIP_1_2, "1.3": enums.KMIPVersion.KMIP_1_3,
        "1.4": enums.KMIPVersion.KMIP_1_4, "2.0": enums.KMIPVersion.KMIP_2_0,
    }[version]
    c = pie_client.ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca,
        config_file="/dev/null", kmip_version=kmip_version)
    with c:
        name = "pykmip-interop-" + version
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                       cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                 enums.CryptographicUsageMask.DECRYPT])
        step("create", bool(uid), uid)

        key_obj = c.get(uid)
        step("get returns 32 bytes of AES key", len(key_obj.value) == 32
             and key_obj.cryptographic_algorithm == enums.CryptographicAlgorithm.AES,
             key_obj.cryptographic_length)

        state = c.get_attributes(uid, ["State"])[1]
        step("new key is Pre-Active", state[0].attribute_value.value == enums.State.PRE_ACTIVE, state[0].attribute_value)

        # Every attribute, as tools built on PyKMIP read them: PyKMIP parses no
        # custom attribute but x- ones, so keyward's own y- bookkeeping must not
        # be in the answer (it failed with "No value type for Y-CREATED-BY").
        if version.startswith("1."):
            every = c.get_attributes(uid)[1]
            names = sorted(a.attribute_name.value for a in every)
            step("get_attributes with no names reads every attribute",
                 "Cryptographic Algorithm" in names and "State" in names
                 and not any(n.lower().startswith("y-") for n in names), names)
            listed = c.get_attribute_list(uid)
            step("get_attribute_list names the same attributes", sorted(set(listed)) == sorted(set(names)), listed)
        else:
            # PyKMIP 0.11 reads a 2.x Attributes structure only for the
            # attributes its factory knows, which leave out KMIP's Original
            # Creation Date: ask by name.
            asked = ["Cryptographic Algorithm", "Cryptographic Length", "Name", "State"]
            got = c.get_attributes(uid, asked)[1]
            names = sorted(a.attribute_name.value for a in got)
            step("get_attributes by name reads them (2.x Attributes structure)", names == sorted(asked), names)

        c.activate(uid)
        state = c.get_attributes(uid, ["State"])[1]
        step("activate -> Active", state[0].attribute_value.value == enums.State.ACTIVE)

        again = c.get(uid)
        step("get again returns the same bytes", again.value == key_obj.value)

        # Server-side encryption (KMIP Encrypt/Decrypt): AES-CBC with PKCS#5
        # padding, checked against the `cryptography` package with the key's bytes.
        from cryptography.hazmat.primitives import padding as sym_padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        cbc = {"block_cipher_mode": enums.BlockCipherMode.CBC,
               "padding_method": enums.PaddingMethod.PKCS5,
               "cryptographic_algorithm": enums.CryptographicAlgorithm.AES}
        iv = bytes(range(16))
        plain = b"keyward encrypts for clients that never take the key out"
        sealed, made_iv = c.encrypt(plain, uid=uid, cryptographic_parameters=cbc, iv_counter_nonce=iv)
        padder = sym_padding.PKCS7(128).padder()
        local = Cipher(algorithms.AES(bytes(key_obj.value)), modes.CBC(iv)).encryptor()
        expected = local.update(padder.update(plain) + padder.finalize()) + local.finalize()
        step("encrypt (CBC, PKCS5) gives what AES-CBC gives", sealed == expected and made_iv is None, len(sealed))
        opened = c.decrypt(sealed, uid=uid, cryptographic_parameters=cbc, iv_counter_nonce=iv)
        step("decrypt gives the plaintext back", opened == plain)
        sealed, made_iv = c.encrypt(plain, uid=uid, cryptographic_parameters=dict(cbc, random_iv=True))
        step("encrypt without an IV returns the IV the server made", made_iv is not None and len(made_iv) == 16)
        opened = c.decrypt(sealed, uid=uid, cryptographic_parameters=cbc, iv_counter_nonce=made_iv)
        step("decrypt with that IV gives the plaintext back", opened == plain)

        # MAC with an HMAC key made by the server, checked with Python's hmac.
        import hashlib
        import hmac as py_hmac
        mac_uid = c.create(enums.CryptographicAlgorithm.HMAC_SHA256, 256,
                           cryptographic_usage_mask=[enums.CryptographicUsageMask.MAC_GENERATE,
                                                     enums.CryptographicUsageMask.MAC_VERIFY])
        c.activate(mac_uid)
        mac_key = bytes(c.get(mac_uid).value)
        _, mac = c.mac(plain, uid=mac_uid, algorithm=enums.CryptographicAlgorithm.HMAC_SHA256)
        step("mac (HMAC-SHA256) gives what HMAC-SHA256 gives",
             mac == py_hmac.new(mac_key, plain, hashlib.sha256).digest(), len(mac))
        c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, mac_uid)
        c.destroy(mac_uid)

        found = c.locate(attributes=[attr_factory.AttributeFactory().create_attribute(
            enums.AttributeType.NAME, name)])
        step("locate by name finds it", uid in found, found)

        other = c.create(enums.CryptographicAlgorithm.AES, 128)
        found = c.locate(attributes=[attr_factory.AttributeFactory().create_attribute(
            enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY)])
        step("locate by object type finds both", uid in found and other in found, len(found))

        try:
            c.destroy(uid)
            step("destroy of an active key is refused", False)
        except pie_exceptions.KmipOperationFailure as e:
            step("destroy of an active key is refused", e.reason == enums.ResultReason.PERMISSION_DENIED
                 or e.reason == enums.ResultReason.WRONG_KEY_LIFECYCLE_STATE, e.reason)

        c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid, "retired by interop test")
        state = c.get_attributes(uid, ["State"])[1]
        step("revoke -> Deactivated", state[0].attribute_value.value == enums.State.DEACTIVATED)

        c.destroy(uid)
        state = c.get_attributes(uid, ["State"])[1]
        step("destroy -> Destroyed (metadata kept)", state[0].attribute_value.value == enums.State.DESTROYED)
        try:
            c.get(uid)
            step("get of a destroyed key fails", False)
        except pie_exceptions.KmipOperationFailure as e:
            step("get of a destroyed key fails", True, e.reason)

        c.destroy(other)
        try:
            c.get("no-such-key")
            step("get of an unknown id fails with Item Not Found", False)
        except pie_exceptions.KmipOperationFailure as e:
            # KMIP 2.x renamed the reason Object Not Found.
            missing = (enums.ResultReason.ITEM_NOT_FOUND if version.startswith("1.")
                       else enums.ResultReason.OBJECT_NOT_FOUND)
            step("get of an unknown id fails with Item (Object) Not Found", e.reason == missing, e.reason)
    print("pykmip lifecycle: all steps passed")


if __name__ == "__main__":
    main()
