"""`python -m novapos.cli`: the same as the `novapos` command."""

from novapos.cli.main import main

raise SystemExit(main())
