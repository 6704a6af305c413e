"""Helpers shared by the test suite, imported as ``tests.support.<module>``.

pytest puts the project root on ``sys.path`` (``pythonpath`` in pyproject.toml), so test modules
import these like any package; no test touches ``sys.path`` itself. Generic helpers a plugin's
own tests want too live in :mod:`runtime.testing` instead (e.g. the async ``wait_until``).

* :mod:`tests.support.waiting`: ``wait_for``, polling a condition with a deadline from plain
  (synchronous) tests that drive subprocesses, and ``wait_for_progress`` for long work;
* :mod:`tests.support.servers`: a free port, an ASGI app under uvicorn in a thread;
* :mod:`tests.support.sandbox`: the sandbox fixture project, ``splice`` subprocesses, ``serving``;
* :mod:`tests.support.flows`: the shipped project opened against both emulators in process;
* :mod:`tests.support.quickbooks`: a QuickBooks connection to its emulator, operation calls.
"""
