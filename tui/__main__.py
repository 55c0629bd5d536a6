"""`python -m tui` is the same as the `certrotate` command."""

from tui.cli import main

raise SystemExit(main())
