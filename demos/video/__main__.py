"""``python -m demos.video``: the video analytics demo (demos/video/run.py)."""

import sys

from demos.video.run import main

sys.exit(main())
