"""``python -m clearinghouse`` is the ``clearinghouse`` command."""

import sys

from clearinghouse.tools.cli import main

sys.exit(main())
