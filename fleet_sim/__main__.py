"""``python -m fleet_sim``: the ``fleet-sim`` command line."""

import sys

from fleet_sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
