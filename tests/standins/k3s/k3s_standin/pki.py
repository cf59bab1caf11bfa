"""k3s stand-in: pki (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from k3s_standin.common import info


# ------------------------------------------------------------------------ TLS
def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: str):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), None)


def _load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def make_ca(tls: str, prefix: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"k3s-{prefix}-ca@{int(time.time())}")
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(os.path.join(tls, f"{prefix}-ca.key"), _key_pem(key), 0o600)
    _write(os.path.join(tls, f"{prefix}-ca.crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def issue_cert(tls: str, ca_prefix: str, out: str, *, cn: str, org: str | None, server: bool, sans=()) -> None:
    ca_key = _load_key(os.path.join(tls, f"{ca_prefix}-ca.key"))
    ca_cert = _load_cert(os.path.join(tls, f"{ca_prefix}-ca.crt"))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        entries = []
        for san in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                entries.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(os.path.join(tls, f"{out}.key"), _key_pem(key), 0o600)
    _write(os.path.join(tls, f"{out}.crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def cert_sans(path: str) -> set[str]:
    try:
        ext = _load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, x509.ExtensionNotFound):
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def ensure_tls(data_dir: str, sans: list[str]) -> None:
    tls = os.path.join(data_dir, "server", "tls")
    os.makedirs(tls, mode=0o700, exist_ok=True)
    for prefix in ("server", "client"):
        if not os.path.exists(os.path.join(tls, f"{prefix}-ca.crt")):
            make_ca(tls, prefix)
    if not os.path.exists(os.path.join(tls, "service.key")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(os.path.join(tls, "service.key"), _key_pem(key), 0o600)
    if not os.path.exists(os.path.join(tls, "client-admin.crt")):
        issue_cert(tls, "client", "client-admin", cn="system:admin", org="system:masters", server=False)
    serving = os.path.join(tls, "serving-kube-apiserver.crt")
    if not set(sans) <= cert_sans(serving):
        if os.path.exists(serving):
            info(f"Updating TLS secret for kube-system/k3s-serving (count {len(sans)}): {sorted(sans)}")
        issue_cert(tls, "server", "serving-kube-apiserver", cn="k3s", org="k3s", server=True, sans=sans)


def ensure_token(data_dir: str) -> str:
    path = os.path.join(data_dir, "server", "token")
    if not os.path.exists(path):
        with open(os.path.join(data_dir, "server", "tls", "server-ca.crt"), "rb") as handle:
            ca_hash = hashlib.sha256(handle.read()).hexdigest()
        _write(path, f"K10{ca_hash}::server:{secrets.token_hex(16)}\n".encode(), 0o600)
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


# ---------------------------------------------------------------------- JWTs
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(key, claims: dict) -> str:
    kid = _b64(
        hashlib.sha256(
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).digest()
    )
    header = _b64(json.dumps({"alg": "RS256", "kid": kid}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{_b64(sig)}"


def verify_jwt(key, token: str) -> dict | None:
    try:
        header, body, sig = token.split(".")
        key.public_key().verify(_unb64(sig), f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(_unb64(body))
    except Exception:  # noqa: BLE001 - any malformed or forged token is simply invalid
        return None
    if "exp" in claims and claims["exp"] < time.time():
        return None
    return claims
