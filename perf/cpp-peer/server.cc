// helloworld.Greeter and ringrpc.bench.Bench on gRPC C++: the reference row
// perf/compare measures beside ringrpc and tonic.
//
//   grpc-cpp-greeter-server [--host H] [--port N]
//
// One core: every RPC is driven by the async API on ONE completion queue
// polled by ONE thread (the main thread), the C++ equivalent of one ringrpc
// worker or tonic's current-thread runtime. gRPC core still starts a few
// helper threads of its own (timer manager, executor), which is why
// perf/compare also confines the whole process to one CPU with taskset and
// counts the CPU time of all its threads. The sync server was not used: its
// thread pool grows with load and cannot be held to one thread.
//
// Handlers match the Rust peers: SayHello answers "Hello <name>!"; Bench
// sends one pre-built all-zero payload per message, echoes ping-pong messages
// in order and counts uploaded bytes. Every call has at most one operation in flight,
// so a completion-queue tag is simply the call object.
//
// `--port 0` picks a free port. Prints `listening on HOST:PORT` once bound.
// SIGTERM or SIGINT end the process at once: a load peer has nothing in
// flight worth draining.

#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include "bench.grpc.pb.h"
#include "helloworld.grpc.pb.h"

namespace {

using grpc::ServerAsyncReader;
using grpc::ServerAsyncReaderWriter;
using grpc::ServerAsyncResponseWriter;
using grpc::ServerAsyncWriter;
using grpc::ServerCompletionQueue;
using grpc::ServerContext;
using grpc::Status;

// Requests posted per method before any call arrives: with only one, calls
// that arrive together would wait for the handler loop to post the next.
constexpr int kPendingPerMethod = 64;

struct Services {
  helloworld::Greeter::AsyncService greeter;
  ringrpc::bench::Bench::AsyncService bench;
  ServerCompletionQueue* cq = nullptr;
};

// One RPC in progress. `Proceed` runs when the call's single outstanding
// operation completes; it returns false when the object is done with.
class Call {
 public:
  virtual ~Call() = default;
  virtual bool Proceed(bool ok) = 0;
};

class SayHello final : public Call {
 public:
  explicit SayHello(Services* s) : s_(s), responder_(&ctx_) {
    s_->greeter.RequestSayHello(&ctx_, &request_, &responder_, s_->cq, s_->cq, this);
  }
  bool Proceed(bool ok) override {
    if (state_ == State::kWaiting) {
      if (!ok) return false;
      new SayHello(s_);
      reply_.set_message("Hello " + request_.name() + "!");
      state_ = State::kFinishing;
      responder_.Finish(reply_, Status::OK, this);
      return true;
    }
    return false;
  }

 private:
  enum class State { kWaiting, kFinishing };
  Services* s_;
  ServerContext ctx_;
  helloworld::HelloRequest request_;
  helloworld::HelloReply reply_;
  ServerAsyncResponseWriter<helloworld::HelloReply> responder_;
  State state_ = State::kWaiting;
};

class StreamDown final : public Call {
 public:
  explicit StreamDown(Services* s) : s_(s), writer_(&ctx_) {
    s_->bench.RequestStreamDown(&ctx_, &request_, &writer_, s_->cq, s_->cq, this);
  }
  bool Proceed(bool ok) override {
    switch (state_) {
      case State::kWaiting:
        if (!ok) return false;
        new StreamDown(s_);
        chunk_.mutable_payload()->assign(request_.message_size(), '\0');
        state_ = State::kWriting;
        return WriteNext();
      case State::kWriting:
        // A failed write means the client went away (count = 0 ends so).
        if (!ok) {
          state_ = State::kFinishing;
          writer_.Finish(Status::CANCELLED, this);
          return true;
        }
        return WriteNext();
      case State::kFinishing:
        return false;
    }
    return false;
  }

