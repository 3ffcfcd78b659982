"""Container health check: GET http://127.0.0.1:$HEALTHCHECK_PORT/readyz, exit 0 when it answers 200.

``HEALTHCHECK_SCHEME=https`` for a service that serves TLS (the ASR gateway with its certificate),
verified against ``HEALTHCHECK_CAFILE`` (the site CA) or the system's trust store.

Standard library only (it runs inside the images, for Docker's HEALTHCHECK and compose).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = int(os.environ.get("HEALTHCHECK_PORT", "8000"))
    path = os.environ.get("HEALTHCHECK_PATH", "/readyz")
    scheme = os.environ.get("HEALTHCHECK_SCHEME", "http")
    url = f"{scheme}://127.0.0.1:{port}{path}"
    context = None
    if scheme == "https":
        context = ssl.create_default_context(cafile=os.environ.get("HEALTHCHECK_CAFILE") or None)
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
