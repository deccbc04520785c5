"""``python -m control_server`` is ``hostplane``."""

from control_server.cli import main

main()
