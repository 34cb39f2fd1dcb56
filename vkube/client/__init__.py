"""A small async Kubernetes client over aiohttp that speaks plain dicts."""

from vkube.client.client import APIResource, Client, Resource, WatchEvent, load_kubeconfig

__all__ = ["APIResource", "Client", "Resource", "WatchEvent", "load_kubeconfig"]
