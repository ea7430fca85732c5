"""A client's side of gRPC over TLS (the server's: `facecodec.serving.security`).

    facecodec-client -u host:8001 --tls-ca ca.crt [--tls-cert client.crt --tls-key client.key] call clip.mp4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientTls:
    """A client's TLS: the CA that signed the server's certificate, and for mutual TLS its own
    certificate and key (PEM files)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs its key (--tls-cert and --tls-key together)")

    def grpc_options(self) -> dict:
        """Keyword arguments of `tritonclient.grpc.InferenceServerClient` (it reads the files)."""
        return {
            "ssl": True,
            "root_certificates": None if self.ca is None else str(self.ca),
            "private_key": None if self.key is None else str(self.key),
            "certificate_chain": None if self.cert is None else str(self.cert),
        }

    @classmethod
    def from_arguments(cls, args) -> "ClientTls | None":
        given = getattr(args, "tls", False) or any(getattr(args, n, None) for n in ("tls_ca", "tls_cert", "tls_key"))
        return cls(args.tls_ca, args.tls_cert, args.tls_key) if given else None
