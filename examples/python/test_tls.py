"""TLS and mutual TLS against `tls-greeter-server`, called by gRPC C-core
(Python grpcio, with its own TLS stack): a client that shares no code with
ringrpc, rustls or tonic.

The server makes its own CA and certificates (`--gen-certs DIR`) in a temporary
directory; nothing secret is kept in the repository. The binary comes from
RINGRPC_EXAMPLES_BIN_DIR (default target/debug), built with
`cargo build -p ringrpc-examples --bins`.
"""

import importlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

try:
    import grpc
    from grpc_tools import protoc  # noqa: F401  (imported to fail early without grpcio-tools)
except ImportError as err:
    raise ImportError(
        "grpcio and grpcio-tools are required: "
        "python3 -m pip install -r examples/python/requirements.txt"
    ) from err

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "examples" / "proto"
BIN_DIR = Path(os.environ.get("RINGRPC_EXAMPLES_BIN_DIR", REPO / "target" / "debug"))
BINARY = "tls-greeter-server"

START_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 15
CALL_TIMEOUT_S = 10


class TlsGreeter:
    """`tls-greeter-server` on a free port, its certificates in `cert_dir`;
    stopped with SIGTERM."""

    def __init__(self, cert_dir, *args):
        path = BIN_DIR / BINARY
        if not path.is_file():
            pytest.fail(f"{path} is missing: run `cargo build -p ringrpc-examples --bins` first")
        self.proc = subprocess.Popen(
            [str(path), "--port", "0", "--workers", "2", "--gen-certs", str(cert_dir), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.addr = self._read_address()
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.certs = {
            name: (Path(cert_dir) / name).read_bytes()
            for name in ["ca.pem", "client.pem", "client.key"]
        }

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def _read_address(self):
        found = {}

        def read():
            for line in self.proc.stdout:
                if line.startswith("listening on "):
                    found["addr"] = line.split(" ", 2)[2].strip()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if "addr" not in found:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{BINARY} did not start:\n" + "\n".join(self.stderr))
        return found["addr"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{BINARY} did not exit after SIGTERM")
        assert code == 0, f"{BINARY} exited with {code}:\n" + "\n".join(self.stderr)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("tls-stubs")
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "helloworld.proto",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(out))
    names = ["helloworld_pb2", "helloworld_pb2_grpc"]
    return type("Stubs", (), {n: importlib.import_module(n) for n in names})


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    server = TlsGreeter(tmp_path_factory.mktemp("tls-certs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory):
    certs = tmp_path_factory.mktemp("mtls-certs")
    # The server writes ca.pem before it reads --client-ca.
    server = TlsGreeter(certs, "--client-ca", str(certs / "ca.pem"))
    yield server
    server.stop()


def say_hello(pb, server, name, identity=None):
    """One SayHello over a new TLS channel that trusts the server's CA and
    presents `identity` (certificate, key PEM) when given."""
    if identity is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=server.certs["ca.pem"])
    else:
        cert, key = identity
        credentials = grpc.ssl_channel_credentials(
            root_certificates=server.certs["ca.pem"],
            private_key=key,
            certificate_chain=cert,
        )
    # The certificate names localhost; connect to the address the server bound.
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"127.0.0.1:{server.port}", credentials, options) as channel:
        stub = pb.helloworld_pb2_grpc.GreeterStub(channel)
        return stub.SayHello(pb.helloworld_pb2.HelloRequest(name=name), timeout=CALL_TIMEOUT_S)


def test_tls_unary(pb, tls_server):
    reply = say_hello(pb, tls_server, "tls")
    assert reply.message == "Hello tls!"


def test_tls_refuses_a_client_that_does_not_trust_the_server(pb, tls_server, tmp_path):
    # A CA of its own: the server's certificate does not chain to it.
    other = TlsGreeter(tmp_path)
    try:
        stranger = type("Server", (), {"port": tls_server.port, "certs": other.certs})
        with pytest.raises(grpc.RpcError) as err:
            say_hello(pb, stranger, "stranger")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        other.stop()


def test_mtls_accepts_a_client_certificate_from_the_ca(pb, mtls_server):
    identity = (mtls_server.certs["client.pem"], mtls_server.certs["client.key"])
    reply = say_hello(pb, mtls_server, "mtls", identity)
    # The handler saw the certificate the client presented.
    assert reply.message.startswith("Hello mtls! (client certificate of ")


def test_mtls_refuses_a_client_without_a_certificate(pb, mtls_server):
    with pytest.raises(grpc.RpcError) as err:
        say_hello(pb, mtls_server, "anonymous")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # The refusal closed that connection only: the server still serves.
    identity = (mtls_server.certs["client.pem"], mtls_server.certs["client.key"])
    assert say_hello(pb, mtls_server, "again", identity).message.startswith("Hello again!")
