"""Fixtures shared across test modules, and the property tests' profile."""

from hypothesis import settings

from tests.test_dns import fake_dns  # noqa: F401 - a DNS server in the test, for RFC 3263 lookups

# No per-example deadline: Hypothesis's default (200 ms) makes a property test a timed test, and one
# slow example on a busy CI machine (a collector pass, a neighbour's load) failed a run that
# was right. Speed is measured in bench/, never by tests.
settings.register_profile("enx", deadline=None)
settings.load_profile("enx")
