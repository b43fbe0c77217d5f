"""``python -m synthc`` runs the CLI."""

from synthc.cli import main

raise SystemExit(main())
