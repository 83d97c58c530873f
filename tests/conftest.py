"""Fixtures shared across test modules."""

from tests.test_dns import fake_dns  # noqa: F401 - a DNS server in the test, for RFC 3263 lookups
