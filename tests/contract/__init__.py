"""Contract suites: one abstract suite per port, run against every adapter."""
