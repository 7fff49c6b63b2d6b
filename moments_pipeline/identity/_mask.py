"""The one mask for a person's identifier wherever the pipeline shows one.

Quarantine details, dropped-value records, Dagster metadata, dry-run previews and the engine's
refusal details all mask through here, so an identifier looks the same everywhere it appears:
enough of it to recognise the row, not enough to use it. Pure text functions, no I/O.
"""

from __future__ import annotations

from moments_pipeline.identity._rules import EMAIL, EXTERNAL_ID, PHONE

__all__ = ["mask_anchor", "mask_identifier"]

_SENDERLESS_KINDS = frozenset((EMAIL, PHONE, EXTERNAL_ID))


def mask_identifier(value: object) -> str:
    """Mask the middle of an identifier (email, phone, external id, any text).

    ``jane.doe@example.com`` -> ``ja***@ex***.com``; ``41793026727`` -> ``41*******27``;
    four characters or fewer are fully masked. ``None`` gives ``""``.
    """
    if value is None:
        return ""
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        head, dot, tld = domain.rpartition(".")
        masked_domain = f"{head[:2]}***{dot}{tld}" if dot else f"{domain[:2]}***"
        return f"{local[:2]}***@{masked_domain}"
    if len(text) <= 4:
        return "*" * len(text)
    keep = max(1, min(3, len(text) // 4))
    return f"{text[:keep]}{'*' * (len(text) - 2 * keep)}{text[-keep:]}"


def mask_anchor(anchor: str) -> str:
    """Mask the identifier inside an anchor or person key; its kind (and sender) stay readable.

    ``EXTERNAL_ID:10001`` -> ``EXTERNAL_ID:1***1``, ``EMAIL:ana@x.com`` -> ``EMAIL:an***@x***.com``,
    ``FACEBOOK:page-1:123456789`` -> ``FACEBOOK:page-1:12*****89``; text without a kind (a bare
    key) is masked whole.
    """
    kind, sep, rest = anchor.partition(":")
    if not sep:
        return mask_identifier(anchor)
    # Only a channel kind carries a sender (``<TYPE>:<sender>:<id>``); the identifier after it
    # may itself contain ``:`` (so may an externalId or a key of a known kind: all masked).
    if kind not in _SENDERLESS_KINDS and ":" in rest:
        sender, _, identifier = rest.partition(":")
        return f"{kind}:{sender}:{mask_identifier(identifier)}"
    return f"{kind}:{mask_identifier(rest)}"
