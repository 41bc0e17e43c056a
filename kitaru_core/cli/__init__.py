"""The ``kitaru`` command line."""
