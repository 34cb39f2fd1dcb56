"""The ``vkube`` command line."""
