"""Who may talk to the server: gRPC over TLS (optionally mutual) and Triton's restricted protocols.

    python -m facecodec.serving serve ... --tls-cert server.crt --tls-key server.key [--tls-ca ca.crt --tls-mutual] \
        --admin-key-file admin.key
    facecodec-client -u host:8001 --tls-ca ca.crt [--tls-cert client.crt --tls-key client.key] call clip.mp4

TLS: tritonserver's `--grpc-use-ssl` with the server's certificate and key; with `--tls-mutual`
(`--grpc-use-ssl-mutual`) a client must present a certificate signed by `--tls-ca`. A plain-text
client then fails its handshake. HTTP (health probes and metrics) stays plain: Triton's HTTP endpoint
has no TLS, so it is loopback-only locally and, in a pod, restricted as below and reached only by
the kubelet's probes and the monitoring namespace (k8s/base/networkpolicy.yaml).

Restricted protocols: model control, shared-memory registration, tracing, logging and statistics
(`RESTRICTED`) answer only requests that carry the admin header `facecodec-admin-key: <key>` on HTTP
(`--http-restricted-api`), `triton-grpc-protocol-facecodec-admin-key: <key>` on gRPC
(`--grpc-restricted-protocol`; `admin_headers`). Calls need none of them (inference,
health, metadata and model config stay open), so a client never holds the key. Note that the key is
part of tritonserver's command line, visible to processes of the same user on the same host (`ps`):
on a pod, that is the container itself.

`make_test_pki(dir)` writes a throw-away CA, a server certificate for localhost/127.0.0.1 and a
client certificate with the openssl CLI: for tests and a local try-out, never committed.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Triton protocol groups a call never uses; refused without the admin header
RESTRICTED = ("model-repository", "shared-memory", "statistics", "trace", "logging")
ADMIN_HEADER = "facecodec-admin-key"


@dataclass(frozen=True)
class ServerTls:
    """Files of the server's TLS: its certificate chain and key (PEM); `ca` (PEM) verifies client
    certificates when `mutual`."""

    cert: Path
    key: Path
    ca: Path | None = None
    mutual: bool = False

    def __post_init__(self) -> None:
        if self.mutual and self.ca is None:
            raise ValueError("mutual TLS needs the CA that signs the clients' certificates (--tls-ca)")
        for path in (self.cert, self.key, self.ca):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file {path} does not exist")

    def arguments(self) -> list[str]:
        args = ["--grpc-use-ssl=true", f"--grpc-server-cert={self.cert}", f"--grpc-server-key={self.key}"]
        if self.ca is not None:
            args.append(f"--grpc-root-cert={self.ca}")
        if self.mutual:
            args.append("--grpc-use-ssl-mutual=true")
        return args


def restricted_arguments(admin_key: str) -> list[str]:
    """tritonserver flags that refuse `RESTRICTED` to requests without the admin header."""
    check_admin_key(admin_key)
    protocols = ",".join(RESTRICTED)
    return [f"--grpc-restricted-protocol={protocols}:{ADMIN_HEADER}={admin_key}",
            f"--http-restricted-api={protocols}:{ADMIN_HEADER}={admin_key}"]


def admin_headers(key: str, protocol: str = "grpc") -> dict[str, str]:
    """The header that opens the restricted protocols (tritonserver prefixes gRPC's with
    `triton-grpc-protocol-`)."""
    return {("triton-grpc-protocol-" if protocol == "grpc" else "") + ADMIN_HEADER: key}


def check_admin_key(key: str) -> str:
    if len(key) < 16 or not all(c.isalnum() or c in "-_" for c in key):
        raise ValueError("the admin key must be at least 16 characters of [A-Za-z0-9_-]")
    return key


def read_admin_key(path: Path) -> str:
    return check_admin_key(Path(path).read_text().strip())


def new_admin_key() -> str:
    return secrets.token_urlsafe(32)


def add_server_arguments(parser) -> None:
    group = parser.add_argument_group("security (docs/serving.md, Security)")
    group.add_argument("--tls-cert", type=Path, help="gRPC over TLS: the server's certificate chain (PEM)")
    group.add_argument("--tls-key", type=Path, help="gRPC over TLS: the server's private key (PEM)")
    group.add_argument("--tls-ca", type=Path, help="CA (PEM) that signs client certificates (with --tls-mutual)")
    group.add_argument("--tls-mutual", action="store_true", help="mutual TLS: clients must present a certificate")
    group.add_argument("--admin-key-file", type=Path,
                       help="restrict model control, shared memory, statistics, trace and logging to requests "
                       f"carrying the header {ADMIN_HEADER}: <this file's key>")


def server_from_arguments(args) -> tuple[ServerTls | None, str | None]:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is None and (args.tls_mutual or args.tls_ca):
        raise ValueError("--tls-ca / --tls-mutual need --tls-cert and --tls-key")
    tls = None if args.tls_cert is None else ServerTls(args.tls_cert, args.tls_key, args.tls_ca, args.tls_mutual)
    key = None if args.admin_key_file is None else read_admin_key(args.admin_key_file)
    return tls, key


# ---------------------------------------------------------------- throw-away certificates (tests, try-outs)


def _openssl(*args, cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {result.stderr.strip()}")


def _signed(name: str, subject: str, extensions: str, folder: Path, days: int) -> None:
    (folder / f"{name}.ext").write_text(extensions)
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=folder)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", days, "-sha256", "-extfile", f"{name}.ext", cwd=folder)


def make_test_pki(folder: Path, *, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 2) -> dict:
    """A CA, a server certificate for `hosts` and a client certificate in `folder` (openssl CLI);
    returns their paths: ca, server_cert, server_key, client_cert, client_key. Keys are 0600."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", days,
             "-subj", "/CN=facecodec test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    names = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    _signed("server", f"/CN={hosts[0]}", f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n", folder, days)
    _signed("client", "/CN=facecodec test client", "extendedKeyUsage=clientAuth\n", folder, days)
    for key in folder.glob("*.key"):
        key.chmod(0o600)
    return {"ca": folder / "ca.crt", "server_cert": folder / "server.crt", "server_key": folder / "server.key",
            "client_cert": folder / "client.crt", "client_key": folder / "client.key"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m facecodec.serving.security",
                                description="write throw-away TLS files (a CA, server and client certificates) "
                                "and an admin key for a local try-out; never commit them")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--host", action="append", help="names of the server certificate (default localhost, 127.0.0.1)")
    args = p.parse_args(argv)
    files = make_test_pki(args.out, hosts=tuple(args.host or ("localhost", "127.0.0.1")))
    admin = args.out / "admin.key"
    admin.touch(0o600)
    admin.write_text(new_admin_key() + "\n")
    for name, path in {**files, "admin_key": admin}.items():
        print(f"{name:12s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
