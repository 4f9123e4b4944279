#!/usr/bin/env python3
"""TCP proxy for host-native/benches/pull.sh: breaks one blob download half-way.

    pull_proxy.py UPSTREAM_PORT BLOB_PATH CUT_BYTES PORT_FILE [--strip-range]

Listens on a free 127.0.0.1 port (written to PORT_FILE once listening) and forwards every
connection to 127.0.0.1:UPSTREAM_PORT. The first GET whose path ends with BLOB_PATH gets its
response headers and CUT_BYTES body bytes, then both sockets are closed: the client sees a
truncated body. Everything after that passes untouched, except that with --strip-range every
`Range` request header is removed, so the registry answers 200 with the whole blob (a
registry that ignores Range).

Plain-HTTP requests are parsed as header blocks (a pull sends GET and HEAD only, without bodies); the
response to a request comes on its own connection after it, as HTTP/1.1 keep-alive without
pipelining does. Events go to stderr, one line each.
"""

import asyncio
import os
import sys

UPSTREAM_PORT = int(sys.argv[1])
BLOB_PATH = sys.argv[2].encode()
CUT_BYTES = int(sys.argv[3])
PORT_FILE = sys.argv[4]
STRIP_RANGE = "--strip-range" in sys.argv[5:]

state = {"cut_done": False}


def log(message):
    print(f"pull_proxy: {message}", file=sys.stderr, flush=True)


async def client_to_server(reader, writer, conn):
    buf = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buf += data
        if not buf[:1].isalpha():
            # Not HTTP (a TLS ClientHello: the client tries HTTPS first on loopback): passed
            # through, so that the registry answers it at once.
            writer.write(buf)
            buf = b""
            await writer.drain()
            continue
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            method, _, rest = lines[0].partition(b" ")
            target = rest.partition(b" ")[0]
            is_blob = target.split(b"?")[0].endswith(BLOB_PATH)
            ranges = [l for l in lines[1:] if l.lower().startswith(b"range:")]
            if is_blob:
                log(f"{method.decode()} blob, range: {ranges[0].decode() if ranges else 'none'}")
            if STRIP_RANGE and ranges:
                lines = [l for l in lines if not l.lower().startswith(b"range:")]
                log("stripped the Range header")
            if method == b"GET" and is_blob and not state["cut_done"]:
                state["cut_done"] = True
                conn["armed"] = True
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
            await writer.drain()
    writer.close()


async def server_to_client(reader, writer, conn, upstream_writer):
    head = b""
    body = 0
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if conn["armed"]:
            if body == 0 and b"\r\n\r\n" not in head:
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                headers, data = head.split(b"\r\n\r\n", 1)
                writer.write(headers + b"\r\n\r\n")
            take = min(len(data), CUT_BYTES - body)
            writer.write(data[:take])
            body += take
            if body >= CUT_BYTES:
                await writer.drain()
                log(f"cut the blob's body after {body} bytes")
                writer.close()
                upstream_writer.close()
                return
        else:
            writer.write(data)
        await writer.drain()
    writer.close()


async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM_PORT)
    except OSError as e:
        log(f"upstream: {e}")
        client_writer.close()
        return
    conn = {"armed": False}
    tasks = [
        asyncio.create_task(client_to_server(client_reader, up_writer, conn)),
        asyncio.create_task(server_to_client(up_reader, client_writer, conn, up_writer)),
    ]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    # Either side closing ends the connection (the client retries on a new one).
    for t in pending:
        t.cancel()
    for w in (up_writer, client_writer):
        w.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    async with server:
        await server.serve_forever()


asyncio.run(main())
