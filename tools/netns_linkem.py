"""A user-space link emulator for one node of tools/netns_cluster.sh: delays and drops the
frames between the node's veth and the bridge, both ways, where the kernel has no
``tc netem`` (no sch_netem: ``Specified qdisc kind is unknown``).

    python3 tools/netns_linkem.py VETH TAP BRIDGE --delay-ms 200 --jitter-ms 50 --loss 5

The host side of the node's veth pair (VETH) leaves the bridge; a TAP device takes its place
on it; this process carries every frame between the two (a raw packet socket on VETH, the
TAP's file descriptor; both with a virtio-net header, so that checksum offload and TCP
segmentation pass through as the kernel left them), each one delayed by delay ± jitter ms (uniform, as netem's jitter;
frames may overtake each other, as with netem) or dropped with probability loss %. Nothing
changes inside the node: its address, interface and connections stay as they are. On
SIGTERM it puts VETH back on the bridge and removes the TAP. Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_VNET_HDR = 263, 15
PACKET_OUTGOING = 4  # a frame this host sent on the interface: not one to carry
MAX_FRAME = 65536


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    return fd


class Link:
    def __init__(self, delay_s: float, jitter_s: float, loss: float, seed: int) -> None:
        self.delay_s, self.jitter_s, self.loss = delay_s, jitter_s, loss
        self.rng = random.Random(seed)
        self.queue: list[tuple[float, int, int, bytes]] = []  # (due, seq, direction, frame)
        self.seq = 0
        self.counts = {"carried": 0, "dropped": 0}

    def take(self, direction: int, frame: bytes, now: float) -> None:
        if self.rng.random() * 100 < self.loss:
            self.counts["dropped"] += 1
            return
        due = now + max(0.0, self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s))
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, direction, frame))

    def due(self, now: float) -> list[tuple[int, bytes]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, direction, frame = heapq.heappop(self.queue)
            out.append((direction, frame))
        self.counts["carried"] += len(out)
        return out

    def timeout(self, now: float) -> float | None:
        return max(0.0, self.queue[0][0] - now) if self.queue else None


def serve(veth: str, tap: int, link: Link) -> dict[str, int]:
    """Carry frames until SIGTERM or SIGINT; return the counts."""
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    raw.bind((veth, 0))
    raw.setblocking(False)
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    sel.register(raw, selectors.EVENT_READ, 0)  # from the node, to the bridge
    sel.register(tap, selectors.EVENT_READ, 1)  # from the bridge, to the node
    while not stop:
        for key, _ in sel.select(link.timeout(time.monotonic())):
            for frame in _read(key.data, raw, tap):
                link.take(key.data, frame, time.monotonic())
        for direction, frame in link.due(time.monotonic()):
            try:
                if direction == 0:
                    os.write(tap, frame)
                else:
                    raw.send(frame)
            except OSError:
                link.counts["dropped"] += 1  # a full queue drops, as a wire would
    raw.close()
    return link.counts


def _read(direction: int, raw: socket.socket, tap: int) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            if direction == 0:
                frame, addr = raw.recvfrom(MAX_FRAME)
                if addr[2] == PACKET_OUTGOING:
                    continue
            else:
                frame = os.read(tap, MAX_FRAME)
        except (BlockingIOError, InterruptedError):
            return out
        out.append(frame)


def rewire(veth: str, tap: str, bridge: str) -> None:
    """The TAP takes the veth's place on the bridge."""
    ip("link", "set", veth, "nomaster")
    ip("link", "set", veth, "arp", "off")  # the host must not answer the node's ARP on the veth itself
    ip("link", "set", tap, "master", bridge)
    ip("link", "set", tap, "up")


def restore(veth: str, bridge: str) -> None:
    for args in (("arp", "on"), ("master", bridge), ("up",)):
        subprocess.run(["ip", "link", "set", veth, *args])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("veth")
    parser.add_argument("tap")
    parser.add_argument("bridge")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument("--loss", type=float, default=5.0, help="percent of frames dropped, each way")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    link = Link(args.delay_ms / 1000, args.jitter_ms / 1000, args.loss, args.seed)
    tap = open_tap(args.tap)
    try:
        rewire(args.veth, args.tap, args.bridge)
        print(f"netns_linkem {args.veth} ready: {args.delay_ms:g} ms ± {args.jitter_ms:g} ms, {args.loss:g} % loss",
              flush=True)
        counts = serve(args.veth, tap, link)
        print(f"netns_linkem {args.veth}: {counts['carried']} frames carried, {counts['dropped']} dropped", flush=True)
    finally:
        os.close(tap)  # the TAP goes with its last descriptor
        restore(args.veth, args.bridge)


if __name__ == "__main__":
    main()
