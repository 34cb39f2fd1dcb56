"""``expose: true`` (``vkube create --expose``): the virtual API server reachable from outside
its host namespace through a host Service of type LoadBalancer named ``vkube-api`` fronting the
control plane (its Endpoints name the control plane's address).

The exposed address is the load balancer's ingress when the host gives one, else a node's
address and the Service's NodePort (the host has no load balancer). The embedded host has
neither a load balancer nor a kube-proxy: there the control plane's process serves the NodePort
itself on loopback, relaying to the API, so the exposed address works as on a real host.
The URL is written to ``DATA_DIR/exposed``; ``vkube create`` puts it in the kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.retry import until_done
from vkube.client.resources import ENDPOINTS, NODES, SERVICES
from vkube.syncer.translate import LABEL_MANAGED_BY

log = logging.getLogger(__name__)

SERVICE_NAME = "vkube-api"


async def unexpose(host: Client, *, namespace: str, vc: str, known: Obj | None = None) -> bool:
    """``expose: false`` (again): the Service and Endpoints an earlier ``expose: true`` made go
    — only ours (owner and component labels prove it); True when something went. ``known``:
    the Service as a host cache holds it (None: none there, nothing to do — no request)."""
    labels = ((known or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != vc or labels.get("vkube.io/component") != "api":
        return False
    for res in (SERVICES, ENDPOINTS):
        with contextlib.suppress(errors.NotFound):
            await host.delete(res, SERVICE_NAME, namespace=namespace)
    log.info("%s: expose is off: host Service %s/%s removed", vc, namespace, SERVICE_NAME)
    return True


class Exposer:
    def __init__(self, host: Client, *, namespace: str, vc: str, api_ip: str, api_port: int,
                 scheme: str, embedded: bool, data_dir: Path | None,
                 on_address: Callable[[str], object] | None = None) -> None:
        self.host = host
        #: told every address the API is exposed at (the serving certificate must cover it)
        self.on_address = on_address
        self.namespace = namespace
        self.vc = vc
        self.api_ip, self.api_port, self.scheme = api_ip, api_port, scheme
        self.embedded = embedded
        self.data_dir = data_dir
        self.url: str | None = None
        self._relay: asyncio.base_events.Server | None = None
        self.interval = 10.0  # seconds between checks of the Service and its load balancer

    def service(self) -> Obj:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": SERVICE_NAME, "namespace": self.namespace,
                             "labels": {LABEL_MANAGED_BY: self.vc, "vkube.io/component": "api"}},
                "spec": {"type": "LoadBalancer",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                    "targetPort": self.api_port}]}}

    async def run(self, exposed: asyncio.Event) -> None:
        try:
            # a throttled or unavailable host delays this, never ends the cluster
            await until_done(self._ensure, f"{self.vc}: expose")
            self.url = await until_done(self._address, f"{self.vc}: expose address")
            self._tell(urlsplit(self.url).hostname or "")
            if self.data_dir is not None:
                tmp = self.data_dir / "exposed.tmp"
                tmp.write_text(self.url + "\n")
                tmp.replace(self.data_dir / "exposed")
            log.info("%s: API exposed at %s", self.vc, self.url)
            exposed.set()
            while True:  # kept as kube-apiserver keeps its endpoints
                await asyncio.sleep(self.interval)
                with contextlib.suppress(errors.StatusError, OSError):
                    await self._ensure()
                    await self._load_balancer_names()
        finally:
            if self._relay is not None:
                self._relay.close()
            if self.data_dir is not None:
                with contextlib.suppress(OSError):
                    (self.data_dir / "exposed").unlink()

    def _tell(self, name: str) -> None:
        if self.on_address is not None and name:
            try:
                self.on_address(name)
            except Exception:  # the API keeps serving with the current certificate
                log.exception("%s: adding %s to the serving certificate failed", self.vc, name)

    async def _load_balancer_names(self) -> None:
        """A load balancer's IP or hostname that appears (or changes) later is covered too."""
        svc = await self.host.get(SERVICES, SERVICE_NAME, namespace=self.namespace)
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            for key in ("ip", "hostname"):
                if ing.get(key):
                    self._tell(str(ing[key]))

    async def _ensure(self) -> None:
        want = self.service()
        try:
            svc = await self.host.get(SERVICES, SERVICE_NAME, namespace=self.namespace)
            if svc["spec"].get("ports", [{}])[0].get("targetPort") != self.api_port:
                new = copy.deepcopy(svc)
                for p in new["spec"]["ports"]:
                    p["targetPort"] = self.api_port
                await self.host.update(SERVICES, new)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.host.create(SERVICES, want, namespace=self.namespace)
        subsets = [{"addresses": [{"ip": self.api_ip}],
                    "ports": [{"name": "https", "port": self.api_port, "protocol": "TCP"}]}]
        try:
            ep = await self.host.get(ENDPOINTS, SERVICE_NAME, namespace=self.namespace)
            if ep.get("subsets") != subsets:
                ep = copy.deepcopy(ep)
                ep["subsets"] = subsets
                await self.host.update(ENDPOINTS, ep)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.host.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": SERVICE_NAME, "namespace": self.namespace,
                                 "labels": want["metadata"]["labels"]},
                    "subsets": subsets}, namespace=self.namespace)

    async def _address(self) -> str:
        """The load balancer's address if one comes within a few seconds, else NodePort."""
        for _ in range(50):
            svc = await self.host.get(SERVICES, SERVICE_NAME, namespace=self.namespace)
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if ingress and (addr := ingress[0].get("ip") or ingress[0].get("hostname")):
                return f"{self.scheme}://{addr}:443"
            node_port = svc["spec"]["ports"][0].get("nodePort")
            if node_port and self.embedded:
                return await self._serve_node_port(int(node_port))
            await asyncio.sleep(0.1)
        if not node_port:
            raise RuntimeError(f"host Service {self.namespace}/{SERVICE_NAME} got neither a "
                               "load balancer nor a NodePort")
        return f"{self.scheme}://{await self._node_address()}:{node_port}"

    async def _node_address(self) -> str:
        nodes = (await self.host.list(NODES))["items"]
        for kind in ("ExternalIP", "InternalIP"):
            for n in nodes:
                for a in (n.get("status") or {}).get("addresses") or []:
                    if a.get("type") == kind and a.get("address"):
                        return str(a["address"])
        raise RuntimeError("no host node has an address to reach a NodePort at")

    async def _serve_node_port(self, port: int) -> str:
        """The embedded host's kube-proxy for this one Service: loopback NODEPORT → the API."""
        self._relay = await asyncio.start_server(self._relay_client, "127.0.0.1", port)
        return f"{self.scheme}://127.0.0.1:{port}"

    async def _relay_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.api_ip, self.api_port)
        except OSError:
            writer.close()
            return

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while chunk := await r.read(64 * 1024):
                    w.write(chunk)
                    await w.drain()
                if w.can_write_eof():
                    w.write_eof()
            except (ConnectionError, OSError):
                pass

        try:
            await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
        finally:
            for w in (writer, up_w):
                w.close()
