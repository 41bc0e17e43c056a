"""The built-in local flavors."""
