"""`python -m service.cli`: the `audience` command."""
from service.cli import main

raise SystemExit(main())
