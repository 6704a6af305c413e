"""End-to-end tests share the sandbox tests' helpers (imported as a plain module)."""

from __future__ import annotations

import sys
from pathlib import Path

SANDBOX_TESTS = Path(__file__).parent.parent / "sandbox"
if str(SANDBOX_TESTS) not in sys.path:
    sys.path.insert(0, str(SANDBOX_TESTS))
