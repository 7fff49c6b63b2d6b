"""Authentication: ``Authorization: App <key>`` or ``Basic`` with configured users.

Keys and passwords are compared in constant time and never logged; the account name returned
for an authenticated request is a label (``app-key-0``, ``basic:<user>``), not the secret.
IBSSO and Bearer tokens are not emulated (401).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from .settings import EmulatorSettings

__all__ = ["authenticate"]


def authenticate(header: str | None, settings: EmulatorSettings) -> str | None:
    """Return the account label for an Authorization header value, or None if refused."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "app" and credentials:
        given = credentials.encode()
        found = None
        for i, key in enumerate(settings.api_keys):
            # Compare against every key so the timing does not tell which one matched.
            if hmac.compare_digest(given, key.get_secret_value().encode()):
                found = f"app-key-{i}"
        return found
    if scheme == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep:
            return None
        found = None
        for user in settings.basic_users:
            same_user = hmac.compare_digest(username.encode(), user.username.encode())
            same_password = hmac.compare_digest(
                password.encode(), user.password.get_secret_value().encode()
            )
            if same_user and same_password:
                found = f"basic:{user.username}"
        return found
    return None
