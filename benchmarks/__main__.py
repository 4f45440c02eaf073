"""``python -m benchmarks``: see :func:`benchmarks.main`."""

from benchmarks import main

raise SystemExit(main())
