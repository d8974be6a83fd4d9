"""``python -m app …`` is ``datafactory …``."""

from app.cli.main import main

main()
