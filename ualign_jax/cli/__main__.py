"""``python -m ualign_jax.cli``: the ``ualign`` command."""

import sys

from . import main

sys.exit(main())
