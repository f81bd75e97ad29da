"""Health checking and server reflection called by gRPC C-core (Python grpcio
with grpcio-health-checking and grpcio-reflection): clients that share no code
with ringrpc or tonic.

The server is `reflection-demo-server` from the ringrpc-reflection crate
(RINGRPC_EXAMPLES_BIN_DIR, default target/debug). If the binary is missing it is
built with `cargo build -p ringrpc-reflection --features demo-server --bins`.
"""

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

try:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
except ImportError as err:
    raise ImportError(
        "grpcio, grpcio-health-checking and grpcio-reflection are required: "
        "python3 -m pip install -r examples/python/requirements.txt"
    ) from err

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("RINGRPC_EXAMPLES_BIN_DIR", REPO / "target" / "debug"))
BINARY = "reflection-demo-server"

START_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 15
CALL_TIMEOUT_S = 10

ECHO = "ringrpc.demo.Echo"
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


def binary():
    path = BIN_DIR / BINARY
    if not path.is_file():
        subprocess.run(
            ["cargo", "build", "-p", "ringrpc-reflection", "--features", "demo-server", "--bins"],
            cwd=REPO,
            check=True,
        )
    if not path.is_file():
        pytest.fail(f"{path} is missing after building it (is RINGRPC_EXAMPLES_BIN_DIR right?)")
    return path


class Server:
    """The demo server as a subprocess: address read from its first stdout line."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [str(binary()), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True
        ).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"{BINARY} printed nothing within {START_TIMEOUT_S} s")
        assert line.startswith("listening on "), line
        self.addr = line.split(" ", 2)[2].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{BINARY} did not exit within {EXIT_TIMEOUT_S} s of SIGTERM")
        assert code == 0, f"{BINARY} exited with {code}: {self.proc.stderr.read()}"


@pytest.fixture
def server():
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.addr) as channel:
        yield channel


# --- health --------------------------------------------------------------------

def test_check_whole_server_and_services(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", ECHO):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S)
        assert reply.status == serving, service
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_list(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.List(health_pb2.HealthListRequest(), timeout=CALL_TIMEOUT_S)
    statuses = {name: response.status for name, response in reply.statuses.items()}
    serving = health_pb2.HealthCheckResponse.SERVING
    assert statuses == {"": serving, ECHO: serving}


def test_watch_unknown_service_is_a_status(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service="no.Such"), timeout=CALL_TIMEOUT_S)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    stream.cancel()


def test_watch_sees_not_serving_when_shutdown_begins(server):
    with grpc.insecure_channel(server.addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        server.proc.send_signal(signal.SIGTERM)
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Ending the watch lets the server finish draining.
        stream.cancel()
    server.stop()


# --- reflection ------------------------------------------------------------------

def test_v1alpha_descriptor_database(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    assert set(db.get_services()) == {ECHO, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA}

    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName(ECHO)
    assert [m.name for m in service.methods] == ["Say"]
    say = service.methods_by_name["Say"]
    assert say.input_type.full_name == "ringrpc.demo.EchoRequest"
    # A type from an imported file, reached through the dependency.
    tags = say.input_type.fields_by_name["tags"]
    assert tags.message_type.full_name == "ringrpc.demo.common.Tag"
    assert pool.FindMessageTypeByName("ringrpc.demo.EchoRequest.Options").fields_by_name["shout"]
    assert pool.FindEnumTypeByName("ringrpc.demo.Mood").values_by_name["MOOD_CALM"].number == 1
    assert [d.name for d in pool.FindFileByName("demo.proto").dependencies] == ["common.proto"]
    with pytest.raises(KeyError):
        pool.FindMessageTypeByName("ringrpc.demo.Missing")

    # The reflected types are enough to call the service.
    request_class = message_factory.GetMessageClass(say.input_type)
    reply_class = message_factory.GetMessageClass(say.output_type)
    call = channel.unary_unary(
        f"/{ECHO}/Say",
        request_serializer=request_class.SerializeToString,
        response_deserializer=reply_class.FromString,
    )
    request = request_class(text="hi")
    request.options.shout = True
    assert call(request, timeout=CALL_TIMEOUT_S).text == "HI"


def ask(channel, method, requests):
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=CALL_TIMEOUT_S))


@pytest.mark.parametrize("service", [REFLECTION_V1, REFLECTION_V1ALPHA])
def test_raw_reflection_stream(channel, service):
    # v1 and v1alpha messages are identical on the wire, so the v1alpha classes
    # serve for both paths.
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{ECHO}.Say"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="common.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="no_such.proto"),
        reflection_pb2.ServerReflectionRequest(
            all_extension_numbers_of_type="ringrpc.demo.EchoRequest"
        ),
    ]
    responses = ask(channel, f"/{service}/ServerReflectionInfo", requests)
    assert len(responses) == len(requests)
    for request, response in zip(requests, responses):
        assert response.original_request == request

    names = {s.name for s in responses[0].list_services_response.service}
    assert names == {ECHO, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA}

    def files(response):
        return [
            descriptor_pb2.FileDescriptorProto.FromString(b).name
            for b in response.file_descriptor_response.file_descriptor_proto
        ]

    assert files(responses[1]) == ["demo.proto", "common.proto"]
    assert files(responses[2]) == ["common.proto"]
    for response in responses[3:5]:
        assert response.WhichOneof("message_response") == "error_response"
        assert response.error_response.error_code == NOT_FOUND
    # A proto3 message has no extensions, but is known.
    numbers = responses[5]
    assert numbers.WhichOneof("message_response") == "all_extension_numbers_response"
    assert numbers.all_extension_numbers_response.base_type_name == "ringrpc.demo.EchoRequest"
    assert list(numbers.all_extension_numbers_response.extension_number) == []
