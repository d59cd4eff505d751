"""Key and trust stores as a Kafka endpoint's `security.ssl` describes them (Gravitee's names),
checked for the portal and turned into PEM files a Python TLS client can use.

    trust store  {"type": "NONE" | "PEM" | "JKS" | "PKCS12",
                  "location": path | "certificates": content, "password": (JKS / PKCS12)}
    key store    PEM:          "certificateChain" (PEM) + "location" (PEM private key file)
                               or "certificateChain" + "key" (PEM) [+ "keyPassword"]
                               ("certificateChainLocation", a PEM file, instead of "certificateChain")
                 JKS / PKCS12: "location" + "password" [+ "keyPassword"]
                               or "key" (base64 store content) + "password" [+ "keyPassword"]
                               [+ "alias": which private key of a JKS store]

PEM content is PEM text; JKS / PKCS12 content is the store file's bytes in base64. Locations are
files under GATEHOUSE_CERTS_DIR (relative to it, or absolute inside it).

`check_trust_store` / `check_key_store` return {field inside the store: message} ("" for the store
as a whole), empty when the store is usable. `materialise` loads both stores and writes them as
private PEM files; use it as a context manager:

    with materialise(ssl_cfg.get("trustStore"), ssl_cfg.get("keyStore")) as tls:
        context = tls.ssl_context(check_hostname=ssl_cfg.get("hostnameVerifier", True))

Like Java 9+ (whose JKS and PKCS12 key stores read either format), a store declared JKS or PKCS12
is read by what its content is; messages name the format actually found.
"""

import base64
import binascii
import os
import re
import shutil
import socket
import ssl
import tempfile
import weakref
from dataclasses import dataclass

import jks  # pyjks
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..settings import SettingsError, check_certs_path

TYPES = ("NONE", "PEM", "JKS", "PKCS12")

_JKS_MAGIC = (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce")  # JKS, JCEKS
_PEM_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)


