"""python -m pycnn: see pycnn.cli."""
import sys

from .cli import main

sys.exit(main())
