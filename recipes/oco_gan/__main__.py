"""``python -m recipes.oco_gan`` is the ``oco-gan`` command."""

import sys

from .cli import main

sys.exit(main())
