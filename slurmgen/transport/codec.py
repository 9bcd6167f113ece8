"""The one place that turns messages into frames and back.

Frame layout on every slurmgen ZeroMQ socket::

    ROUTER side: [sender identity] [body]
    DEALER side:                   [body]

``body`` is the JSON encoding (msgspec) of one Struct of ``slurmgen.protocol``; the
Struct's tag (the ``type`` key) says which. JSON rather than msgpack so that fields kept
as ``msgspec.Raw`` (rows, workflow state, tool calls) travel and land in the output
records byte for byte, never re-encoded. No pickle, no other framing. A frame over
``MAX_FRAME_BYTES`` or one that does not decode as the channel's union is refused:
the decoder returns ``None`` and the caller counts and logs it; nothing crashes.
"""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

import msgspec

from slurmgen.protocol import PeerMessage, RegistryReply, RegistryRequest, ToolReply, ToolRequest

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024 * 1024

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


class Decoder(Generic[T]):
    """Typed decoder for one channel; counts what it refuses."""

    def __init__(self, union: type[T], channel: str) -> None:
        self._decoder = msgspec.json.Decoder(union)
        self.channel = channel
        self.refused = 0

    def decode(self, frame: bytes) -> T | None:
        if len(frame) > MAX_FRAME_BYTES:
            self._refuse(f"frame of {len(frame)} bytes over the {MAX_FRAME_BYTES} limit")
            return None
        try:
            return self._decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._refuse(str(exc))
            return None

    def _refuse(self, why: str) -> None:
        self.refused += 1
        log.warning("dropped a malformed %s frame: %s", self.channel, why)


def peer_decoder() -> Decoder[PeerMessage]:
    return Decoder(PeerMessage, "peer")  # type: ignore[arg-type]  # a union of Structs: msgspec decodes it, mypy wants a class


def registry_request_decoder() -> Decoder[RegistryRequest]:
    return Decoder(RegistryRequest, "registry")  # type: ignore[arg-type]  # a union of Structs: msgspec decodes it, mypy wants a class


def registry_reply_decoder() -> Decoder[RegistryReply]:
    return Decoder(RegistryReply, "registry-reply")  # type: ignore[arg-type]  # a union of Structs: msgspec decodes it, mypy wants a class


def tool_request_decoder() -> Decoder[ToolRequest]:
    return Decoder(ToolRequest, "toolpool")  # type: ignore[arg-type]  # a union of Structs: msgspec decodes it, mypy wants a class


def tool_reply_decoder() -> Decoder[ToolReply]:
    return Decoder(ToolReply, "toolpool-reply")
