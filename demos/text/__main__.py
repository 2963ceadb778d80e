"""``python -m demos.text``: the text demo (demos/text/run.py)."""

import sys

from demos.text.run import main

sys.exit(main())
