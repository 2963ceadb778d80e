"""``python -m demos.vehicle``: the vehicle demo (demos/vehicle/run.py)."""

import sys

from demos.vehicle.run import main

sys.exit(main())
