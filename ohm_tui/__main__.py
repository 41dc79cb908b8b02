"""``python -m ohm_tui`` is the ``ohm`` command."""

from ohm_tui.cli.main import main

raise SystemExit(main())
