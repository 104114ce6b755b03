"""``python -m fedx_bench`` is the ``fedx-bench`` command."""

import sys

from .cli import main

sys.exit(main())
