"""A local RFC 3161 time-stamp authority for the tests: `openssl ts -reply` behind a tiny HTTP
server on loopback.

`LocalTsa.start()` makes, in a temporary directory and with the `openssl` command line, a
throwaway CA and a TSA certificate signed by it (extendedKeyUsage critical timeStamping), writes an
openssl TSA configuration, and serves on 127.0.0.1:<free port> (standard library http.server, in a
thread). A POST of a TimeStampReq to `/` is written to a file and answered with what
`openssl ts -reply -config ... -queryfile ... -out ...` makes of it.

Other paths answer the ways a real TSA can go wrong, for the client's tests:

    /refuse        openssl's own refusal (a TSA section that only accepts SHA-512 imprints)
    /anonymous     a good token without the TSA's name in it (only in its certificate)
    /wrong-nonce   a real, signed token for the same data but another nonce
    /other-data    a real, signed token for other data (the imprint changed before signing)
    /garbage       HTTP 200 with bytes that are no DER
    /error         HTTP 500

Under libfaketime (scripts/test-on-date) each child process's clock restarts at the fake start
instant; every openssl run here is given this process's clock instead, so the TSA's time is the
tests' time on any date.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from asn1crypto import tsp

POLICY = "1.3.6.1.4.1.55555.1.1"  # made up: the test TSA's policy
TSA_SUBJECT = "/O=kriselogg tests/CN=kriselogg test TSA"
CA_SUBJECT = "/O=kriselogg tests/CN=kriselogg test TSA root CA"
VALID_DAYS = 2  # the certificates' lifetime: "years later" in a test is a few days later

_CONFIG = """\
[req]
distinguished_name = req_dn

[req_dn]

[tsa]
default_tsa = tsa_default

[tsa_default]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256

[tsa_sha512_only]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha512
ess_cert_id_alg = sha256

[tsa_anonymous]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256
tsa_name = no
ess_cert_id_alg = sha256

[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[tsa_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class LocalTsaError(RuntimeError):
    """The local TSA could not be set up (no openssl, or openssl refused)."""


def openssl_env() -> dict[str, str]:
    """The environment for an openssl child: under libfaketime, with this process's clock."""
    env = dict(os.environ)
    if "FAKETIME" in env:
        env["FAKETIME"] = "@" + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return env


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the openssl command line; on failure (with check) raise LocalTsaError with its stderr."""
    binary = shutil.which("openssl")
    if binary is None:
        raise LocalTsaError(
            "the local RFC 3161 TSA needs the `openssl` command line, and it is not on PATH: "
            "install the Debian package openssl (scripts/install-system-packages does)"
        )
    result = subprocess.run(
        [binary, *map(str, args)],
        capture_output=True,
        text=True,
        env=openssl_env(),
        check=False,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise LocalTsaError(
            f"openssl {' '.join(map(str, args))} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


@dataclass
class LocalTsa:
    """A running local TSA: its URL, its CA certificate (what a verifier keeps), its files."""

    url: str  # ends with "/"
    ca_file: Path
    directory: Path

    def url_for(self, mode: str) -> str:
        """The URL of one of the misbehaving answers listed in the module docstring."""
        return self.url + mode

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[LocalTsa]:
        with tempfile.TemporaryDirectory(prefix="kriselogg-tsa-") as tmp:
            directory = Path(tmp)
            config = _make_pki(directory)
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(directory, config))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, name="local-tsa", daemon=True)
            thread.start()
            host, port = server.server_address[:2]
            try:
                yield cls(
                    url=f"http://{host!s}:{port}/",
                    ca_file=directory / "ca.pem",
                    directory=directory,
                )
            finally:
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)


def _make_pki(directory: Path) -> Path:
    config = directory / "tsa.cnf"
    config.write_text(_CONFIG.format(dir=directory, policy=POLICY))
    (directory / "serial").write_text("01\n")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl(
        "req", "-new", "-x509", *ec, "-keyout", directory / "ca.key", "-out", directory / "ca.pem",
        "-subj", CA_SUBJECT, "-days", str(VALID_DAYS), "-config", config, "-extensions", "ca_ext",
    )  # fmt: skip
    openssl(
        "req", "-new", *ec, "-keyout", directory / "tsa.key", "-out", directory / "tsa.csr",
        "-subj", TSA_SUBJECT, "-config", config,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", directory / "tsa.csr", "-CA", directory / "ca.pem",
        "-CAkey", directory / "ca.key", "-set_serial", "2", "-days", str(VALID_DAYS),
        "-extfile", config, "-extensions", "tsa_ext", "-out", directory / "tsa.pem",
    )  # fmt: skip
    return config


def _handler(directory: Path, config: Path) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # openssl ts -reply reads and rewrites the serial file

    def reply(query: bytes, section: str = "tsa_default") -> bytes:
        name = uuid.uuid4().hex
        query_file, reply_file = directory / f"{name}.tsq", directory / f"{name}.tsr"
        query_file.write_bytes(query)
        try:
            with lock:
                openssl(
                    "ts", "-reply", "-config", config, "-section", section,
                    "-queryfile", query_file, "-out", reply_file,
                )  # fmt: skip
            return reply_file.read_bytes()
        finally:
            query_file.unlink(missing_ok=True)
            reply_file.unlink(missing_ok=True)

    def rewrite(query: bytes, *, nonce_delta: int = 0, other_data: bool = False) -> bytes:
        request = tsp.TimeStampReq.load(query)
        fields = {
            "version": "v1",
            "message_imprint": request["message_imprint"].copy(),
            "nonce": int(request["nonce"].native) + nonce_delta,
            "cert_req": True,
        }
        if other_data:
            fields["message_imprint"] = {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(b"some other data").digest(),
            }
        return bytes(tsp.TimeStampReq(fields).dump())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real TSAs and httpx do
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add some 40 ms to every reply.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            query = self.rfile.read(length)
            path = self.path.rstrip("/")
            status, body = 200, b""
            try:
                if path == "":
                    body = reply(query)
                elif path == "/anonymous":
                    body = reply(query, "tsa_anonymous")
                elif path == "/refuse":
                    body = reply(query, "tsa_sha512_only")
                elif path == "/wrong-nonce":
                    body = reply(rewrite(query, nonce_delta=1))
                elif path == "/other-data":
                    body = reply(rewrite(query, other_data=True))
                elif path == "/garbage":
                    body = b"<html>this is not a time-stamp reply</html>"
                elif path == "/error":
                    status, body = 500, b"internal error"
                else:
                    status, body = 404, b"no such path"
            except (LocalTsaError, ValueError) as exc:
                status, body = 500, str(exc).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "application/timestamp-reply" if status == 200 else "text/plain"
            )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows the tests' own output

    return Handler
