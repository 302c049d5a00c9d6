#!/usr/bin/env python3
"""The ceiling of serving a large file by copying it, against sendfile (issue 6, 1 GiB GET).

davit sends file bodies through hyper, which writes buffers it is given: every byte is copied
from the page cache into memory (read) and from there into the socket (write). nginx and Apache
hand the socket the file itself (sendfile), which skips both copies. This script serves one file
over loopback both ways, with nothing else in the path (no HTTP parsing, no framework), so the
gap between the two is what any server that copies pays, whatever it is written in.

    bench/copy_vs_sendfile.py FILE [--runs N]

For each mode it starts a one-shot server, fetches the file with curl, and prints curl's rate and
the server's CPU time (user + system) for the transfer.
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import threading

CHUNK = 256 * 1024  # what davit reads at a time


def serve_once(listener, path, mode, cpu):
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        size = os.path.getsize(path)
        start = resource.getrusage(resource.RUSAGE_THREAD)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        with open(path, "rb", buffering=0) as f:
            if mode == "sendfile":
                offset = 0
                while offset < size:
                    sent = os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
            else:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    conn.sendall(view[:n])
        end = resource.getrusage(resource.RUSAGE_THREAD)
        cpu.append((end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime))


def run(path, mode):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    cpu = []
    server = threading.Thread(target=serve_once, args=(listener, path, mode, cpu))
    server.start()
    rate = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True,
    ).stdout
    server.join()
    listener.close()
    return float(rate) / 1048576, cpu[0] if cpu else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gib = os.path.getsize(args.file) / 2**30
    subprocess.run(["cat", args.file], stdout=subprocess.DEVNULL, check=True)  # page cache
    print("| mode | MiB/s (each run) | server CPU ms per GiB (each run) |")
    print("|---|---|---|")
    for mode in ("copy", "sendfile"):
        results = [run(args.file, mode) for _ in range(args.runs)]
        rates = " ".join(f"{r:,.0f}" for r, _ in results)
        cpus = " ".join(f"{c / gib * 1000:,.0f}" for _, c in results)
        label = f"read {CHUNK // 1024} KiB + write" if mode == "copy" else "sendfile"
        print(f"| {label} | {rates} | {cpus} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
