"""Property-based fuzz tests: every input ends in a result or one ``KilnError``, never another
exception and never a hang.

The ``FUZZ`` settings in :mod:`tests.fuzz.bounds` keep CI bounded (200 examples per property,
no example database); raise ``max_examples`` there to fuzz longer locally.
"""
