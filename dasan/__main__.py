"""``python -m dasan …`` is ``dasan …``."""

from .cli import main

main()
