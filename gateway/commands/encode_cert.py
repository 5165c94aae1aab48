"""encode-cert: turn a CA certificate file into the one-line DB_CA_CERT value serverless hosts need."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from gateway.connect.tls import CaCertificate, TlsError, TlsProblem, parse_ca_pem

__all__ = ["EncodedCert", "encode_cert"]


@dataclass(frozen=True)
class EncodedCert:
    value: str
    written_to: Path
    certificates: tuple[CaCertificate, ...]


def encode_cert(path: Path, out_dir: Path = Path("certs")) -> EncodedCert:
    """Validate the PEM at `path`, base64 its exact bytes, and write them to out_dir/ca_base64.txt."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise TlsError(TlsProblem.CA_MISSING, f"{path} cannot be read ({exc.strerror})") from None
    certificates = parse_ca_pem(pem, str(path))
    value = base64.b64encode(pem).decode("ascii")
    out_dir.mkdir(parents=True, exist_ok=True)
    written_to = out_dir / "ca_base64.txt"
    written_to.write_text(value + "\n")
    return EncodedCert(value=value, written_to=written_to, certificates=certificates)
