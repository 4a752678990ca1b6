"""The webhook ingress under load (issue 26: p99 answer under 50 ms at 1,000 requests per second).

  ingress_bench.py --url http://127.0.0.1:PORT/hooks/ENDPOINT --token TOKEN [--rate 1000] [--seconds 30]
                   [--connections 64] [--tickets 500]

An open-loop load: request n is due at start + n/rate, whatever the answers before it; its latency is
counted from that due time (a request that waits for a free connection waits on the clock, so a slow
server cannot hide its queue: no coordinated omission). Keep-alive HTTP/1.1 connections over asyncio
streams, no dependency. Prints one line: `ingress: N requests at R/s (reached R'/s): p50 … ms, p99 … ms,
max … ms; answers {code: count}`.
"""
import argparse
import asyncio
import json
import time
import urllib.parse


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--tickets", type=int, default=500)
    a = p.parse_args()
    url = urllib.parse.urlsplit(a.url)
    total = int(a.rate * a.seconds)
    queue: asyncio.Queue = asyncio.Queue()
    latencies, codes = [], {}
    start = time.monotonic() + 0.5

    async def connection():
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        while True:
            n = await queue.get()
            if n is None:
                writer.close()
                return
            body = json.dumps({"number": f"IB{n % a.tickets:05d}", "short_description": f"webhook {n}", "seq": n}).encode()
            head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {a.token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            writer.write(head + body)
            await writer.drain()
            status = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            code = int(status.split()[1]) if status else 0
            codes[code] = codes.get(code, 0) + 1
            latencies.append(time.monotonic() - (start + n / a.rate))

    workers = [asyncio.create_task(connection()) for _ in range(a.connections)]
    for n in range(total):
        delay = start + n / a.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(n)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - start
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    print(f"ingress: {total} requests at {a.rate:.0f}/s (reached {len(latencies) / elapsed:.0f}/s): p50 {pct(0.5):.1f} ms, "
          f"p99 {pct(0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms; answers {json.dumps(codes, sort_keys=True)}")


if __name__ == "__main__":
    asyncio.run(main())
