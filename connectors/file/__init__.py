"""The ``file`` connector: flows write reports and exports to local files."""
