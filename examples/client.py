"""A line-protocol client. The connection ``asyncio.open_connection`` returns is a socket the
program owns until it calls ``writer.close()``: a client that forgets leaves the socket open
until the garbage collector finds it, and a server counting its clients never sees it leave.

    python -m examples.client
"""

from __future__ import annotations

import asyncio


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(line.upper())
    await writer.drain()
    writer.close()


async def ask_leaking(port: int, question: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(question.encode() + b"\n")
    answer = await reader.readline()
    return answer.decode().strip()  # the mistake: the connection is never closed


async def ask(port: int, question: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(question.encode() + b"\n")
        answer = await reader.readline()
        return answer.decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        print(await ask(port, "hello"))


if __name__ == "__main__":
    asyncio.run(main())
