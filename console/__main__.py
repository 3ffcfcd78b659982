"""``python -m console …``: this package's commands, as ``dasan`` has them (``streaming/cmdline.py``)."""

from streaming.cmdline import package_main

from .cli import register

package_main("console", [register])
