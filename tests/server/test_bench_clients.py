"""The serve bench's raw HTTP client (bench/serve_clients.py) reads what the server sends:
the same status and body as httpx, over one kept-alive connection, and chunked answers."""

from __future__ import annotations

import asyncio
import importlib.util
from urllib.parse import urlsplit

import httpx

from .conftest import REPO


def _clients():
    spec = importlib.util.spec_from_file_location("serve_clients", REPO / "bench" / "serve_clients.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_raw_client_reads_what_httpx_reads(live_server):
    clients = _clients()
    url = urlsplit(live_server)
    targets = ["/api/run", "/api/samples/3", "/api/samples/3/image.png", "/api/samples?limit=5",
               "/api/samples/999999999", "/api/nothing-here"]  # fmt: skip

    async def fetch() -> list[tuple[int, bytes]]:
        conn = clients.Connection(url.hostname, url.port)
        try:
            got = [await conn.request("GET", t) for t in targets]
            got.append(await conn.request("POST", "/api/selection", b'{"ids": [1, 2]}',
                                          {"content-type": "application/json"}))  # fmt: skip
            return got
        finally:
            conn.close()

    got = asyncio.run(fetch())
    want = [httpx.get(live_server + t) for t in targets]
    want.append(httpx.post(live_server + "/api/selection", json={"ids": [1, 2]}))
    assert [(s, b) for s, b in got] == [(r.status_code, r.content) for r in want]
    assert {s for s, _ in got} >= {200, 404}


def test_chunked_answers_and_a_closed_connection():
    clients = _clients()
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy",
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
    ]

    async def main() -> list[tuple[int, bytes]]:
        connections = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while answers:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer:
                    break
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = clients.Connection("127.0.0.1", port)
        got = [await conn.request("GET", "/") for _ in range(3)]
        conn.close()
        server.close()
        await server.wait_closed()
        assert connections == 2  # the 503 closed the first; the client opened another
        return got

    assert asyncio.run(main()) == [(200, b"hello world"), (503, b"busy"), (304, b"")]
