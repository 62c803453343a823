"""Private implementation modules; import from ``fapilog`` instead."""
