"""encode-cert: turn a CA certificate file into the one-line DB_CA_CERT value serverless hosts need."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from gateway.connect.tls import CaCertificate, TlsError, TlsProblem, check_ca_dates, parse_ca_pem

__all__ = ["EncodedCert", "encode_cert"]


@dataclass(frozen=True)
class EncodedCert:
    value: str
    written_to: Path
    certificates: tuple[CaCertificate, ...]


def encode_cert(path: Path, out_dir: Path = Path("certs")) -> EncodedCert:
    """Check the CA bundle at `path` as the gateway will, base64 its certificates (and nothing
    else the file holds), and write that to out_dir/ca_base64.txt."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise TlsError(TlsProblem.CA_MISSING, f"{path} cannot be read ({exc.strerror})") from None
    certificates = parse_ca_pem(pem, str(path))
    check_ca_dates(certificates, str(path))
    value = base64.b64encode("".join(c.pem for c in certificates).encode("ascii")).decode("ascii")
    out_dir.mkdir(parents=True, exist_ok=True)
    written_to = out_dir / "ca_base64.txt"
    written_to.write_text(value + "\n")
    return EncodedCert(value=value, written_to=written_to, certificates=certificates)
