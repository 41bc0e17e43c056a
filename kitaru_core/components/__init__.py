"""The abstract interfaces of the stack components, one module per component type."""
