"""``python -m gateway``: the ``tfgw`` command line."""

from gateway.cli import main

raise SystemExit(main())