class _Problem(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class _KeyMaterial:
    key: object  # a cryptography private key
    chain: list  # x509.Certificate, the client certificate first
    password: str | None  # what opened the key (None: it was not encrypted)


# ----------------------------------------------------------------- public API


def check_trust_store(store):
    """{field: message} for every problem of a trust store; {} when it is usable."""
    return _load_trust(store)[1]


def check_key_store(store):
    """{field: message} for every problem of a key store; {} when it is usable."""
    return _load_key(store)[1]


def materialise(trust_store, key_store):
    """Load both stores and write them as PEM files (see TlsFiles). Raises SettingsError with
    errors named `trustStore.<field>` / `keyStore.<field>` when a store is unusable."""
    certs, trust_errors = _load_trust(trust_store)
    key, key_errors = _load_key(key_store)
    errors = {_join("trustStore", k): v for k, v in trust_errors.items()}
    errors.update({_join("keyStore", k): v for k, v in key_errors.items()})
    if errors:
        raise SettingsError(errors)
    return TlsFiles(certs, key)


class TlsFiles:
    """PEM files in a private temporary folder (0700; files 0600), removed by close().

    cafile        trusted certificates, or None (trust store NONE: use the system's CAs)
    certfile      client certificate then its chain, or None (key store NONE)
    keyfile       the client's private key (PKCS#8 PEM), or None
    key_password  the password of keyfile, or None when keyfile is not encrypted

    The private key is written protected as its source was: re-encrypted (AES-256) with the
    password that opened it (keyPassword, or the JKS / PKCS12 store password), or unencrypted
    when the source key was an unencrypted PEM key (or a PKCS12 store with an empty password).

    Clients that read the files lazily (kafka-python re-reads them on every new broker
    connection unless given `ssl_context`) need the files for as long as they live.
    """

    def __init__(self, ca_certs=None, key_material=None):
        self.directory = tempfile.mkdtemp(prefix="gatehouse-tls-")  # mode 0700
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, True)
        self.cafile = self.certfile = self.keyfile = self.key_password = None
        try:
            if ca_certs:
                self.cafile = self._write("ca.pem", _certs_pem(ca_certs))
            if key_material is not None:
                self.certfile = self._write("cert.pem", _certs_pem(key_material.chain))
                password = key_material.password or None
                encryption = (
                    serialization.BestAvailableEncryption(password.encode("utf-8"))
                    if password
                    else serialization.NoEncryption()
                )
                self.keyfile = self._write(
                    "key.pem",
                    key_material.key.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
                    ),
                )
                self.key_password = password
        except BaseException:
            self.close()
            raise

    def _write(self, name, data):
        path = os.path.join(self.directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    @property
    def closed(self):
        return not self._finalizer.alive

    def close(self):
        """Remove the files (safe to call twice; also done when the object is collected)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ssl_context(self, check_hostname=True):
        """A client SSLContext: the server is always verified (against cafile, or the system's
        CAs), its host name only when check_hostname; the client certificate when there is one.
        The context holds everything it needs, so the files may be closed afterwards."""
        if self.closed:
            raise ValueError("the TLS files are closed")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # as kafka-python does
        context.check_hostname = bool(check_hostname)
        if self.cafile:
            context.load_verify_locations(cafile=self.cafile)
        else:
            context.load_default_certs()
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile, password=self.key_password)
        return context


# ------------------------------------------- Gravitee's names in HTTP proxy, MQTT 5 and RabbitMQ
# Those connectors name store fields `path` / `content` (and a PEM key store `certPath` /
# `certContent` / `keyPath` / `keyContent`) where the Kafka ones, read above, say `location` /
# `certificates` / `key`.
GRAVITEE_TRUST = {"path": "location", "content": "certificates", "password": "password"}
GRAVITEE_KEY = {
    "PEM": {
        "certPath": "certificateChainLocation",
        "certContent": "certificateChain",
        "keyPath": "location",
        "keyContent": "key",
    },
    "JKS": {
        "path": "location",
        "content": "key",
        "password": "password",
        "keyPassword": "keyPassword",
        "alias": "alias",
    },
}
GRAVITEE_KEY["PKCS12"] = GRAVITEE_KEY["JKS"]


def _renamed(store, names):
    renamed = {"type": (store or {}).get("type") or "NONE"}
    renamed.update({ours: store[theirs] for theirs, ours in names.items() if store.get(theirs) not in (None, "")})
    return renamed


def gravitee_stores(ssl_settings):
    """(trust store, key store) of an `ssl` settings object in Gravitee's names, in this module's."""
    trust, key = ssl_settings.get("trustStore") or {}, ssl_settings.get("keyStore") or {}
    return _renamed(trust, GRAVITEE_TRUST), _renamed(key, GRAVITEE_KEY.get(key.get("type"), {}))


def check_gravitee_stores(ssl_settings, prefix, trust=True):
    """{`<prefix>.trustStore.<field>` / `<prefix>.keyStore.<field>`: message} for an `ssl` settings
    object in Gravitee's names (the trust store left out when not `trust`)."""
    trust_store, key_store = gravitee_stores(ssl_settings)
    kind = key_store["type"]
    errors = {}
    if trust:
        names = {ours: theirs for theirs, ours in GRAVITEE_TRUST.items()}
        for field, message in check_trust_store(trust_store).items():
            errors[f"{prefix}.trustStore.{names.get(field, 'type')}"] = f"Trust store: {message}"
    names = {ours: theirs for theirs, ours in GRAVITEE_KEY.get(kind, {}).items()}
    if kind == "PEM":  # Gravitee's PEM key store has no key password: the key itself is at fault
        names["keyPassword"] = "keyPath" if key_store.get("location") else "keyContent"
    for field, message in check_key_store(key_store).items():
        errors[f"{prefix}.keyStore.{names.get(field, 'type')}"] = f"Key store: {message}"
    return errors


def gravitee_ssl_context(ssl_settings):
    """A client SSLContext for an `ssl` settings object in Gravitee's names (hostnameVerifier,
    trustAll, trustStore, keyStore). Raises SettingsError when a store cannot be used."""
    trust_store, key_store = gravitee_stores(ssl_settings)
    trust_all = bool(ssl_settings.get("trustAll"))
    with materialise({"type": "NONE"} if trust_all else trust_store, key_store) as tls:
        context = tls.ssl_context(check_hostname=ssl_settings.get("hostnameVerifier", True) and not trust_all)
    if trust_all:
        context.verify_mode = ssl.CERT_NONE
    return context


# ----------------------------------------------------------------- trust stores


def _load_trust(store):
    """(certificates or None, errors)."""
    kind, errors = _store_type(store)
    if errors or kind == "NONE":
        return None, errors
    try:
        what = "the certificates" if kind == "PEM" else "the store content (certificates, in base64)"
        data, field = _source(store, "certificates", binary=kind != "PEM", what=what)
        if kind == "PEM":
            certs = _pem_certs(data, field)
        else:
            certs = _binary_trust(data, field, store.get("password"))
        if not certs:
            raise _Problem(
                field,
                "the store holds no certificates to trust: add the CA "
                "certificate(s) that signed the servers' certificates",
            )
        return certs, {}
    except _Problem as p:
        return None, {p.field: p.message}


def _open_jks(data, field, password, name):
    try:
        return jks.KeyStore.loads(data, password, try_decrypt_keys=False)
    except jks.KeystoreSignatureException:
        raise _Problem("password", f"the {name} store does not open with this password: check the password") from None
    except Exception:
        raise _damaged(field, name) from None


def _binary_trust(data, field, password):
    password = _text_or_none(password)
    if _is_jks(data):
        name = _jks_name(data)
        ks = _open_jks(data, field, password, name)
        # As Java does: trusted certificate entries, plus the certificate of each key entry.
        ders = [e.cert for _, e in sorted(ks.certs.items()) if e.type == "X.509"]
        ders += [
            e.cert_chain[0][1]
            for _, e in sorted(ks.private_keys.items())
            if e.cert_chain and e.cert_chain[0][0] == "X.509"
        ]
        return [_der_cert(d, field, name) for d in ders]
    p12 = _open_pkcs12(data, field, password)
    certs = [c.certificate for c in p12.additional_certs]
    if p12.cert is not None:
        certs.insert(0, p12.cert.certificate)
    return certs


# ----------------------------------------------------------------- key stores


def _load_key(store):
    """(_KeyMaterial or None, errors)."""
    kind, errors = _store_type(store)
    if errors or kind == "NONE":
        return None, errors
    if kind == "PEM":
        return _pem_key_store(store)
    password = _text_or_none(store.get("password"))
    errors = {} if password else {"password": "give the key store's password"}
    try:
        data, field = _source(store, "key", binary=True, what="the store content (key, in base64)")
        if errors:
            return None, errors
        material = _binary_key(
            data, field, password, _text_or_none(store.get("keyPassword")), _text_or_none(store.get("alias"))
        )
        _check_pair(material)
        return material, {}
    except _Problem as p:
        return None, {**errors, p.field: p.message}


def _pem_key_store(store):
    errors = {}
    chain = None
    try:
        if _given(store.get("certificateChainLocation")):
            chain = _pem_certs(
                _read_location(store["certificateChainLocation"], "certificateChainLocation"),
                "certificateChainLocation",
            )
        elif _given(store.get("certificateChain")):
            chain = _pem_certs(_text_bytes(store["certificateChain"], "certificateChain"), "certificateChain")
    except _Problem as p:
        errors[p.field] = p.message
    material = None
    try:
        data, field = _source(store, "key", binary=False, what="the private key (key)")
        key, password = _pem_private_key(data, field, _text_or_none(store.get("keyPassword")))
        if chain is None and not errors:
            # Kafka's PEM key store file may hold the certificate chain next to the key.
            chain = _pem_certs(data, field) if b"-----BEGIN CERTIFICATE-----" in data else None
            if chain is None:
                errors["certificateChain"] = (
                    "give the client certificate chain (PEM): the client certificate first, then any intermediate CAs"
                )
        if chain is not None:
            material = _KeyMaterial(key, chain, password)
            _check_pair(material)
    except _Problem as p:
        errors[p.field] = p.message
    return (None if errors else material), errors


def _pem_private_key(data, field, password):
    match = _PEM_KEY_BLOCK.search(data)
    if not match:
        raise _Problem(
            field,
            "not a PEM private key: expected a -----BEGIN PRIVATE KEY----- block "
            "(or an ENCRYPTED / RSA / EC PRIVATE KEY block)",
        )
    block = match.group(0)
    try:
        return serialization.load_pem_private_key(block, password.encode("utf-8") if password else None), password
    except TypeError:
        if password:  # a password was given for an unencrypted key: the key is usable as it is
            return serialization.load_pem_private_key(block, None), None
        raise _Problem("keyPassword", "the private key is encrypted: give its password as the key password") from None
    except (ValueError, UnsupportedAlgorithm):
        if password and b"ENCRYPTED" in block:
            raise _Problem(
                "keyPassword", "the private key does not decrypt with this key password: check the password"
            ) from None
        raise _Problem(
            field, "the private key does not parse: the PEM block is damaged or holds an unsupported key type"
        ) from None


def _binary_key(data, field, password, key_password, wanted_alias=None):
    if _is_jks(data):
        name = _jks_name(data)
        ks = _open_jks(data, field, password, name)
        entries = sorted(ks.private_keys.items())
        if not entries:
            raise _no_key(field, name)
        if wanted_alias is not None:
            entries = [(alias, entry) for alias, entry in entries if alias == wanted_alias.lower()]
            if not entries:
                raise _Problem(
                    "alias",
                    f"the {name} store has no private key named '{wanted_alias}': it has "
                    + ", ".join(f"'{a}'" for a, _ in sorted(ks.private_keys.items())),
                )
        # Java picks a key per handshake; with several key entries we use the first alias.
        alias, entry = entries[0]
        opened_with = None
        for candidate in dict.fromkeys(p for p in (key_password, password) if p is not None):
            try:
                entry.decrypt(candidate)
                opened_with = candidate
                break
            except jks.DecryptionFailureException:
                continue
            except Exception:
                raise _damaged(field, name) from None
        if opened_with is None:
            if key_password is not None:
                raise _Problem(
                    "keyPassword",
                    f"the private key '{alias}' does not decrypt with this key password: check the password",
                )
            raise _Problem(
                "keyPassword", f"the private key '{alias}' has its own password: give it as the key password"
            )
        try:
            key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise _Problem(field, f"the private key '{alias}' is of a kind Gatehouse cannot use") from None
        chain = [_der_cert(der, field, name) for kind, der in entry.cert_chain if kind == "X.509"]
        if not chain:
            raise _Problem(
                field, f"the private key '{alias}' has no certificate: import the client certificate chain for it"
            )
        return _KeyMaterial(key, chain, opened_with)
    # PKCS12 protects keys with the store password (keytool refuses a different key password).
    p12 = _open_pkcs12(data, field, password)
    if p12.key is None:
        raise _no_key(field, "PKCS12")
    if p12.cert is None:
        raise _Problem(
            field,
            "the PKCS12 store holds a private key but no certificate for it: "
            "export it again with the client certificate chain",
        )
    chain = _order_chain(p12.cert.certificate, [c.certificate for c in p12.additional_certs])
    return _KeyMaterial(p12.key, chain, password)


def _check_pair(material):
    leaf = material.chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        same = leaf.public_key().public_bytes(*spki) == material.key.public_key().public_bytes(*spki)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        same = False
    if not same:
        raise _Problem(
            "certificateChain",
            "the first certificate of the chain does not belong to the "
            "private key: put the client certificate (the one issued "
            "for this key) first",
        )


def _order_chain(leaf, others):
    """The leaf then its issuers found among the other certificates (others are left out)."""
    chain, pool = [leaf], list(others)
    while pool and chain[-1].issuer != chain[-1].subject:
        issuer = next((c for c in pool if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        pool.remove(issuer)
    return chain


# ----------------------------------------------------------------- shared helpers


def _store_type(store):
    if store is None or store == {}:
        return "NONE", {}
    if not isinstance(store, dict):
        return None, {"": "must be an object"}
    kind = store.get("type")
    if not _given(kind):
        if any(_given(v) for v in store.values()):
            return None, {"type": "choose the store type: " + ", ".join(TYPES)}
        return "NONE", {}
    kind = str(kind).strip().upper()
    if kind not in TYPES:
        return None, {"type": "must be one of " + ", ".join(TYPES)}
    return kind, {}


def _source(store, content_field, binary, what):
    """(bytes, field they came from) from `location` or the content field (base64 when binary)."""
    location, content = store.get("location"), store.get(content_field)
    if _given(location) and _given(content):
        raise _Problem("", f"give either a location or {what}, not both")
    if _given(location):
        return _read_location(location), "location"
    if not _given(content):
        raise _Problem("", f"give either a location (a file under GATEHOUSE_CERTS_DIR) or {what}")
    if not binary:
        return _text_bytes(content, content_field), content_field
    if not isinstance(content, str):
        raise _Problem(content_field, "must be text: the store file's content in base64")
    try:
        return base64.b64decode("".join(content.split()), validate=True), content_field
    except (binascii.Error, ValueError):
        if "-----BEGIN" in content:
            raise _Problem(
                content_field,
                "this is PEM text, not a store file in base64: set the "
                "type to PEM, or give the JKS / PKCS12 file in base64",
            ) from None
        raise _Problem(
            content_field,
            "not base64: give the JKS or PKCS12 store file's content encoded in base64 (e.g. `base64 -w0 store.p12`)",
        ) from None


def _read_location(value, field="location"):
    if not isinstance(value, str):
        raise _Problem(field, "must be a file path")
    try:
        check_certs_path(value)
    except ValueError as exc:
        raise _Problem(field, str(exc)) from None
    base = os.path.realpath(os.environ["GATEHOUSE_CERTS_DIR"])
    full = os.path.realpath(os.path.join(base, value))
    try:
        if not os.path.isfile(full):
            raise OSError
        with open(full, "rb") as f:
            return f.read()
    except OSError:
        raise _Problem(
            field, f"no readable file at {full}: check the path and that the gateway's user may read the file"
        ) from None


def _pem_certs(data, field):
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise _Problem(field, "not PEM certificates: expected one or more -----BEGIN CERTIFICATE----- blocks")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise _Problem(
            field, "a -----BEGIN CERTIFICATE----- block does not parse: the text is damaged or incomplete"
        ) from None


def _der_cert(der, field, name):
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise _Problem(field, f"the {name} store holds a certificate that does not parse") from None


def _open_pkcs12(data, field, password):
    if data.lstrip().startswith(b"-----BEGIN"):
        raise _Problem(field, "this is a PEM file, not a JKS or PKCS12 store: set the type to PEM")
    if not _looks_like_der(data):
        raise _Problem(field, "not a JKS or PKCS12 store: the content is damaged or in another format")
    candidates = [password.encode("utf-8")] if password else [None, b""]
    for candidate in candidates:
        try:
            return pkcs12.load_pkcs12(data, candidate)
        except ValueError:
            continue
    if not password:
        raise _Problem("password", "the PKCS12 store is protected: give its password")
    # A PKCS12 MAC failure looks the same for a wrong password and for altered bytes.
    raise _Problem(
        "password",
        "the PKCS12 store does not open with this password: check the password (and that the file is intact)",
    )


def _looks_like_der(data):
    """A single DER/BER SEQUENCE spanning all of data (what a PKCS12 file is)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first == 0x80:  # BER indefinite length
        return data.endswith(b"\x00\x00")
    if first < 0x80:
        return 2 + first == len(data)
    count = first & 0x7F
    if count > 4 or len(data) < 2 + count:
        return False
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big") == len(data)


def _is_jks(data):
    return data[:4] in _JKS_MAGIC


def _jks_name(data):
    return "JKS" if data[:4] == _JKS_MAGIC[0] else "JCEKS"


def _damaged(field, name):
    return _Problem(field, f"the {name} store does not parse: the file is damaged or truncated")


def _no_key(field, name):
    return _Problem(
        field,
        f"the {name} store holds no private key: a key store needs the client's private key with its certificate chain",
    )


def _certs_pem(certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _text_bytes(value, field):
    if not isinstance(value, str):
        raise _Problem(field, "must be text")
    return value.encode("utf-8")


def _text_or_none(value):
    """A password as text; None when absent or empty."""
    return None if value is None or value == "" else str(value)


def _given(value):
    return value is not None and value != ""


def _join(prefix, field):
    return f"{prefix}.{field}" if field else prefix


def diagnose_tls(context, servers, what="server"):
    """Why a TLS handshake with these `host:port` servers fails, in words for the user; None when
    it does not fail or no server can be reached. Clients that only report a timeout use it."""
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        host, where = host.strip("[]"), server.strip()
        try:
            raw = socket.create_connection((host, int(port)), timeout=2)
        except (OSError, ValueError):
            continue  # not reachable at all: the message below says so
        with raw:
            try:
                context.wrap_socket(raw, server_hostname=host).close()
            except ssl.SSLCertVerificationError as err:
                reason = err.verify_message or err.reason or str(err)
                if "mismatch" in reason.lower():
                    return (
                        f"TLS verification of the {what} at {where} failed: {reason}. "
                        "Give its address as a name (or IP address) that its certificate holds."
                    )
                issuer = ""
                try:  # which CA signed it, so that the client knows what to trust
                    with socket.create_connection((host, int(port)), timeout=2) as again:
                        look = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                        look.check_hostname, look.verify_mode = False, ssl.CERT_NONE
                        with look.wrap_socket(again, server_hostname=host) as tls:
                            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                    issuer = f" (issued by {cert.issuer.rfc4514_string()})"
                except Exception:
                    pass
                return (
                    f"TLS verification of the {what} at {where} failed: {reason}. Its "
                    f"certificate{issuer} is not signed by a CA in the trust store: "
                    "add the CA certificate that signed it to the trust store."
                )
            except ssl.SSLError as err:
                return f"the TLS handshake with the {what} at {where} failed: {err.reason or err}"
            except TimeoutError:
                return f"the {what} at {where} did not answer a TLS handshake within 2 s: is it a TLS listener?"
            except OSError as err:
                return (
                    f"the {what} at {where} closed the connection during the TLS "
                    f"handshake ({err}): is it a TLS listener?"
                )
    return None
