"""``python -m clearinghouse`` is the ``clearinghouse`` command."""

import sys

from clearinghouse.cli import main

sys.exit(main())
