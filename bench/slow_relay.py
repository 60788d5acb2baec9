#!/usr/bin/env python3
"""A TCP relay that holds every chunk DELAY ms in each direction before passing it on: a
relay DELAY x 2 ms of round trip away, for a kernel without the netem qdisc. Chunks keep
their order and each is held from its own arrival, so a client that sends several commands
at once (pipelining) pays one delay for them, as over a real distance; bandwidth is not
limited.

usage: bench/slow_relay.py LISTEN_PORT TARGET_PORT DELAY_MS   prints "ready" once listening."""
import asyncio
import sys


async def carry(reader, writer, delay):
    loop = asyncio.get_running_loop()
    held = asyncio.Queue()

    async def release():
        while True:
            due, data = await held.get()
            if data is None:
                break
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    releasing = asyncio.create_task(release())
    try:
        while data := await reader.read(65536):
            held.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    held.put_nowait((0, None))
    try:
        await releasing
    except ConnectionError:
        pass


async def main(listen_port, target_port, delay):
    async def connection(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(carry(client_reader, server_writer, delay), carry(server_reader, client_writer, delay))

    server = await asyncio.start_server(connection, "127.0.0.1", listen_port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
