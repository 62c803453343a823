"""``nox -s install``: fapilog installed as users install it, never collected by pytest."""
