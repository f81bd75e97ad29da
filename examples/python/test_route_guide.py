"""The example servers called by gRPC C-core (Python grpcio): a client that
shares no code with ringrpc or tonic.

The stubs are generated from examples/proto at test time, the servers are the
built example binaries (RINGRPC_EXAMPLES_BIN_DIR, default target/debug), and
every expectation about route_guide is derived from the server's documented
feature database rather than from its replies.

Run with `python3 -m pytest examples/python` after
`cargo build -p ringrpc-examples --bins`.
"""

import importlib
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# A missing grpcio is a failed run, not a skipped one: this file exists to prove
# that an independent client works, so it must not pass without one.
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

# Generous for a debug build on a loaded two-core machine.
START_TIMEOUT_S = 30
# The brief the servers are held to: a graceful drain ends within this.
EXIT_TIMEOUT_S = 15
CALL_TIMEOUT_S = 10


# --- the server's feature database, restated ---------------------------------

def feature_db():
    """(name, latitude, longitude) of every feature, in the server's order:
    a 10 x 10 grid one degree apart, every fifth place unnamed."""
    return [
        (
            "" if i % 5 == 4 else f"Landmark {i}, Route 66",
            400_000_000 + (i // 10) * 1_000_000,
            -740_000_000 + (i % 10) * 1_000_000,
        )
        for i in range(100)
    ]


def named_feature_at(lat, lon):
    return any(name and (la, lo) == (lat, lon) for name, la, lo in feature_db())


def haversine_m(a, b):
    """Great-circle distance in metres between (lat, lon) points in degrees x 1e7."""
    lat1 = math.radians(a[0] / 1e7)
    lat2 = math.radians(b[0] / 1e7)
    dlat = lat2 - lat1
    dlon = math.radians((b[1] - a[1]) / 1e7)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return int(2 * 6_371_000.0 * math.atan2(math.sqrt(h), math.sqrt(1 - h)))


# --- servers as subprocesses ---------------------------------------------------

class ServerProcess:
    """One example server binary: started, its address read from stdout, and
    stopped with SIGTERM. Both output streams are collected for diagnostics."""

    def __init__(self, binary, *args):
        path = BIN_DIR / binary
        if not path.is_file():
            pytest.fail(f"{path} is missing: run `cargo build -p ringrpc-examples --bins` first")
        self.name = binary
        self.proc = subprocess.Popen(
            [str(path), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            line = self.wait_for_line("stdout", lambda l: l.startswith("listening on "), START_TIMEOUT_S)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.addr = line.split(" ", 2)[2].strip()

    def _read(self, stream, which):
        for line in stream:
            with self._changed:
                self._lines[which].append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self):
        with self._changed:
            return "\n".join(
                [f"[{self.name} stdout] {l}" for l in self._lines["stdout"]]
                + [f"[{self.name} stderr] {l}" for l in self._lines["stderr"]]
            )

    def wait_for_line(self, which, matches, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[which]:
                    if matches(line):
                        return line
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(
                        f"{self.name} exited with {self.proc.returncode} before the expected "
                        f"line on {which}\n{self.output()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name}: no expected line on {which} within {timeout} s\n{self.output()}"
                    )
                self._changed.wait(min(left, 0.2))

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        """SIGTERM, then the exit status within EXIT_TIMEOUT_S (killed if not)."""
        if self.proc.poll() is None:
            self.terminate()
        try:
            return self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.name} did not exit within {EXIT_TIMEOUT_S} s of SIGTERM\n{self.output()}"
            )
        finally:
            for reader in self._readers:
                reader.join(5)

    def assert_drained(self):
        code = self.stop()
        assert code == 0, f"{self.name} exited with {code} after SIGTERM\n{self.output()}"


def connect(addr, options=()):
    channel = grpc.insecure_channel(addr, options=list(options))
    grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
    return channel


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules, by short name (route_guide_pb2, ..._pb2_grpc, ...)."""
    out = tmp_path_factory.mktemp("stubs")
    protos = ["route_guide.proto", "helloworld.proto"]
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stdout}\n{result.stderr}"
    # The generated *_pb2_grpc modules import their *_pb2 siblings by bare name.
    sys.path.insert(0, str(out))
    names = ["route_guide_pb2", "route_guide_pb2_grpc", "helloworld_pb2", "helloworld_pb2_grpc"]
    return type("Stubs", (), {n: importlib.import_module(n) for n in names})


@pytest.fixture(scope="session")
def route_guide_server():
    server = ServerProcess("route-guide-server", "--port", "0", "--workers", "2")
    yield server
    server.assert_drained()


@pytest.fixture(scope="session")
def greeter_server():
    server = ServerProcess("greeter-server", "--port", "0")
    yield server
    server.assert_drained()


@pytest.fixture(scope="session")
def rg_channel(route_guide_server):
    channel = connect(route_guide_server.addr)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def route_guide(pb, rg_channel):
    return pb.route_guide_pb2_grpc.RouteGuideStub(rg_channel)


@pytest.fixture(scope="session")
def greeter(pb, greeter_server):
    channel = connect(greeter_server.addr)
    yield pb.helloworld_pb2_grpc.GreeterStub(channel)
    channel.close()


# --- greeter ---------------------------------------------------------------------

def test_say_hello(pb, greeter):
    reply = greeter.SayHello(pb.helloworld_pb2.HelloRequest(name="grpcio"), timeout=CALL_TIMEOUT_S)
    assert reply.message == "Hello grpcio!"


def test_say_hello_with_multi_frame_messages(pb, greeter):
    # 2 MiB each way: many DATA frames and several window updates in both directions.
    name = "x" * (2 * 1024 * 1024)
    reply = greeter.SayHello(pb.helloworld_pb2.HelloRequest(name=name), timeout=CALL_TIMEOUT_S)
    assert reply.message == f"Hello {name}!"


def test_request_over_the_message_limit_is_resource_exhausted(pb, greeter):
    # The servers keep the common 4 MiB receive limit; the client sends without one.
    name = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as err:
        greeter.SayHello(pb.helloworld_pb2.HelloRequest(name=name), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value


def test_unsupported_request_compression_is_unimplemented(pb, greeter):
    # The servers take gzip and zstd, not deflate: a deflate request is refused as
    # the gRPC compression spec asks, not misread as an uncompressed message.
    with pytest.raises(grpc.RpcError) as err:
        greeter.SayHello(
            pb.helloworld_pb2.HelloRequest(name="z" * 1000),
            timeout=CALL_TIMEOUT_S,
            compression=grpc.Compression.Deflate,
        )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value


def test_gzip_request_compression(pb, greeter):
    name = "z" * 100_000
    reply = greeter.SayHello(
        pb.helloworld_pb2.HelloRequest(name=name),
        timeout=CALL_TIMEOUT_S,
        compression=grpc.Compression.Gzip,
    )
    assert reply.message == f"Hello {name}!"


def test_greeter_server_does_not_serve_route_guide(pb, greeter_server):
    with connect(greeter_server.addr) as channel:
        stub = pb.route_guide_pb2_grpc.RouteGuideStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetFeature(pb.route_guide_pb2.Point(), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value


# --- route_guide: unary ----------------------------------------------------------

def test_get_feature_known_point(pb, route_guide):
    point = pb.route_guide_pb2.Point(latitude=400_000_000, longitude=-740_000_000)
    feature = route_guide.GetFeature(point, timeout=CALL_TIMEOUT_S)
    assert feature.name == "Landmark 0, Route 66"
    assert feature.location == point


def test_get_feature_every_database_entry(pb, route_guide):
    for name, lat, lon in feature_db():
        point = pb.route_guide_pb2.Point(latitude=lat, longitude=lon)
        assert route_guide.GetFeature(point, timeout=CALL_TIMEOUT_S).name == name


def test_get_feature_unknown_point_has_no_name(pb, route_guide):
    point = pb.route_guide_pb2.Point(latitude=1, longitude=2)
    feature = route_guide.GetFeature(point, timeout=CALL_TIMEOUT_S)
    assert feature.name == ""
    assert feature.location == point


def test_get_feature_ignores_unknown_request_metadata(pb, route_guide):
    point = pb.route_guide_pb2.Point(latitude=400_000_000, longitude=-739_000_000)
    feature, call = route_guide.GetFeature.with_call(
        point,
        timeout=CALL_TIMEOUT_S,
        metadata=[("x-request-id", "abc-123"), ("x-trace-bin", b"\x00\x01\xfe\xff")],
    )
    assert feature.name == "Landmark 1, Route 66"
    assert call.code() == grpc.StatusCode.OK


def test_many_concurrent_calls_on_one_channel(pb, route_guide):
    db = feature_db()
    futures = []
    for i in range(200):
        name, lat, lon = db[i % len(db)]
        point = pb.route_guide_pb2.Point(latitude=lat, longitude=lon)
        futures.append((name, route_guide.GetFeature.future(point, timeout=CALL_TIMEOUT_S)))
    assert [f.result().name for _, f in futures] == [name for name, _ in futures]


def test_calls_on_separate_connections(pb, route_guide_server):
    # Channels to one target share a connection unless told otherwise; several
    # connections give both workers of the server some to serve.
    channels = [
        connect(route_guide_server.addr, [("grpc.use_local_subchannel_pool", 1)]) for _ in range(4)
    ]
    try:
        for channel in channels:
            stub = pb.route_guide_pb2_grpc.RouteGuideStub(channel)
            point = pb.route_guide_pb2.Point(latitude=409_000_000, longitude=-732_000_000)
            assert stub.GetFeature(point, timeout=CALL_TIMEOUT_S).name == "Landmark 98, Route 66"
    finally:
        for channel in channels:
            channel.close()


# --- route_guide: server streaming -----------------------------------------------

def test_list_features_in_rectangle(pb, route_guide):
    lo = (400_000_000, -750_000_000)
    hi = (402_000_000, -737_000_000)
    rect = pb.route_guide_pb2.Rectangle(
        lo=pb.route_guide_pb2.Point(latitude=lo[0], longitude=lo[1]),
        hi=pb.route_guide_pb2.Point(latitude=hi[0], longitude=hi[1]),
    )
    expected = [
        (name, lat, lon)
        for name, lat, lon in feature_db()
        if lo[0] <= lat <= hi[0] and lo[1] <= lon <= hi[1]
    ]
    got = [
        (f.name, f.location.latitude, f.location.longitude)
        for f in route_guide.ListFeatures(rect, timeout=CALL_TIMEOUT_S)
    ]
    assert len(expected) == 12
    assert got == expected


def test_list_features_whole_grid_with_corners_swapped(pb, route_guide):
    # The server normalises the corners, so a hi-before-lo rectangle still covers
    # the grid, unnamed places included.
    rect = pb.route_guide_pb2.Rectangle(
        lo=pb.route_guide_pb2.Point(latitude=410_000_000, longitude=-730_000_000),
        hi=pb.route_guide_pb2.Point(latitude=390_000_000, longitude=-750_000_000),
    )
    got = [
        (f.name, f.location.latitude, f.location.longitude)
        for f in route_guide.ListFeatures(rect, timeout=CALL_TIMEOUT_S)
    ]
    assert got == feature_db()


def test_list_features_without_a_corner_is_invalid_argument(pb, route_guide):
    rect = pb.route_guide_pb2.Rectangle(lo=pb.route_guide_pb2.Point(latitude=1, longitude=1))
    with pytest.raises(grpc.RpcError) as err:
        list(route_guide.ListFeatures(rect, timeout=CALL_TIMEOUT_S))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert err.value.details() == "a rectangle needs both corners"


# --- route_guide: client streaming -----------------------------------------------

def test_record_route(pb, route_guide):
    route = [
        (400_000_000, -740_000_000),  # Landmark 0
        (400_000_000, -736_000_000),  # i = 4: in the grid, unnamed
        (401_000_000, -738_000_000),  # Landmark 12
        (123_456_789, 98_765_432),    # nowhere
        (401_000_000, -738_000_000),  # Landmark 12 again: counted again
    ]
    points = [pb.route_guide_pb2.Point(latitude=lat, longitude=lon) for lat, lon in route]
    summary = route_guide.RecordRoute(iter(points), timeout=CALL_TIMEOUT_S)
    assert summary.point_count == len(route)
    assert summary.feature_count == sum(named_feature_at(*p) for p in route)
    assert summary.feature_count == 3
    expected_distance = sum(haversine_m(a, b) for a, b in zip(route, route[1:]))
    # Each leg is truncated on both sides; libm may differ in the last bit.
    assert abs(summary.distance - expected_distance) <= len(route) - 1
    assert 0 <= summary.elapsed_time <= CALL_TIMEOUT_S


def test_record_route_of_no_points(pb, route_guide):
    summary = route_guide.RecordRoute(iter([]), timeout=CALL_TIMEOUT_S)
    assert (summary.point_count, summary.feature_count, summary.distance) == (0, 0, 0)


# --- route_guide: bidirectional streaming ----------------------------------------

def note(pb, lat, lon, message):
    return pb.route_guide_pb2.RouteNote(
        location=pb.route_guide_pb2.Point(latitude=lat, longitude=lon), message=message
    )


def as_tuples(notes):
    return [(n.location.latitude, n.location.longitude, n.message) for n in notes]


def test_route_chat(pb, route_guide):
    # Locations used by no other test: notes persist per worker for the server's life.
    a = (10_000_001, 20_000_001)
    b = (10_000_002, 20_000_002)
    sent = [(*a, "a1"), (*b, "b1"), (*a, "a2"), (*b, "b2"), (*a, "a3")]
    got = as_tuples(route_guide.RouteChat(iter([note(pb, *n) for n in sent]), timeout=CALL_TIMEOUT_S))

    # Each note is answered with the notes left earlier at its location, oldest first.
    expected = []
    for i, (lat, lon, _) in enumerate(sent):
        expected += [n for n in sent[:i] if n[:2] == (lat, lon)]
    assert got == expected
    assert got == [(*a, "a1"), (*b, "b1"), (*a, "a1"), (*a, "a2")]

    # A later call on the same connection (so on the same worker) sees them too.
    got = as_tuples(route_guide.RouteChat(iter([note(pb, *a, "a4")]), timeout=CALL_TIMEOUT_S))
    assert got == [n for n in sent if n[:2] == a]


def test_route_chat_interleaved(pb, route_guide):
    # One note at a time, each reply read before the next note is written: the
    # stream is really bidirectional, not buffered until the request ends.
    loc = (10_000_003, 20_000_003)
    outbox = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    responses = route_guide.RouteChat(requests(), timeout=CALL_TIMEOUT_S)
    try:
        outbox.put(note(pb, *loc, "n0"))
        for i in range(1, 5):
            outbox.put(note(pb, *loc, f"n{i}"))
            got = [next(responses).message for _ in range(i)]
            assert got == [f"n{j}" for j in range(i)]
    finally:
        outbox.put(None)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


# --- unknown methods and services ------------------------------------------------

def test_unknown_method_is_unimplemented(rg_channel):
    call = rg_channel.unary_unary("/routeguide.RouteGuide/Nope")
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value


def test_unknown_service_is_unimplemented(rg_channel):
    call = rg_channel.unary_unary("/routeguide.Nowhere/GetFeature")
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value


def test_unknown_streaming_method_is_unimplemented(rg_channel):
    call = rg_channel.stream_stream("/routeguide.RouteGuide/NopeChat")
    with pytest.raises(grpc.RpcError) as err:
        list(call(iter([b"\x08\x01", b"\x08\x02"]), timeout=CALL_TIMEOUT_S))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value


def test_channel_still_serves_after_errors(pb, route_guide, rg_channel):
    with pytest.raises(grpc.RpcError):
        rg_channel.unary_unary("/routeguide.RouteGuide/Nope")(b"", timeout=CALL_TIMEOUT_S)
    point = pb.route_guide_pb2.Point(latitude=400_000_000, longitude=-740_000_000)
    assert route_guide.GetFeature(point, timeout=CALL_TIMEOUT_S).name == "Landmark 0, Route 66"


# --- graceful drain ----------------------------------------------------------------

def test_sigterm_lets_an_in_flight_call_finish(pb):
    # A server of its own, so the shared servers are not drained early.
    server = ServerProcess("route-guide-server", "--port", "0", "--workers", "1")
    channel = None
    loc = (10_000_004, 20_000_004)
    outbox = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    try:
        channel = connect(server.addr)
        stub = pb.route_guide_pb2_grpc.RouteGuideStub(channel)

        responses = stub.RouteChat(requests(), timeout=EXIT_TIMEOUT_S)
        outbox.put(note(pb, *loc, "before-1"))
        outbox.put(note(pb, *loc, "before-2"))
        # A reply means the handler is running: the call is in flight.
        assert next(responses).message == "before-1"

        server.terminate()
        server.wait_for_line("stderr", lambda l: "shutting down" in l, EXIT_TIMEOUT_S)

        # The drain lets the open call go on: it still reads and answers.
        outbox.put(note(pb, *loc, "during"))
        assert [next(responses).message for _ in range(2)] == ["before-1", "before-2"]
        outbox.put(None)
        assert list(responses) == []
        assert responses.code() == grpc.StatusCode.OK
    finally:
        outbox.put(None)
        if channel is not None:
            channel.close()
        server.assert_drained()
