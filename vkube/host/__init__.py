"""The embedded host: simulated nodes, a scheduler and kubelets that talk to an API server
only through the Kubernetes API, so a laptop needs no real cluster."""
