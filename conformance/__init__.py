"""optconf's conformance runner and command line."""
