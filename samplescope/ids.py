"""The syntax of a sample-id list, ``"3,17,42"``: one owner for the server's ``ids=``
parameters and ``samplescope tag --ids``, which word their own errors."""

from __future__ import annotations

#: largest sample id: ids are signed 64-bit integers in the store
MAX_SAMPLE_ID = 2**63 - 1


def parse_id(part: str, upper: int = MAX_SAMPLE_ID) -> int | None:
    """``part`` as a sample id from 0 to ``upper``, or ``None`` when it is not one.

    Only ASCII digits count: ``"²".isdigit()`` is true but ``int("²")`` raises, and a
    20-digit number would overflow the store's 64-bit ids before ``upper`` is compared.
    """
    part = part.strip()
    if not (part.isascii() and part.isdigit() and len(part) <= 19):
        return None
    value = int(part)
    return value if value <= upper else None
