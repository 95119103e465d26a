"""``python -m bot.cli``: the ``secreview`` command."""

import sys

from bot.cli.review import main

sys.exit(main())
