"""``python -m rareshock`` is the ``rareshock`` command."""

from rareshock.cli import main

raise SystemExit(main())
