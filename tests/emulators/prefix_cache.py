"""Simulated prefix caching of a model server: tokenizer, chained block hashes, LRU replicas.

The messages are rendered as ``<|role|>\\ncontent\\n`` in order and cut into tokens by
``TOKEN_PATTERN`` (runs of word characters, single punctuation characters, runs of whitespace).
Tokens are grouped into full blocks of ``block_tokens``; each block's hash chains the previous
block's hash, so a block matches only behind an identical prefix (as in vLLM's automatic prefix
caching). Each replica keeps an LRU of block hashes; a request's cached tokens are
``block_tokens`` × the leading blocks already present on the replica it was routed to.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]|\s+")


def tokenize(text: str) -> list[str]:
    """The emulator's deterministic tokenizer."""
    return TOKEN_PATTERN.findall(text)


def render_chat(messages: Sequence[Mapping[str, Any]]) -> str:
    """The chat-template rendering the cache sees: ``<|role|>\\ncontent\\n`` per message."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)


def block_hashes(tokens: Sequence[str], block_tokens: int) -> list[bytes]:
    """Chained hashes of the full blocks of ``tokens`` (a trailing partial block is not cached)."""
    out: list[bytes] = []
    previous = b""
    for start in range(0, len(tokens) - block_tokens + 1, block_tokens):
        block = "\x00".join(tokens[start : start + block_tokens]).encode()
        previous = hashlib.sha256(previous + b"\x01" + block).digest()
        out.append(previous)
    return out


class Replica:
    """One model replica's prefix cache: an LRU of block hashes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.blocks: OrderedDict[bytes, None] = OrderedDict()

    def serve(self, hashes: Sequence[bytes]) -> int:
        """Leading blocks already cached; then every block is inserted or touched."""
        hits = 0
        for h in hashes:
            if h not in self.blocks:
                break
            hits += 1
        for h in hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)
        return hits
