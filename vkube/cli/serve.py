"""``vkube serve``: one control plane in the foreground — API server, controllers and, when a
host is given, the syncer. The CLI's ``create`` runs this as a supervised background process.
This module only declares the command (every ``vkube`` command imports it, and ``create``
must not pay for asyncio before its spawn); ``serving`` runs it."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run one control plane in the foreground",
                       description="Run one control plane (API server + controllers [+ syncer]) on 127.0.0.1.",
                       epilog="example: vkube serve --data-dir /tmp/cp --port 6443")
    p.add_argument("--name", default="vkube", help="control plane / virtual cluster name")
    p.add_argument("--data-dir", required=True, help="directory for the datastore and kubeconfig")
    p.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 inside a host cluster's pod)")
    p.add_argument("--tls-san", action="append", default=[], metavar="NAME",
                   help="extra DNS name or IP for the serving certificate (repeatable); loopback, "
                        "the bind address and kubernetes.default.svc are always included")
    p.add_argument("--store", default=None,
                   help="store: sqlite (default, in --data-dir), postgres://USER@HOST:PORT/DB or "
                        "etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (default: controlPlane.store "
                        "of the values, else sqlite)")
    p.add_argument("--etcd-cafile", default=None, help="etcd store: CA bundle for TLS")
    p.add_argument("--etcd-certfile", default=None, help="etcd store: client certificate")
    p.add_argument("--etcd-keyfile", default=None, help="etcd store: client key")
    p.add_argument("--host-kubeconfig", default=None, help="run as a virtual cluster synced to this host")
    p.add_argument("--host-context", default=None,
                   help="context of --host-kubeconfig (default: its current context)")
    p.add_argument("--host-namespace", default=None, help="host namespace (default vkube-NAME)")
    p.add_argument("--host-kind", choices=("kubeconfig", "embedded"), default="kubeconfig",
                   help="embedded: the host is vkube's embedded host (pods reach the API and "
                        "DNS on loopback, not through ClusterIPs)")
    p.add_argument("--advertise-address", default=None, metavar="IP",
                   help="the address pods reach this control plane at (the Endpoints of "
                        "default/kubernetes and kube-system/kube-dns; default: --address, or "
                        "127.0.0.1 when that is 0.0.0.0)")
    p.add_argument("--dns-upstream", default=None, metavar="IP[:PORT]",
                   help="resolver for names outside cluster.local (default: the first nameserver "
                        "of /etc/resolv.conf, as CoreDNS forwards; 'none': answer REFUSED)")
    p.add_argument("--dns-port", type=int, default=0,
                   help="cluster DNS port on --address, UDP and TCP (0: any free port)")
    p.add_argument("--host-from", metavar="FILE", default=None,
                   help="run as a virtual cluster whose host is named later in FILE (JSON: "
                        "kubeconfig, context, namespace); the API starts at once, the syncer "
                        "when FILE appears")
    p.add_argument("-f", "--values", action="append", default=[], help="values.yaml (repeatable)")
    p.add_argument("--no-controllers", action="store_true", help="serve the API only")
    p.add_argument("--shared", action="store_true",
                   help="shared mode: serve many virtual clusters at /clusters/NAME on one port "
                        "and one store in --data-dir; they are named by DATA_DIR/members/*.json "
                        "(SIGHUP re-reads them; `vkube create --shared` writes them)")
    p.add_argument("--encryption-config", metavar="FILE", default=None,
                   help="EncryptionConfiguration for data at rest (default: DATA_DIR/encryption-config.yaml, "
                        "AES-GCM for secrets, made on first start); rotate keys as kube-apiserver does")
    p.add_argument("--audit-policy-file", metavar="FILE", default=None,
                   help="audit.k8s.io/v1 Policy (default: every request at Metadata) for DATA_DIR/audit.log")
    p.add_argument("--token-auth-file", metavar="FILE", default=None,
                   help="static bearer tokens, CSV token,user,uid[,\"group1,group2\"] (kube-apiserver's format); read at start")
    p.add_argument("--requestheader-allowed-names", metavar="NAMES", default=None,
                   help="comma-separated common names of front-proxy CA client certificates trusted to "
                        "name the user in X-Remote-User/-Group/-Extra-* (default: front-proxy-client, "
                        "the aggregator's; '': any name the front-proxy CA issued)")
    p.add_argument("--audit-log-maxsize", metavar="MB", type=int, default=0,
                   help="rotate DATA_DIR/audit.log once it would pass MB megabytes (0: 100, kube-apiserver's)")
    p.add_argument("--audit-log-maxbackup", metavar="N", type=int, default=0,
                   help="keep at most N rotated audit logs (0: keep all)")
    p.add_argument("--audit-log-maxage", metavar="DAYS", type=int, default=0,
                   help="remove rotated audit logs older than DAYS (0: keep all)")
    p.add_argument("--admission-control-config-file", metavar="FILE", default=None,
                   help="AdmissionConfiguration: PodSecurity defaults and exemptions (PodSecurityConfiguration)")
    p.add_argument("--max-requests-inflight", metavar="N", type=int, default=400,
                   help="with --max-mutating-requests-inflight: the seats API Priority and Fairness "
                        "divides between priority levels (their sum; kube-apiserver's defaults 400 + 200)")
    p.add_argument("--max-mutating-requests-inflight", metavar="N", type=int, default=200,
                   help="see --max-requests-inflight")
    g = p.add_argument_group("shared listener limits (--shared only; vkube.cluster.listener)")
    g.add_argument("--max-connections", metavar="N", type=int, default=None,
                   help="connections open to the shared process at once; more are closed at "
                        "accept (default 4096)")
    g.add_argument("--max-connections-per-client", metavar="N", type=int, default=None,
                   help="of those, from one client address (default 1024)")
    g.add_argument("--tls-handshake-timeout", metavar="SECONDS", type=float, default=None,
                   help="a TLS handshake must end this long after the accept (default 10)")
    g.add_argument("--idle-timeout", metavar="SECONDS", type=float, default=None,
                   help="a connection without a request in progress is closed after this long "
                        "(default 90, kube-apiserver's IdleTimeout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vkube.cli import serving

    return serving.run(args)
