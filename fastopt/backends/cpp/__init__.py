"""The C++ backend: thin adapters from validated lists to ``fastopt._core``."""
