"""gRPC's interoperability test cases (grpc/grpc doc/interop-test-descriptions.md)
run by gRPC C-core (Python grpcio) against the `interop-server` example binary.

The stubs are generated from examples/proto/grpc/testing at test time. Their
proto import paths (grpc/testing/...) would make Python modules named
`grpc.testing.*`, which clash with grpcio's own `grpc` package, so the files are
copied flat into a temporary directory with their imports rewritten to match;
the proto package (grpc.testing) and so the wire names stay the same.

What grpcio cannot express is said where it matters: it compresses all request
messages of a call or none, and it does not show a response message's
compressed flag, so the compression cases check statuses and payloads (the flags
on the wire are covered by the engine's end-to-end tests).

Run with `python3 -m pytest examples/python` after
`cargo build -p ringrpc-examples --bins`.
"""

import importlib
import queue
import re
import subprocess
import sys

import pytest

import grpc

from test_route_guide import CALL_TIMEOUT_S, REPO, ServerProcess, connect

PROTO_DIR = REPO / "examples" / "proto" / "grpc" / "testing"

INITIAL = "x-grpc-test-echo-initial"
TRAILING = "x-grpc-test-echo-trailing-bin"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    src = tmp_path_factory.mktemp("interop_protos")
    out = tmp_path_factory.mktemp("interop_stubs")
    for name in ["empty.proto", "messages.proto", "test.proto"]:
        text = (PROTO_DIR / name).read_text()
        text = re.sub(r'import "grpc/testing/([a-z_]+\.proto)";', r'import "\1";', text)
        (src / name).write_text(text)
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{src}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "empty.proto", "messages.proto", "test.proto",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(out))
    names = ["empty_pb2", "messages_pb2", "test_pb2", "test_pb2_grpc"]
    return type("Stubs", (), {n: importlib.import_module(n) for n in names})


@pytest.fixture(scope="module")
def server():
    process = ServerProcess("interop-server", "--port", "0", "--workers", "2")
    yield process
    process.assert_drained()


@pytest.fixture
def channel(server):
    channel = connect(server.addr)
    yield channel
    channel.close()


@pytest.fixture
def stub(pb, channel):
    return pb.test_pb2_grpc.TestServiceStub(channel)


def zeros(pb, size):
    return pb.messages_pb2.Payload(body=b"\0" * size)


def large_request(pb, **fields):
    return pb.messages_pb2.SimpleRequest(
        response_size=314159, payload=zeros(pb, 271828), **fields
    )


def output_request(pb, sizes, payload=0, **fields):
    m = pb.messages_pb2
    return m.StreamingOutputCallRequest(
        response_parameters=[m.ResponseParameters(size=s) for s in sizes],
        payload=zeros(pb, payload) if payload else None,
        **fields,
    )


def body_of(response):
    assert response.payload.body == b"\0" * len(response.payload.body)
    return len(response.payload.body)


class Requests:
    """A request iterator a test feeds one message at a time; `close` ends it."""

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def send(self, message):
        self._queue.put(message)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        return item


def test_empty_unary(pb, stub):
    assert stub.EmptyCall(pb.empty_pb2.Empty(), timeout=CALL_TIMEOUT_S) == pb.empty_pb2.Empty()


def test_large_unary(pb, stub):
    response = stub.UnaryCall(large_request(pb), timeout=CALL_TIMEOUT_S)
    assert body_of(response) == 314159


def test_client_compressed_unary(pb, stub):
    expect = pb.messages_pb2.BoolValue(value=True)
    with pytest.raises(grpc.RpcError) as probe:
        stub.UnaryCall(large_request(pb, expect_compressed=expect), timeout=CALL_TIMEOUT_S)
    assert probe.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = stub.UnaryCall(
        large_request(pb, expect_compressed=expect),
        compression=grpc.Compression.Gzip,
        timeout=CALL_TIMEOUT_S,
    )
    assert body_of(response) == 314159
    response = stub.UnaryCall(
        large_request(pb, expect_compressed=pb.messages_pb2.BoolValue(value=False)),
        timeout=CALL_TIMEOUT_S,
    )
    assert body_of(response) == 314159


def test_server_compressed_unary(pb, stub):
    # grpcio accepts gzip by default, so the server compresses unless told not to;
    # both must decode.
    for compressed in [True, False]:
        request = large_request(
            pb, response_compressed=pb.messages_pb2.BoolValue(value=compressed)
        )
        assert body_of(stub.UnaryCall(request, timeout=CALL_TIMEOUT_S)) == 314159


def test_client_streaming(pb, stub):
    requests = [
        pb.messages_pb2.StreamingInputCallRequest(payload=zeros(pb, size))
        for size in [27182, 8, 1828, 45904]
    ]
    response = stub.StreamingInputCall(iter(requests), timeout=CALL_TIMEOUT_S)
    assert response.aggregated_payload_size == 74922


