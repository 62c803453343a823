"""The demo: two example services, the requests sent to them, and the runner."""
