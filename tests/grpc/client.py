#!/usr/bin/env python3
"""A gRPC client on gRPC's C-core (Python grpcio) for tests/grpc_core.rs: runs every case
against `sluice.test.Echo` (tests/grpc/server.py) at TARGET and prints one JSON object, case
name to what was observed. It judges nothing; the Rust test asserts.

    client.py --target 127.0.0.1:PORT --authority NAME:PORT [--ca CA.pem]

With `--ca` it speaks TLS (h2 by ALPN) trusting only that CA, verifying the certificate for
NAME and sending NAME as SNI; without it, plaintext HTTP/2 (h2c, prior knowledge). Either way
`:authority` is NAME:PORT, so the edge routes by it while the socket goes to TARGET.

Every call has a deadline (15 s unless the case sets a shorter one), so the run is bounded.
A failed call is reported as {"code": NAME, "details": TEXT}; an exception outside gRPC as
{"code": "CLIENT_EXCEPTION", ...}.
"""

import argparse
import hashlib
import json
import queue
import sys
import time
import uuid

import grpc

SERVICE = "/sluice.test.Echo/"
TIMEOUT = 15.0
# Binary metadata with every awkward byte class: NUL, high bytes, CR/LF, and non-UTF-8.
BIN = bytes([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF, 0x0D, 0x0A, 0xC3, 0x28])
TEXT = "hello sluice, text metadata"


def md_json(md):
    """Metadata as [[key, value]], -bin values as hex."""
    out = []
    for k, v in md or ():
        out.append([k, v.hex() if isinstance(v, bytes) else v])
    return out


def failure(e):
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        return {
            "code": e.code().name,
            "details": e.details(),
            "trailing_metadata": md_json(e.trailing_metadata()),
        }
    return {"code": "CLIENT_EXCEPTION", "details": repr(e)}


def report(channel, call_id):
    answer = channel.unary_unary(SERVICE + "Report")(call_id.encode(), timeout=TIMEOUT)
    return json.loads(answer.decode())


def wait_for_state(channel, call_id, states, limit):
    """Polls Report until the record's state is in `states`; the last record and the wait."""
    started = time.monotonic()
    record = {}
    while time.monotonic() - started < limit:
        record = report(channel, call_id)
        if record.get("state") in states:
            break
        time.sleep(0.05)
    return record, time.monotonic() - started


def case_unary(ch):
    reply, call = ch.unary_unary(SERVICE + "Unary").with_call(b"hello sluice", timeout=TIMEOUT)
    return {"code": call.code().name, "reply": reply.decode()}


def case_unary_large(ch):
    payload = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    reply = ch.unary_unary(SERVICE + "Unary")(payload, timeout=TIMEOUT)
    return {
        "code": "OK",
        "sent": len(payload),
        "received": len(reply),
        "identical": reply == payload,
    }


def case_server_streaming(ch):
    call = ch.unary_stream(SERVICE + "ServerStream")(b"100", timeout=TIMEOUT)
    replies = [m.decode() for m in call]
    return {"code": call.code().name, "replies": replies}


def case_client_streaming(ch):
    messages = (f"m{i}".encode() for i in range(50))
    reply = ch.stream_unary(SERVICE + "ClientStream")(messages, timeout=TIMEOUT)
    return {"code": "OK", "reply": reply.decode()}


def case_bidi(ch):
    """Ping-pong: each message is sent only after the answer to the previous one arrived, so
    a proxy that held the request stream until its end would stall (and hit the deadline)."""
    outgoing = queue.Queue()

    def requests():
        while True:
            m = outgoing.get()
            if m is None:
                return
            yield m

    call = ch.stream_stream(SERVICE + "Bidi")(requests(), timeout=TIMEOUT)
    replies = []
    for i in range(20):
        outgoing.put(f"ping-{i}".encode())
        replies.append(next(call).decode())
    outgoing.put(None)
    rest = [m.decode() for m in call]
    return {"code": call.code().name, "replies": replies + rest}


def case_metadata(ch):
    md = (("x-echo-text", TEXT), ("x-echo-bin", BIN))
    _, call = ch.unary_unary(SERVICE + "Unary").with_call(b"md", metadata=md, timeout=TIMEOUT)
    return {
        "code": call.code().name,
        "sent": md_json(md),
        "initial_metadata": md_json(call.initial_metadata()),
        "trailing_metadata": md_json(call.trailing_metadata()),
    }


def case_error_status(ch):
    md = (("x-want-status", "NOT_FOUND"), ("x-echo-text", TEXT))
    # Not ASCII: grpc-message travels percent-encoded.
    message = "no such greeting: café".encode()
    try:
        ch.unary_unary(SERVICE + "Unary")(message, metadata=md, timeout=TIMEOUT)
        return {"code": "OK"}
    except grpc.RpcError as e:
        return failure(e)


def case_deadline(ch):
    call_id = "deadline-" + uuid.uuid4().hex
    started = time.monotonic()
    try:
        ch.unary_unary(SERVICE + "Slow")(f"{call_id} 10000".encode(), timeout=1.0)
        out = {"code": "OK"}
    except grpc.RpcError as e:
        out = failure(e)
    out["elapsed"] = time.monotonic() - started
    # The server saw the deadline (grpc-timeout) and ended the call when it passed.
    record, _ = wait_for_state(ch, call_id, ("done", "cancelled"), 5.0)
    out["server"] = record
    return out


def case_cancel(ch):
    call_id = "cancel-" + uuid.uuid4().hex
    future = ch.unary_unary(SERVICE + "Slow").future(f"{call_id} 30000".encode(), timeout=30)
    running, _ = wait_for_state(ch, call_id, ("running",), 10.0)
    if running.get("state") != "running":
        future.cancel()
        return {"code": "NOT_STARTED", "server": running}
    future.cancel()
    record, waited = wait_for_state(ch, call_id, ("done", "cancelled"), 10.0)
    try:
        future.result(timeout=TIMEOUT)
        code = "OK"
    except grpc.FutureCancelledError:
        code = "CANCELLED"
    except grpc.RpcError as e:
        code = failure(e)["code"]
    return {"code": code, "server": record, "server_saw_it_after": waited}


CASES = {
    "unary": case_unary,
    "unary_large": case_unary_large,
    "server_streaming": case_server_streaming,
    "client_streaming": case_client_streaming,
    "bidi": case_bidi,
    "metadata": case_metadata,
    "error_status": case_error_status,
    "deadline": case_deadline,
    "cancel": case_cancel,
}


def channel(args):
    options = [("grpc.default_authority", args.authority), ("grpc.enable_http_proxy", 0)]
    if not args.ca:
        return grpc.insecure_channel(args.target, options=options)
    with open(args.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    host = args.authority.rsplit(":", 1)[0]
    options.append(("grpc.ssl_target_name_override", host))
    return grpc.secure_channel(args.target, creds, options=options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--authority", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--only", action="append", help="run only these cases")
    args = parser.parse_args()
    results = {}
    with channel(args) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=10)
        except grpc.FutureTimeoutError:
            results["connect"] = {"code": "NOT_READY", "details": "channel not ready in 10 s"}
        for name, case in CASES.items():
            if args.only and name not in args.only:
                continue
            try:
                results[name] = case(ch)
            except Exception as e:  # noqa: BLE001 - every failure is a result to report
                results[name] = failure(e)
    json.dump(results, sys.stdout, ensure_ascii=False)
    print(flush=True)


if __name__ == "__main__":
    main()