def test_client_compressed_streaming(pb, stub):
    m = pb.messages_pb2
    probe = [m.StreamingInputCallRequest(payload=zeros(pb, 27182), expect_compressed=m.BoolValue(value=True))]
    with pytest.raises(grpc.RpcError) as err:
        stub.StreamingInputCall(iter(probe), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The second message would go out uncompressed in the full case; grpcio
    # compresses the whole call.
    requests = [
        m.StreamingInputCallRequest(payload=zeros(pb, 27182), expect_compressed=m.BoolValue(value=True)),
        m.StreamingInputCallRequest(payload=zeros(pb, 45904), expect_compressed=m.BoolValue(value=False)),
    ]
    response = stub.StreamingInputCall(
        iter(requests), compression=grpc.Compression.Gzip, timeout=CALL_TIMEOUT_S
    )
    assert response.aggregated_payload_size == 73086


def test_server_streaming(pb, stub):
    sizes = [31415, 9, 2653, 58979]
    responses = stub.StreamingOutputCall(output_request(pb, sizes), timeout=CALL_TIMEOUT_S)
    assert [body_of(r) for r in responses] == sizes


def test_server_compressed_streaming(pb, stub):
    m = pb.messages_pb2
    request = output_request(pb, [31415, 92653])
    request.response_parameters[0].compressed.value = True
    request.response_parameters[1].compressed.CopyFrom(m.BoolValue(value=False))
    responses = stub.StreamingOutputCall(request, timeout=CALL_TIMEOUT_S)
    assert [body_of(r) for r in responses] == [31415, 92653]


def test_ping_pong(pb, stub):
    requests = Requests()
    responses = stub.FullDuplexCall(requests, timeout=CALL_TIMEOUT_S)
    for size, payload in [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]:
        requests.send(output_request(pb, [size], payload))
        assert body_of(next(responses)) == size
    requests.close()
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_empty_stream(pb, stub):
    responses = stub.FullDuplexCall(iter([]), timeout=CALL_TIMEOUT_S)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_custom_metadata(pb, stub):
    metadata = [(INITIAL, "test_initial_metadata_value"), (TRAILING, b"\xab\xab\xab")]
    response, call = stub.UnaryCall.with_call(
        large_request(pb), metadata=metadata, timeout=CALL_TIMEOUT_S
    )
    assert body_of(response) == 314159
    assert (INITIAL, "test_initial_metadata_value") in call.initial_metadata()
    assert (TRAILING, b"\xab\xab\xab") in call.trailing_metadata()

    responses = stub.FullDuplexCall(
        iter([output_request(pb, [314159], 271828)]), metadata=metadata, timeout=CALL_TIMEOUT_S
    )
    assert [body_of(r) for r in responses] == [314159]
    assert (INITIAL, "test_initial_metadata_value") in responses.initial_metadata()
    assert (TRAILING, b"\xab\xab\xab") in responses.trailing_metadata()


def check_status_echo(pb, stub, message):
    status = pb.messages_pb2.EchoStatus(code=2, message=message)
    with pytest.raises(grpc.RpcError) as err:
        stub.UnaryCall(pb.messages_pb2.SimpleRequest(response_status=status), timeout=CALL_TIMEOUT_S)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNKNOWN, message)

    responses = stub.FullDuplexCall(
        iter([pb.messages_pb2.StreamingOutputCallRequest(response_status=status)]),
        timeout=CALL_TIMEOUT_S,
    )
    with pytest.raises(grpc.RpcError) as err:
        list(responses)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNKNOWN, message)


def test_status_code_and_message(pb, stub):
    check_status_echo(pb, stub, "test status message")


def test_special_status_message(pb, stub):
    check_status_echo(pb, stub, SPECIAL_MESSAGE)


def test_unimplemented_method(pb, stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.UnimplementedMethod(pb.empty_pb2.Empty(), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unimplemented_service(pb, channel):
    stub = pb.test_pb2_grpc.UnimplementedServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.UnimplementedCall(pb.empty_pb2.Empty(), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cancel_after_begin(pb, stub):
    requests = Requests()
    future = stub.StreamingInputCall.future(requests, timeout=CALL_TIMEOUT_S)
    assert future.cancel()
    requests.close()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    assert future.code() == grpc.StatusCode.CANCELLED


def test_cancel_after_first_response(pb, stub):
    requests = Requests()
    responses = stub.FullDuplexCall(requests, timeout=CALL_TIMEOUT_S)
    requests.send(output_request(pb, [31415], 27182))
    assert body_of(next(responses)) == 31415
    responses.cancel()
    requests.close()
    with pytest.raises(grpc.RpcError) as err:
        next(responses)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    # The connection keeps serving after the reset.
    assert stub.EmptyCall(pb.empty_pb2.Empty(), timeout=CALL_TIMEOUT_S) == pb.empty_pb2.Empty()


def test_timeout_on_sleeping_server(pb, stub):
    requests = Requests()
    requests.send(output_request(pb, [], 27182))
    responses = stub.FullDuplexCall(requests, timeout=0.001)
    with pytest.raises(grpc.RpcError) as err:
        list(responses)
    requests.close()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
