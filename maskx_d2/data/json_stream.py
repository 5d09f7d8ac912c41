"""Stream the elements of a large top-level JSON array, one at a time.

Visual Genome's ``objects.json`` is a ~400 MB array of per-image entries. ``json.load`` on it
builds every object's dict at once (several GB of Python objects); decoding one entry at a
time with the standard library's C decoder keeps the peak memory at one chunk of text plus
what the caller keeps, at the same speed.
"""

import json
import re
from typing import Any, Iterator

__all__ = ["iter_json_array"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A decode error this close to the end of the buffered text may only mean that the element
# continues in the next chunk; farther from the end it is a real syntax error.
_INCOMPLETE_SLACK = 1 << 16


class _ChunkedText:
    """A window over a text file: ``buf[pos:]`` is unread, ``base`` counts dropped characters."""

    def __init__(self, f, chunk_chars: int):
        self.f, self.chunk_chars = f, chunk_chars
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False

    def refill(self) -> bool:
        """Append the next chunk (dropping consumed text); False at end of file."""
        try:
            chunk = self.f.read(self.chunk_chars)
        except UnicodeDecodeError as e:  # its message names neither the file nor the place
            raise ValueError(f"{self.f.name}: not UTF-8 text ({e})") from e
        if not chunk:
            self.eof = True
            return False
        self.base += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of file), without consuming it."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self.refill():
                return self.buf[self.pos : self.pos + 1]


def iter_json_array(path: str, chunk_chars: int = 1 << 22) -> Iterator[Any]:
    """Yield the elements of the JSON array stored in ``path``, in file order.

    Raises ValueError naming ``path`` (and the character offset where there is one) when the
    file is not a well-formed JSON array of UTF-8 text or nests deeper than the decoder can.
    """
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        text = _ChunkedText(f, chunk_chars)

        def fail(msg: str, offset: int):
            raise ValueError(f"{path}: malformed JSON at character {offset}: {msg}")

        if text.peek() != "[":
            fail("expected a top-level array '['", text.base + text.pos)
        text.pos += 1
        if text.peek() == "]":
            text.pos += 1
        else:
            while True:
                text.peek()
                try:
                    value, end = decoder.raw_decode(text.buf, text.pos)
                except json.JSONDecodeError as e:
                    if e.pos >= len(text.buf) - _INCOMPLETE_SLACK and text.refill():
                        continue
                    fail(e.msg, text.base + e.pos)
                except RecursionError:  # the C decoder recurses once per nesting level
                    fail("nested too deeply", text.base + text.pos)
                except ValueError as e:  # e.g. an integer literal beyond int()'s digit limit
                    fail(str(e), text.base + text.pos)
                # A value cut at the end of the chunk ("12" of "123", "-0." of "-0.5") decodes
                # as a shorter one: only trust it when the separator after it is buffered too.
                after = _WHITESPACE.match(text.buf, end).end()
                cut = after == len(text.buf) or (
                    text.buf[after] not in ",]" and after >= len(text.buf) - _INCOMPLETE_SLACK
                )
                if cut and text.refill():
                    continue
                text.pos = end
                yield value
                sep = text.peek()
                text.pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    fail(
                        f"expected ',' or ']' after an array element, got {sep!r}",
                        text.base + text.pos - 1,
                    )
        if text.peek() != "":
            fail("unexpected data after the top-level array", text.base + text.pos)