 private:
  bool WriteNext() {
    if (request_.count() != 0 && sent_ == request_.count()) {
      state_ = State::kFinishing;
      writer_.Finish(Status::OK, this);
      return true;
    }
    ++sent_;
    writer_.Write(chunk_, this);
    return true;
  }
  enum class State { kWaiting, kWriting, kFinishing };
  Services* s_;
  ServerContext ctx_;
  ringrpc::bench::StreamDownRequest request_;
  ringrpc::bench::Chunk chunk_;
  ServerAsyncWriter<ringrpc::bench::Chunk> writer_;
  State state_ = State::kWaiting;
  uint64_t sent_ = 0;
};

class PingPong final : public Call {
 public:
  explicit PingPong(Services* s) : s_(s), stream_(&ctx_) {
    s_->bench.RequestPingPong(&ctx_, &stream_, s_->cq, s_->cq, this);
  }
  bool Proceed(bool ok) override {
    switch (state_) {
      case State::kWaiting:
        if (!ok) return false;
        new PingPong(s_);
        state_ = State::kReading;
        stream_.Read(&chunk_, this);
        return true;
      case State::kReading:
        if (!ok) {  // the client half-closed (or left)
          state_ = State::kFinishing;
          stream_.Finish(Status::OK, this);
          return true;
        }
        state_ = State::kWriting;
        stream_.Write(chunk_, this);
        return true;
      case State::kWriting:
        if (!ok) {
          state_ = State::kFinishing;
          stream_.Finish(Status::CANCELLED, this);
          return true;
        }
        state_ = State::kReading;
        stream_.Read(&chunk_, this);
        return true;
      case State::kFinishing:
        return false;
    }
    return false;
  }

 private:
  enum class State { kWaiting, kReading, kWriting, kFinishing };
  Services* s_;
  ServerContext ctx_;
  ringrpc::bench::Chunk chunk_;
  ServerAsyncReaderWriter<ringrpc::bench::Chunk, ringrpc::bench::Chunk> stream_;
  State state_ = State::kWaiting;
};

class StreamUp final : public Call {
 public:
  explicit StreamUp(Services* s) : s_(s), reader_(&ctx_) {
    s_->bench.RequestStreamUp(&ctx_, &reader_, s_->cq, s_->cq, this);
  }
  bool Proceed(bool ok) override {
    switch (state_) {
      case State::kWaiting:
        if (!ok) return false;
        new StreamUp(s_);
        state_ = State::kReading;
        reader_.Read(&chunk_, this);
        return true;
      case State::kReading:
        if (!ok) {  // end of the upload
          summary_.set_bytes(bytes_);
          summary_.set_messages(messages_);
          state_ = State::kFinishing;
          reader_.Finish(summary_, Status::OK, this);
          return true;
        }
        bytes_ += chunk_.payload().size();
        ++messages_;
        reader_.Read(&chunk_, this);
        return true;
      case State::kFinishing:
        return false;
    }
    return false;
  }

 private:
  enum class State { kWaiting, kReading, kFinishing };
  Services* s_;
  ServerContext ctx_;
  ringrpc::bench::Chunk chunk_;
  ringrpc::bench::UpSummary summary_;
  ServerAsyncReader<ringrpc::bench::UpSummary, ringrpc::bench::Chunk> reader_;
  State state_ = State::kWaiting;
  uint64_t bytes_ = 0;
  uint64_t messages_ = 0;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr, "%s\nusage: grpc-cpp-greeter-server [--host H] [--port N]\n",
               problem.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 50051;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) Usage(std::string(argv[i]) + " needs a value");
    if (std::strcmp(argv[i], "--host") == 0) {
      host = argv[i + 1];
    } else if (std::strcmp(argv[i], "--port") == 0) {
      char* end = nullptr;
      long value = std::strtol(argv[i + 1], &end, 10);
      if (*end != '\0' || value < 0 || value > 65535) Usage("--port: invalid value");
      port = static_cast<int>(value);
    } else {
      Usage(std::string("unknown flag ") + argv[i]);
    }
  }

  // Blocked before gRPC starts its threads, so only the waiter below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    _exit(0);
  }).detach();

  Services services;
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.RegisterService(&services.greeter);
  builder.RegisterService(&services.bench);
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  std::unique_ptr<ServerCompletionQueue> cq = builder.AddCompletionQueue();
  services.cq = cq.get();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    std::fprintf(stderr, "could not listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  std::printf("listening on %s:%d\n", host.c_str(), bound_port);
  std::fflush(stdout);

  for (int i = 0; i < kPendingPerMethod; ++i) {
    new SayHello(&services);
    new StreamDown(&services);
    new PingPong(&services);
    new StreamUp(&services);
  }
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    Call* call = static_cast<Call*>(tag);
    if (!call->Proceed(ok)) delete call;
  }
  return 0;
}
