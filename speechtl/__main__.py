"""``python -m speechtl``: the ``speechtl`` command (:mod:`speechtl.cli`)."""

import sys

from speechtl.cli import main

sys.exit(main())
