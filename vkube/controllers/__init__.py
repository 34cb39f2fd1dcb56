"""The controller runtime (``runtime``, ``workqueue``, ``informer``) and the built-in
controllers (listed by ``registry.default_controllers``); they use the API like any client.

Deliberately empty: importing one module of the package must not import the others."""
