"""What text may be stored: the one rule every door (pages, API, files,
commands) applies before a prompt, an instruction or an id reaches the
database."""

from __future__ import annotations


def storable_text_error(text: str) -> str | None:
    """Why `text` cannot be stored, as the end of a sentence, or None."""
    # Neither database stores a NUL, and a lone surrogate cannot be encoded.
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (an unpaired surrogate)"
    return None
