import sys

from crmnet.cli import main

sys.exit(main())
