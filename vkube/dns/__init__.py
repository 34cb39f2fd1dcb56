"""Cluster DNS for a virtual cluster (the Kubernetes DNS specification, served over UDP and TCP)."""
