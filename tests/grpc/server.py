#!/usr/bin/env python3
"""A gRPC server on gRPC's C-core (Python grpcio), for tests/grpc_core.rs.

Generic handlers with identity (bytes) serializers, so no protoc codegen is needed. Service
`sluice.test.Echo`:

- `Unary`: answers the request bytes. With metadata `x-want-status: CODE` (a name such as
  NOT_FOUND) it fails with that status instead, the request (UTF-8) as the status message.
- `ServerStream`: the request is a decimal count N; answers `msg-0` .. `msg-(N-1)`.
- `ClientStream`: answers `COUNT:` followed by every request message joined with `,`.
- `Bidi`: answers each message as soon as it arrives (`echo:MSG`), so a client can ping-pong.
- `Slow`: the request is `CALL_ID MS`; answers `done` after MS milliseconds unless the call
  ends first. Records for CALL_ID: `state` (running, done, cancelled) and `time_remaining` at
  the start (None when the client set no deadline).
- `Report`: the request is a CALL_ID; answers that record as JSON (`{}` if unknown).

Every method echoes the request metadata whose key starts with `x-echo-` (binary `-bin` keys
included) in its initial metadata and again in its trailing metadata, errors included.

Listens on 127.0.0.1, port 0 unless `--port` says otherwise, prints `PORT N` when ready, and
serves until killed or until its standard input closes.
"""

import argparse
import json
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "sluice.test.Echo"
RECORDS = {}
LOCK = threading.Lock()


def echoed(context):
    return tuple((k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-"))


def start(context):
    """Sends the echoed metadata at once (initial metadata) and again with the trailers."""
    md = echoed(context)
    context.send_initial_metadata(md)
    context.set_trailing_metadata(md)


def unary(request, context):
    start(context)
    md = dict(context.invocation_metadata())
    want = md.get("x-want-status")
    if want:
        context.abort(grpc.StatusCode[want], request.decode())
    return request


def server_stream(request, context):
    start(context)
    for i in range(int(request.decode())):
        yield f"msg-{i}".encode()


def client_stream(request_iterator, context):
    start(context)
    messages = [m.decode() for m in request_iterator]
    return f"{len(messages)}:{','.join(messages)}".encode()


def bidi(request_iterator, context):
    start(context)
    for m in request_iterator:
        yield b"echo:" + m


def slow(request, context):
    start(context)
    call_id, ms = request.decode().split()
    finished = threading.Event()

    def on_end():
        with LOCK:
            RECORDS[call_id]["state"] = "done" if finished.is_set() else "cancelled"

    with LOCK:
        RECORDS[call_id] = {"state": "running", "time_remaining": context.time_remaining()}
    context.add_callback(on_end)
    deadline = time.monotonic() + int(ms) / 1000
    while time.monotonic() < deadline:
        if not context.is_active():
            return b""
        time.sleep(0.02)
    finished.set()
    return b"done"


def report(request, context):
    with LOCK:
        record = dict(RECORDS.get(request.decode(), {}))
    return json.dumps(record).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handlers = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Report": grpc.unary_unary_rpc_method_handler(report),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    # The test holds our stdin open; when it goes away (even killed), so do we.
    sys.stdin.read()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
