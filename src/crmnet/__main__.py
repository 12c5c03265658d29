"""``python -m crmnet``: the command line (:func:`crmnet.cli.main`)."""

import sys

from crmnet.cli import main

sys.exit(main())
