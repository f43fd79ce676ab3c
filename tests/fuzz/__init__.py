"""Property-based fuzz tests: every input ends in a result or one ``KilnError``, never a hang.

Bounded (``FUZZ`` settings) so CI stays quick; ``HYPOTHESIS_PROFILE``-style tuning is not
needed: raise ``max_examples`` locally to fuzz longer.
"""
