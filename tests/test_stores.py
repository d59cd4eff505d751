"""Key and trust stores (gateway_runtime.tls.stores): PEM, PKCS12 and JKS stores built here from a
throw-away CA, checked, turned into PEM files and used for an in-memory mutual-TLS handshake."""

import os
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import jks
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway_runtime.settings import SettingsError
from gateway_runtime.tls.stores import (
    TlsFiles,
    check_key_store,
    check_trust_store,
    materialise,
)
from support.pki import PEM, STORE_PW, b64

KEY_PW = "key-secret-2"
WRONG_PW = "wrong-secret-3"


@pytest.fixture
def certs_dir(tmp_path, monkeypatch):
    base = tmp_path / "certs"
    base.mkdir()
    monkeypatch.setenv("GATEHOUSE_CERTS_DIR", str(base))
    return base


def write(certs_dir, name, data):
    path = certs_dir / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ----------------------------------------------------------------- good stores

TRUST_STORES = {
    "pem-location": lambda m, d: {"type": "PEM", "location": write(d, "ca.pem", m.ca_pem).name},
    "pem-absolute-location": lambda m, d: {"type": "PEM", "location": str(write(d, "ca.pem", m.ca_pem))},
    "pem-content": lambda m, d: {"type": "PEM", "certificates": m.ca_pem},
    "pkcs12-location": lambda m, d: {
        "type": "PKCS12",
        "password": STORE_PW,
        "location": write(d, "trust.p12", m.p12_truststore()).name,
    },
    "pkcs12-content": lambda m, d: {"type": "PKCS12", "password": STORE_PW, "certificates": b64(m.p12_truststore())},
    "pkcs12-no-password": lambda m, d: {"type": "PKCS12", "certificates": b64(m.p12_truststore(None))},
    "jks-location": lambda m, d: {
        "type": "JKS",
        "password": STORE_PW,
        "location": write(d, "trust.jks", m.jks_truststore()).name,
    },
    "jks-content": lambda m, d: {"type": "JKS", "password": STORE_PW, "certificates": b64(m.jks_truststore())},
    # Kafka: without a password a trust store is still used, without the integrity check.
    "jks-no-password": lambda m, d: {"type": "JKS", "certificates": b64(m.jks_truststore())},
    # Java 9+ reads PKCS12 content under type JKS (and the reverse).
    "jks-type-pkcs12-content": lambda m, d: {
        "type": "JKS",
        "password": STORE_PW,
        "certificates": b64(m.p12_truststore()),
    },
}

KEY_STORES = {  # name -> (store, key file expected encrypted)
    "pem-location": (
        lambda m, d: {
            "type": "PEM",
            "certificateChain": m.chain_pem,
            "location": write(d, "client.key", m.key_pem()).name,
        },
        False,
    ),
    "pem-location-encrypted": (
        lambda m, d: {
            "type": "PEM",
            "certificateChain": m.chain_pem,
            "keyPassword": KEY_PW,
            "location": write(d, "client.key", m.key_pem(KEY_PW)).name,
        },
        True,
    ),
    # Kafka's own PEM key store file: private key and certificate chain together.
    "pem-location-key-and-chain": (
        lambda m, d: {"type": "PEM", "location": write(d, "client.pem", m.key_pem() + m.chain_pem).name},
        False,
    ),
    "pem-content": (lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.key_pem()}, False),
    "pem-content-encrypted": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.key_pem(KEY_PW), "keyPassword": KEY_PW},
        True,
    ),
    "pem-rsa-traditional-encrypted": (
        lambda m, d: {
            "type": "PEM",
            "keyPassword": KEY_PW,
            "certificateChain": (m.rsa_cert.public_bytes(PEM) + m.ca.public_bytes(PEM)).decode(),
            "key": m.key_pem(KEY_PW, m.rsa_key, serialization.PrivateFormat.TraditionalOpenSSL),
        },
        True,
    ),
    "pkcs12-location": (
        lambda m, d: {
            "type": "PKCS12",
            "password": STORE_PW,
            "location": write(d, "client.p12", m.p12_keystore()).name,
        },
        True,
    ),
    "pkcs12-content": (
        lambda m, d: {"type": "PKCS12", "key": b64(m.p12_keystore()), "password": STORE_PW, "keyPassword": STORE_PW},
        True,
    ),
    "jks-location": (
        lambda m, d: {"type": "JKS", "password": STORE_PW, "location": write(d, "client.jks", m.jks_keystore()).name},
        True,
    ),
    "jks-content": (lambda m, d: {"type": "JKS", "key": b64(m.jks_keystore()), "password": STORE_PW}, True),
    "jks-own-key-password": (
        lambda m, d: {"type": "JKS", "key": b64(m.jks_keystore(KEY_PW)), "password": STORE_PW, "keyPassword": KEY_PW},
        True,
    ),
}


