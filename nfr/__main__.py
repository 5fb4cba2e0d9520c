"""``python -m nfr <experiment> [options]``: see :mod:`nfr.cli`."""
import sys

from nfr.cli import main

if __name__ == "__main__":
    sys.exit(main())
