"""The caller's number as the system keeps it: masked for display, keyed-hashed for caller history.

One definition, shared by the ASR gateway (which receives the number from the telephony side and
puts ``caller_number_masked`` and ``caller_key`` on ``CallStarted``) and the console (which must
derive the same key to erase one caller's data: ``dasan privacy erase --caller NUMBER``).
The number itself is never stored or sent anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# The development default of the site secret (``DASAN_ASR_CALLER_KEY_SECRET``); production
# refuses it (asr.settings).
DEV_CALLER_KEY_SECRET = "dev-only-caller-key-secret"

_NON_DIGIT = re.compile(r"\D")


def normalize_number(number: str) -> str:
    """Digits of a Korean phone number in national form (+82 10-… → 010…)."""
    digits = _NON_DIGIT.sub("", number)
    if number.strip().startswith("+82") or (digits.startswith("82") and len(digits) >= 11):
        digits = "0" + digits[2:]
    return digits


def mask_caller_number(number: str) -> str | None:
    """010-1234-5678 → 010-****-5678; 02-123-4567 → 02-***-4567. None if too short to be a number."""
    d = normalize_number(number)
    if len(d) < 7:
        return None
    prefix = d[:2] if d.startswith("02") else d[:3]
    middle = d[len(prefix) : -4]
    return f"{prefix}-{'*' * len(middle)}-{d[-4:]}"


def caller_key(number: str, secret: str) -> str | None:
    """HMAC-SHA256 (hex) of the normalised digits with the site secret."""
    d = normalize_number(number)
    if not d:
        return None
    return hmac.new(secret.encode(), d.encode(), hashlib.sha256).hexdigest()
