"""Certificates for the local control plane, as envtest makes them: one CA, a serving cert for
kube-apiserver, a client cert for an admin in `system:masters`, and the service-account key pair.
The node's components get their own certificates from the same CA on demand (`issue`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITY = dt.timedelta(days=365)
# Loopback, the `kubernetes` Service's ClusterIP, and the host end of the local node's link (where the
# API server listens when a node runs; see node_network.py).
APISERVER_IPS = ("127.0.0.1", "10.0.0.1", "10.245.0.1")
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    *,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[bytes, bytes]:
    """A new key and a certificate for it signed by `ca`, both PEM: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if dns_names or ips:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _pem_cert(builder.sign(ca_key, hashes.SHA256())), _pem_key(key)


@dataclass(frozen=True)
class ControlPlanePKI:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "sa.pub"

    def issue(
        self,
        name: str,
        common_name: str,
        organization: str | None = None,
        *,
        server_ips: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """A certificate signed by this CA, written once as `<name>.crt` and `<name>.key`.

        Client certificates name a Kubernetes user (CN) and group (O), e.g. `system:node:<node>` in
        `system:nodes`; with `server_ips`/`server_names` it serves TLS too (the kubelet's port).
        """
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key((self.directory / "ca.key").read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"unexpected CA key type {type(ca_key).__name__}")
        usages = [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
        if server_ips or server_names:
            usages.append(x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        cert, key = _leaf(
            ca, ca_key, _name(common_name, organization), usages, dns_names=server_names, ips=server_ips
        )
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        key_path.chmod(0o600)
        return cert_path, key_path

    def ensure(self) -> ControlPlanePKI:
        """Create everything once; a restarted control plane on the same directory keeps its identity."""
        if self.service_account_pub.exists():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("marketpulse-local-ca"))
            .issuer_name(_name("marketpulse-local-ca"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(ca_key, hashes.SHA256())
        )

        serving = _leaf(
            ca,
            ca_key,
            _name("kube-apiserver"),
            [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH],
            dns_names=APISERVER_NAMES,
            ips=APISERVER_IPS,
        )
        admin = _leaf(
            ca,
            ca_key,
            _name("marketpulse-admin", "system:masters"),
            [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        self.ca_cert.write_bytes(_pem_cert(ca))
        (self.directory / "ca.key").write_bytes(_pem_key(ca_key))
        self.serving_cert.write_bytes(serving[0])
        self.serving_key.write_bytes(serving[1])
        self.admin_cert.write_bytes(admin[0])
        self.admin_key.write_bytes(admin[1])
        self.service_account_key.write_bytes(_pem_key(sa_key))
        self.service_account_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        for key_file in self.directory.glob("*.key"):
            key_file.chmod(0o600)
        return self
