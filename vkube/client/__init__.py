"""A small async Kubernetes client over aiohttp that speaks plain dicts."""

from vkube.client.client import Client, Resource, WatchEvent, load_kubeconfig

__all__ = ["Client", "Resource", "WatchEvent", "load_kubeconfig"]
