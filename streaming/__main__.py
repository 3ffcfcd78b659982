"""``python -m streaming …``: this package's commands, as ``dasan`` has them (``cmdline.py``)."""

from .cli import register
from .cmdline import package_main

package_main("streaming", [register])