def assert_private(tls):
    assert stat.S_IMODE(os.stat(tls.directory).st_mode) == 0o700
    for path in (tls.cafile, tls.certfile, tls.keyfile):
        if path:
            assert os.path.dirname(path) == tls.directory
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("kind", TRUST_STORES)
def test_trust_store_passes_and_materialises(kind, material, certs_dir):
    store = TRUST_STORES[kind](material, certs_dir)
    assert check_trust_store(store) == {}
    with materialise(store, None) as tls:
        assert_private(tls)
        assert tls.certfile is tls.keyfile is tls.key_password is None
        assert x509.load_pem_x509_certificates(Path(tls.cafile).read_bytes()) == [material.ca]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=tls.cafile)
        assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "Gatehouse Test CA"),),)]
        files = [tls.cafile]
    assert not any(os.path.exists(p) for p in files) and not os.path.exists(tls.directory)


@pytest.mark.parametrize("kind", KEY_STORES)
def test_key_store_passes_and_materialises(kind, material, certs_dir):
    make, encrypted = KEY_STORES[kind]
    store = make(material, certs_dir)
    assert check_key_store(store) == {}
    tls = materialise({"type": "PEM", "certificates": material.ca_pem}, store)
    try:
        assert_private(tls)
        key_text = Path(tls.keyfile).read_text()
        assert ("ENCRYPTED PRIVATE KEY" in key_text) == encrypted == (tls.key_password is not None)
        chain = x509.load_pem_x509_certificates(Path(tls.certfile).read_bytes())
        assert chain[-1] == material.ca and len(chain) == 2
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=tls.cafile)
        context.load_cert_chain(tls.certfile, tls.keyfile, password=tls.key_password)
        assert isinstance(tls.ssl_context(), ssl.SSLContext)
    finally:
        tls.close()
    assert not os.path.exists(tls.directory)


