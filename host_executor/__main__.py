"""``python3 -m host_executor``: see ``host_executor.main``."""

import sys

from host_executor.main import main

sys.exit(main())
