"""``python -m stream_monitor`` is the ``stream-monitor`` command."""

from stream_monitor.cli import main

raise SystemExit(main())
