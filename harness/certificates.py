"""A throw-away CA with a server and a client certificate, made by openssl, for TLS tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @property
    def server_dir(self) -> Path:
        """The server's chain and key as tls.crt and tls.key: a Kubernetes TLS Secret's layout."""
        return self.server_cert.parent


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path, host: str = "127.0.0.1") -> Certificates:
    """A CA, a server certificate for ``host`` (an IP address) and a client certificate, signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sentiment test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    for name, extension in (("server", f"subjectAltName=IP:{host},DNS:localhost\nextendedKeyUsage=serverAuth"),
                            ("client", "extendedKeyUsage=clientAuth")):
        (folder / f"{name}.ext").write_text(extension + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=sentiment test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)
    server_dir = folder / "server"
    server_dir.mkdir()
    (folder / "server.pem").rename(server_dir / "tls.crt")
    (folder / "server.key").rename(server_dir / "tls.key")
    return Certificates(folder / "ca.pem", server_dir / "tls.crt", server_dir / "tls.key",
                        folder / "client.pem", folder / "client.key")
