"""vkube: virtual Kubernetes clusters whose workloads run in one namespace of a host cluster."""

__version__ = "0.1.0"
