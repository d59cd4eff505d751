"""Certificates made by the tests: a CA, server and client certificates it signs, trust stores as
PEM, JKS and PKCS12, key stores too; and stunnel4, which puts TLS in front of a broker."""

import base64
import datetime
import ipaddress

import jks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STUNNEL = "/usr/bin/stunnel4"
STORE_PASSWORD = "changeit-tls"


# ----- a CA, the broker's certificate, and a CA that did not sign it -----
def make_ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def jks_trust_store(cert, password):
    return jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("ca", der(cert))]).saves(password)


def pkcs12_trust_store(cert, password):
    return pkcs12.serialize_key_and_certificates(
        b"ca", None, None, [cert], serialization.BestAvailableEncryption(password.encode())
    )


class Pki:
    """The files live in `certs` (the gateway's GATEHOUSE_CERTS_DIR)."""

    def __init__(self, certs):
        self.certs = certs
        ca_key, self.ca = make_ca("Gatehouse test CA")
        self.server_key, self.server_cert = make_server_cert(ca_key, self.ca)
        _, self.wrong_ca = make_ca("Some other CA")
        self.write("ca.pem", pem(self.ca))
        self.write("wrong-ca.pem", pem(self.wrong_ca))
        self.write("truststore.jks", jks_trust_store(self.ca, STORE_PASSWORD))
        self.write("truststore.p12", pkcs12_trust_store(self.ca, STORE_PASSWORD))
        self.server_pem = self.write("server.pem", pem(self.server_cert))
        self.server_key_pem = self.write(
            "server.key",
            self.server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )

    def write(self, name, data):
        path = self.certs / name
        path.write_bytes(data)
        return path

    def read(self, name):
        return (self.certs / name).read_bytes()


def server_cert_files(folder, ca_key, ca_cert):
    """(certificate file, key file) of a server certificate for 127.0.0.1 from the CA, in PEM."""
    key, cert = make_server_cert(ca_key, ca_cert)
    (folder / "server.pem").write_bytes(pem(cert))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "server.pem", folder / "server.key"


def make_client_cert(ca_key, ca_cert, name="gateway client"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


# ----- one CA's material in every store format, for the store checks and the group page -----
STORE_PW = "store-secret-1"
PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca=False, san=None, usage=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Material:
    def __init__(self):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("Gatehouse Test CA", self.ca_key, "Gatehouse Test CA", self.ca_key, ca=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _cert("client", self.key, "Gatehouse Test CA", self.ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_cert = _cert(
            "broker",
            self.server_key,
            "Gatehouse Test CA",
            self.ca_key,
            san="broker.test",
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
        )
        self.other_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_cert = _cert("rsa-client", self.rsa_key, "Gatehouse Test CA", self.ca_key)

    # PEM
    @property
    def ca_pem(self):
        return self.ca.public_bytes(PEM).decode()

    @property
    def chain_pem(self):
        return (self.cert.public_bytes(PEM) + self.ca.public_bytes(PEM)).decode()

    def key_pem(self, password=None, key=None, fmt=PKCS8):
        enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        return (key or self.key).private_bytes(PEM, fmt, enc).decode()

    # PKCS12
    def p12_keystore(self, password=STORE_PW):
        enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        return pkcs12.serialize_key_and_certificates(b"client", self.key, self.cert, [self.ca], enc)

    def p12_truststore(self, password=STORE_PW):
        enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        return pkcs12.serialize_key_and_certificates(None, None, None, [self.ca], enc)

    # JKS (pyjks)
    def jks_keystore(self, key_password=None):
        entry = jks.PrivateKeyEntry.new(
            "client",
            [self.cert.public_bytes(DER), self.ca.public_bytes(DER)],
            self.key.private_bytes(DER, PKCS8, serialization.NoEncryption()),
        )
        if key_password:
            entry.encrypt(key_password)  # saves() encrypts the others with the store password
        return jks.KeyStore.new("jks", [entry]).saves(STORE_PW)

    def jks_truststore(self):
        entry = jks.TrustedCertEntry.new("ca", self.ca.public_bytes(DER))
        return jks.KeyStore.new("jks", [entry]).saves(STORE_PW)


def b64(data):
    return base64.b64encode(data).decode()


def client_cert_files(folder, ca_key, ca_cert, name):
    """(certificate file, key file) of a client certificate from the CA for the subject CN=`name`, in PEM."""
    key, cert = make_client_cert(ca_key, ca_cert, name)
    (folder / f"{name}.pem").write_bytes(pem(cert))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / f"{name}.pem", folder / f"{name}.key"