@pytest.mark.parametrize("store", [None, {}, {"type": "NONE"}, {"type": "NONE", "location": "ignored.pem"}])
def test_none_stores(store, certs_dir):
    assert check_trust_store(store) == {} and check_key_store(store) == {}
    with materialise(store, store) as tls:
        assert tls.cafile is tls.certfile is tls.keyfile is tls.key_password is None
        context = tls.ssl_context()  # the system's CAs
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def handshake(client_context, server_context, hostname="broker.test"):
    """A TLS handshake through memory BIOs (no sockets); returns the server's view of the client."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return server.getpeercert()
    raise AssertionError("handshake did not finish")


@pytest.fixture
def server_context(material, certs_dir):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key = write(certs_dir, "server.key", material.key_pem(key=material.server_key))
    cert = write(certs_dir, "server.pem", material.server_cert.public_bytes(PEM))
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cadata=material.ca_pem)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS
    return context


@pytest.mark.parametrize(
    "trust, key",
    [
        ("pem-content", "pem-content-encrypted"),
        ("pkcs12-content", "pkcs12-location"),
        ("jks-location", "jks-own-key-password"),
    ],
)
def test_mutual_tls_handshake(trust, key, material, certs_dir, server_context):
    with materialise(TRUST_STORES[trust](material, certs_dir), KEY_STORES[key][0](material, certs_dir)) as tls:
        context = tls.ssl_context()
    # The context keeps what it loaded: the files may be gone.
    peer = handshake(context, server_context)
    assert dict(x[0] for x in peer["subject"])["commonName"] == "client"


def test_hostname_verification_can_be_switched_off(material, certs_dir, server_context):
    key_store = KEY_STORES["pem-content"][0](material, certs_dir)
    with materialise({"type": "PEM", "certificates": material.ca_pem}, key_store) as tls:
        strict, lenient = tls.ssl_context(), tls.ssl_context(check_hostname=False)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(strict, server_context, hostname="elsewhere.test")
    handshake(lenient, server_context, hostname="elsewhere.test")
    assert lenient.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified


def test_close_is_idempotent_and_context_needs_open_files(material, certs_dir):
    tls = materialise({"type": "PEM", "certificates": material.ca_pem}, None)
    assert isinstance(tls, TlsFiles) and not tls.closed
    tls.close()
    tls.close()
    assert tls.closed and not os.path.exists(tls.directory)
    with pytest.raises(ValueError, match="closed"):
        tls.ssl_context()


def test_materialise_refuses_bad_stores_with_prefixed_fields(material, certs_dir):
    with pytest.raises(SettingsError) as caught:
        materialise({"type": "PEM", "certificates": "nope"}, {"type": "JKS", "key": b64(material.jks_keystore())})
    assert set(caught.value.errors) == {"trustStore.certificates", "keyStore.password"}
    with pytest.raises(SettingsError) as caught:
        materialise({"type": "PEM"}, None)
    assert set(caught.value.errors) == {"trustStore"}


# ----------------------------------------------------------------- problems


def truncated(data):
    return data[: len(data) // 2]


TRUST_PROBLEMS = {  # name -> (store, field, words in the message)
    "both": (
        lambda m, d: {"type": "PEM", "location": write(d, "ca.pem", m.ca_pem).name, "certificates": m.ca_pem},
        "",
        "give either a location or the certificates, not both",
    ),
    "neither": (lambda m, d: {"type": "PKCS12", "password": STORE_PW}, "", "give either a location"),
    "bad-type": (lambda m, d: {"type": "P12", "certificates": "x"}, "type", "must be one of NONE, PEM, JKS, PKCS12"),
    "no-type": (lambda m, d: {"certificates": m.ca_pem}, "type", "choose the store type"),
    "outside-relative": (
        lambda m, d: {"type": "PEM", "location": "../outside.pem"},
        "location",
        "must lie under GATEHOUSE_CERTS_DIR",
    ),
    "outside-absolute": (
        lambda m, d: {"type": "PEM", "location": "/etc/hostname"},
        "location",
        "must lie under GATEHOUSE_CERTS_DIR",
    ),
    "missing-file": (lambda m, d: {"type": "PEM", "location": "absent.pem"}, "location", "no readable file at"),
    "directory": (lambda m, d: {"type": "PEM", "location": "."}, "location", "no readable file at"),
    "pem-not-certs": (
        lambda m, d: {"type": "PEM", "certificates": m.key_pem()},
        "certificates",
        "not PEM certificates",
    ),
    "pem-damaged": (
        lambda m, d: {"type": "PEM", "certificates": m.ca_pem[:60] + "!!" + m.ca_pem[62:]},
        "certificates",
        "does not parse",
    ),
    "pem-file-not-certs": (
        lambda m, d: {"type": "PEM", "location": write(d, "x.pem", "hello").name},
        "location",
        "not PEM certificates",
    ),
    "pkcs12-wrong-password": (
        lambda m, d: {"type": "PKCS12", "password": WRONG_PW, "certificates": b64(m.p12_truststore())},
        "password",
        "the PKCS12 store does not open with this password",
    ),
    "pkcs12-needs-password": (
        lambda m, d: {"type": "PKCS12", "certificates": b64(m.p12_truststore())},
        "password",
        "give its password",
    ),
    "pkcs12-truncated": (
        lambda m, d: {
            "type": "PKCS12",
            "password": STORE_PW,
            "location": write(d, "t.p12", truncated(m.p12_truststore())).name,
        },
        "location",
        "not a JKS or PKCS12 store",
    ),
    "not-base64": (
        lambda m, d: {"type": "PKCS12", "password": STORE_PW, "certificates": "*not base64*"},
        "certificates",
        "not base64",
    ),
    "pem-as-jks": (lambda m, d: {"type": "JKS", "certificates": m.ca_pem}, "certificates", "set the type to PEM"),
    "pem-file-as-pkcs12": (
        lambda m, d: {"type": "PKCS12", "location": write(d, "ca.pem", m.ca_pem).name},
        "location",
        "set the type to PEM",
    ),
    "jks-wrong-password": (
        lambda m, d: {"type": "JKS", "password": WRONG_PW, "certificates": b64(m.jks_truststore())},
        "password",
        "the JKS store does not open with this password",
    ),
    "jks-truncated": (
        lambda m, d: {"type": "JKS", "password": STORE_PW, "certificates": b64(truncated(m.jks_truststore()))},
        "certificates",
        "the JKS store does not parse",
    ),
    "jks-empty": (
        lambda m, d: {
            "type": "JKS",
            "password": STORE_PW,
            "certificates": b64(jks.KeyStore.new("jks", []).saves(STORE_PW)),
        },
        "certificates",
        "holds no certificates",
    ),
}


KEY_PROBLEMS = {
    "pem-both": (
        lambda m, d: {
            "type": "PEM",
            "certificateChain": m.chain_pem,
            "key": m.key_pem(),
            "location": write(d, "k.pem", m.key_pem()).name,
        },
        "",
        "give either a location or the private key (key), not both",
    ),
    "pem-no-key": (lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem}, "", "give either a location"),
    "pem-no-chain": (
        lambda m, d: {"type": "PEM", "key": m.key_pem()},
        "certificateChain",
        "give the client certificate chain",
    ),
    "pem-bad-chain": (
        lambda m, d: {"type": "PEM", "certificateChain": "chain", "key": m.key_pem()},
        "certificateChain",
        "not PEM certificates",
    ),
    "pem-not-a-key": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.ca_pem},
        "key",
        "not a PEM private key",
    ),
    "pem-key-damaged": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.key_pem().replace("\n", "\nAA", 2)},
        "key",
        "does not parse",
    ),
    "pem-needs-key-password": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.key_pem(KEY_PW)},
        "keyPassword",
        "the private key is encrypted",
    ),
    "pem-wrong-key-password": (
        lambda m, d: {
            "type": "PEM",
            "certificateChain": m.chain_pem,
            "key": m.key_pem(KEY_PW),
            "keyPassword": WRONG_PW,
        },
        "keyPassword",
        "does not decrypt with this key password",
    ),
    "pem-key-not-for-chain": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "key": m.key_pem(key=m.other_key)},
        "certificateChain",
        "does not belong to the private key",
    ),
    "pem-outside": (
        lambda m, d: {"type": "PEM", "certificateChain": m.chain_pem, "location": "/etc/ssl/key.pem"},
        "location",
        "must lie under GATEHOUSE_CERTS_DIR",
    ),
    "pkcs12-no-password": (
        lambda m, d: {"type": "PKCS12", "key": b64(m.p12_keystore())},
        "password",
        "give the key store's password",
    ),
    "pkcs12-wrong-password": (
        lambda m, d: {"type": "PKCS12", "key": b64(m.p12_keystore()), "password": WRONG_PW, "keyPassword": WRONG_PW},
        "password",
        "the PKCS12 store does not open with this password",
    ),
    "pkcs12-trust-only": (
        lambda m, d: {"type": "PKCS12", "key": b64(m.p12_truststore()), "password": STORE_PW},
        "key",
        "the PKCS12 store holds no private key",
    ),
    "pkcs12-missing-file": (
        lambda m, d: {"type": "PKCS12", "location": "client.p12", "password": STORE_PW},
        "location",
        "no readable file at",
    ),
    "pkcs12-both": (
        lambda m, d: {
            "type": "PKCS12",
            "location": write(d, "c.p12", m.p12_keystore()).name,
            "key": b64(m.p12_keystore()),
            "password": STORE_PW,
        },
        "",
        "not both",
    ),
    "jks-wrong-password": (
        lambda m, d: {"type": "JKS", "location": write(d, "c.jks", m.jks_keystore()).name, "password": WRONG_PW},
        "password",
        "the JKS store does not open with this password",
    ),
    "jks-needs-key-password": (
        lambda m, d: {"type": "JKS", "key": b64(m.jks_keystore(KEY_PW)), "password": STORE_PW},
        "keyPassword",
        "has its own password",
    ),
    "jks-wrong-key-password": (
        lambda m, d: {"type": "JKS", "key": b64(m.jks_keystore(KEY_PW)), "password": STORE_PW, "keyPassword": WRONG_PW},
        "keyPassword",
        "does not decrypt with this key password",
    ),
    "jks-trust-only": (
        lambda m, d: {"type": "JKS", "key": b64(m.jks_truststore()), "password": STORE_PW},
        "key",
        "the JKS store holds no private key",
    ),
    "jks-corrupted": (
        lambda m, d: {"type": "JKS", "key": b64(truncated(m.jks_keystore())), "password": STORE_PW},
        "key",
        "the JKS store does not parse",
    ),
}


def assert_problem(errors, field, words):
    assert list(errors) == [field], errors
    assert words in errors[field]
    for secret in (STORE_PW, KEY_PW, WRONG_PW):
        assert secret not in errors[field]


@pytest.mark.parametrize("kind", TRUST_PROBLEMS)
def test_trust_store_problem(kind, material, certs_dir):
    make, field, words = TRUST_PROBLEMS[kind]
    assert_problem(check_trust_store(make(material, certs_dir)), field, words)


@pytest.mark.parametrize("kind", KEY_PROBLEMS)
def test_key_store_problem(kind, material, certs_dir):
    make, field, words = KEY_PROBLEMS[kind]
    assert_problem(check_key_store(make(material, certs_dir)), field, words)


def test_every_independent_problem_is_reported(material, certs_dir):
    errors = check_key_store({"type": "PEM", "certificateChain": "not a chain", "key": material.key_pem(KEY_PW)})
    assert set(errors) == {"certificateChain", "keyPassword"}
    errors = check_key_store({"type": "PKCS12", "location": "absent.p12"})
    assert set(errors) == {"location", "password"}


def test_paths_are_refused_without_certs_dir(material, monkeypatch):
    monkeypatch.delenv("GATEHOUSE_CERTS_DIR", raising=False)
    errors = check_trust_store({"type": "PEM", "location": "ca.pem"})
    assert "set GATEHOUSE_CERTS_DIR" in errors["location"]
    assert check_trust_store({"type": "PEM", "certificates": material.ca_pem}) == {}


def test_symlink_out_of_the_certs_dir_is_refused(material, certs_dir, tmp_path):
    outside = write(tmp_path, "outside.pem", material.ca_pem)
    (certs_dir / "link.pem").symlink_to(outside)
    assert "must lie under" in check_trust_store({"type": "PEM", "location": "link.pem"})["location"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(material, certs_dir):
    path = write(certs_dir, "ca.pem", material.ca_pem)
    path.chmod(0)
    assert "no readable file" in check_trust_store({"type": "PEM", "location": "ca.pem"})["location"]


# ----------------------------------------------------------------- stores made by Java's keytool


@pytest.mark.skipif(shutil.which("keytool") is None, reason="needs Java's keytool")
def test_keytool_stores(material, certs_dir):
    """A JKS key store converted by keytool and a PKCS12 trust store it wrote (Java's own formats)."""
    write(certs_dir, "client.p12", material.p12_keystore())
    write(certs_dir, "ca.pem", material.ca_pem)
    keytool = ["keytool", "-J-Xshare:auto", "-J-XX:TieredStopAtLevel=1", "-noprompt"]
    subprocess.run(
        keytool
        + [
            "-importkeystore",
            "-srckeystore",
            "client.p12",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            STORE_PW,
            "-destkeystore",
            "client.jks",
            "-deststoretype",
            "JKS",
            "-deststorepass",
            STORE_PW,
        ],
        cwd=certs_dir,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        keytool
        + [
            "-importcert",
            "-alias",
            "ca",
            "-file",
            "ca.pem",
            "-keystore",
            "trust.p12",
            "-storetype",
            "PKCS12",
            "-storepass",
            STORE_PW,
        ],
        cwd=certs_dir,
        check=True,
        capture_output=True,
    )
    assert (certs_dir / "client.jks").read_bytes()[:4] == b"\xfe\xed\xfe\xed"
    trust = {"type": "PKCS12", "location": "trust.p12", "password": STORE_PW}
    key = {"type": "JKS", "location": "client.jks", "password": STORE_PW}
    assert check_trust_store(trust) == {} and check_key_store(key) == {}
    with materialise(trust, key) as tls:
        context = tls.ssl_context()
        context.load_cert_chain(tls.certfile, tls.keyfile, password=tls.key_password)
        assert len(context.get_ca_certs()) == 1
    assert check_trust_store(dict(trust, password=WRONG_PW)) == {
        "password": "the PKCS12 store does not open with this password: check the password "
        "(and that the file is intact)"
    }
