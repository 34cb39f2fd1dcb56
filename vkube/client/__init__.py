"""A small async Kubernetes client over aiohttp that speaks plain dicts."""

from vkube.client.client import APIResource, Client, Resource, Transport, WatchEvent, load_kubeconfig

__all__ = ["APIResource", "Client", "Resource", "Transport", "WatchEvent", "load_kubeconfig"]
