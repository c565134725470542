"""The HTTPS fetcher against a local TLS server with a certificate made in the test."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lunamail.adapters.certs import FetchError, HttpsFetcher

PEM_BODY = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"


def _write_cert(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect.pem":
            self.send_response(302)
            self.send_header("Location", "https://elsewhere.example/cert.pem")
            self.end_headers()
            return
        if self.path == "/missing.pem":
            self.send_error(404)
            return
        body = PEM_BODY * (400 if self.path == "/big.pem" else 1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    cert_path, key_path = _write_cert(tmp_path_factory.mktemp("tls"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}", cert_path
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def trusting(cert_path: Path, **kw: int) -> HttpsFetcher:
    return HttpsFetcher(context=ssl.create_default_context(cafile=str(cert_path)), timeout=5, **kw)


def test_fetches_over_verified_tls(server: tuple[str, Path]) -> None:
    base, cert = server
    assert trusting(cert)(f"{base}/cert.pem") == PEM_BODY


def test_an_untrusted_certificate_is_refused(server: tuple[str, Path]) -> None:
    base, _ = server
    with pytest.raises(FetchError, match="fetch failed"):
        HttpsFetcher(timeout=5)(f"{base}/cert.pem")  # the system's roots do not know it


def test_redirects_are_not_followed(server: tuple[str, Path]) -> None:
    base, cert = server
    with pytest.raises(FetchError, match="redirect"):
        trusting(cert)(f"{base}/redirect.pem")


def test_size_cap_and_errors(server: tuple[str, Path]) -> None:
    base, cert = server
    with pytest.raises(FetchError, match="exceeds 1024 bytes"):
        trusting(cert, max_bytes=1024)(f"{base}/big.pem")
    with pytest.raises(FetchError, match="404"):
        trusting(cert)(f"{base}/missing.pem")


def test_only_https(server: tuple[str, Path]) -> None:
    _, cert = server
    with pytest.raises(FetchError, match="only https"):
        trusting(cert)("http://127.0.0.1/cert.pem")
