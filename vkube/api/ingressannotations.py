"""Ingress annotations a tenant may hand the host's shared ingress controller.

An ingress controller serves every tenant, and its annotations configure it: some name a
Secret or Service by ``namespace/name`` (another tenant's, or the host's), some make the
controller itself fetch a URL (``auth-url``, ``mirror-target``: requests from inside the host
network), some claim more host names (``server-alias``) and some are raw configuration
(``*-snippet``). Values are pasted into the controller's configuration, and several
ingress-nginx CVEs were injections through them. So:

- ingress-nginx keys (``nginx.ingress.kubernetes.io/``) pass only from an allow-list, each with
  a strict value pattern; a Secret or Service they name must be the tenant's own (the Ingress's
  namespace) and is translated to its host copy (``HOSTNS/NAME-x-NS-x-VC``);
- Traefik keys pass from a smaller allow-list (no middlewares, TLS options or resolvers: those
  name objects of any namespace or the host's certificate resolvers);
- any other ``*.ingress.kubernetes.io/`` key, GKE's ``ingress.gcp.kubernetes.io/`` and
  ``networking.gke.io/`` keys and ``kubernetes.io/ingress.*`` keys but the class are refused:
  unknown configuration of a shared controller;
- a key whose name holds ``snippet`` is refused under every prefix.
Keys of other prefixes (yours, ``cert-manager.io/``…) pass as written."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from vkube.api.validation_ingress import host_problems

NGINX = "nginx.ingress.kubernetes.io/"
TRAEFIK = "traefik.ingress.kubernetes.io/"
CLASS = "kubernetes.io/ingress.class"
_ALLOWED_PLAIN = {CLASS, "kubernetes.io/ingress.allow-http"}
_SHARED_PREFIXES = ("ingress.gcp.kubernetes.io/", "networking.gke.io/", "kubernetes.io/ingress.",
                    # other ingress controllers: their keys name secrets, URLs and config
                    # (e.g. haproxy.org/auth-secret ns/name) vkube does not translate
                    "nginx.org/", "haproxy.org/", "haproxy-ingress.github.io/", "konghq.com/",
                    "projectcontour.io/", "getambassador.io/", "zalando.org/", "traefik.io/",
                    "appprotect.f5.com/", "appprotectdos.f5.com/")


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{pattern})\\Z")


BOOL = _re(r"true|false|True|False|TRUE|FALSE|1|0|t|f|T|F")
INT = _re(r"-?[0-9]{1,10}")
SIZE = _re(r"[0-9]{1,10}[kKmMgG]?")
ONOFF = _re(r"on|off")
PATH = _re(r"/[A-Za-z0-9/_.~%$\-]*")
CIDRS = _re(r"[0-9a-fA-F:./, ]+")
ORIGINS = _re(r"[A-Za-z0-9*:/._\-, ]+")
HEADERS = _re(r"[A-Za-z0-9_\-, *]*")
METHODS = _re(r"[A-Za-z, ]+")
WORD = _re(r"[A-Za-z0-9_.\-]+")
WORDS = _re(r"[A-Za-z0-9_.\-, ]+")
CODES = _re(r"[0-9, ]+")
TEXT = _re(r"[A-Za-z0-9 _.,:\-]*")
CIPHERS = _re(r"[A-Za-z0-9:!+_.\- ]+")
HOSTNAME = _re(r"[a-z0-9.\-]+(:[0-9]{1,5})?")
NAME = _re(r"([a-z0-9][-a-z0-9.]*/)?[a-z0-9][-a-z0-9.]*")

#: the Secret/Service-naming keys: value → the tenant's own object, translated
SECRET_KEYS = ("auth-secret", "auth-tls-secret", "proxy-ssl-secret")
SERVICE_KEYS = ("default-backend",)

NGINX_SAFE: dict[str, re.Pattern[str]] = {
    "rewrite-target": _re(r"(/[A-Za-z0-9/_.~%$\-]*)?"), "use-regex": BOOL, "app-root": PATH,
    "ssl-redirect": BOOL, "force-ssl-redirect": BOOL, "preserve-trailing-slash": BOOL,
    "ssl-passthrough": BOOL, "ssl-ciphers": CIPHERS, "ssl-prefer-server-ciphers": BOOL,
    "proxy-body-size": SIZE, "client-body-buffer-size": SIZE, "proxy-buffering": ONOFF,
    "proxy-buffer-size": SIZE, "proxy-buffers-number": INT, "proxy-max-temp-file-size": SIZE,
    "proxy-request-buffering": ONOFF, "proxy-http-version": _re(r"1\.0|1\.1"),
    "proxy-connect-timeout": INT, "proxy-send-timeout": INT, "proxy-read-timeout": INT,
    "proxy-next-upstream": _re(r"[a-z_0-9 ]+"), "proxy-next-upstream-timeout": INT,
    "proxy-next-upstream-tries": INT,
    "enable-cors": BOOL, "cors-allow-origin": ORIGINS, "cors-allow-methods": METHODS,
    "cors-allow-headers": HEADERS, "cors-expose-headers": HEADERS,
    "cors-allow-credentials": BOOL, "cors-max-age": INT,
    "backend-protocol": _re(r"(?i:HTTP|HTTPS|GRPC|GRPCS|FCGI|AUTO_HTTP)"),
    "load-balance": _re(r"round_robin|ewma"), "upstream-hash-by": _re(r"[$A-Za-z0-9_\-]+"),
    "upstream-hash-by-subset": BOOL, "upstream-hash-by-subset-size": INT,
    "upstream-vhost": HOSTNAME, "service-upstream": BOOL, "x-forwarded-prefix": PATH,
    "connection-proxy-header": WORD,
    "affinity": _re(r"cookie"), "affinity-mode": _re(r"balanced|persistent"),
    "affinity-canary-behavior": _re(r"sticky|legacy"), "session-cookie-name": WORD,
    "session-cookie-path": PATH, "session-cookie-max-age": INT, "session-cookie-expires": INT,
    "session-cookie-samesite": _re(r"None|Lax|Strict"), "session-cookie-secure": BOOL,
    "session-cookie-conditional-samesite-none": BOOL, "session-cookie-change-on-failure": BOOL,
    "canary": BOOL, "canary-by-header": WORD, "canary-by-header-value": WORD,
    "canary-by-cookie": WORD, "canary-weight": INT, "canary-weight-total": INT,
    "whitelist-source-range": CIDRS, "allowlist-source-range": CIDRS,
    "denylist-source-range": CIDRS, "limit-connections": INT, "limit-rps": INT,
    "limit-rpm": INT, "limit-burst-multiplier": INT, "limit-rate": INT, "limit-rate-after": INT,
    "limit-whitelist": CIDRS, "limit-allowlist": CIDRS,
    "custom-http-errors": CODES, "enable-access-log": BOOL, "enable-rewrite-log": BOOL,
    "enable-opentelemetry": BOOL, "opentelemetry-trust-incoming-span": BOOL,
    "auth-type": _re(r"basic|digest"), "auth-realm": TEXT,
    "auth-secret-type": _re(r"auth-file|auth-map"),
    "auth-tls-verify-client": _re(r"on|off|optional|optional_no_ca"),
    "auth-tls-verify-depth": INT, "auth-tls-pass-certificate-to-upstream": BOOL,
    "proxy-ssl-verify": ONOFF, "proxy-ssl-verify-depth": INT, "proxy-ssl-name": HOSTNAME,
    "proxy-ssl-server-name": ONOFF, "proxy-ssl-protocols": _re(r"[A-Za-z0-9. ]+"),
    "proxy-ssl-ciphers": CIPHERS, "from-to-www-redirect": BOOL,
    "server-alias": _re(r"[a-z0-9*.\-, ]+"),
    **{k: NAME for k in SECRET_KEYS + SERVICE_KEYS},
}
TRAEFIK_SAFE: dict[str, re.Pattern[str]] = {
    "router.entrypoints": WORDS, "router.priority": INT, "router.tls": BOOL,
    "router.pathmatcher": _re(r"Path|PathPrefix|PathRegexp"),
}

#: why well-known dangerous keys are refused (others: "not on vkube's allow-list")
_WHY = {
    "auth-url": "the shared controller would fetch this URL from inside the host network",
    "auth-signin": "a URL the shared controller is configured with",
    "mirror-target": "the shared controller would send copies of requests to this URL "
                     "from inside the host network",
    "mirror-host": "the shared controller would send copies of requests to this host",
    "permanent-redirect": "a URL pasted into the shared controller's configuration",
    "temporal-redirect": "a URL pasted into the shared controller's configuration",
    "custom-headers": "it names a ConfigMap by namespace/name",
    "auth-proxy-set-headers": "it names a ConfigMap by namespace/name",
    "enable-global-auth": "it turns off the host's global authentication",
}


@dataclass
class Judgement:
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    annotations: dict[str, str] = field(default_factory=dict)  # what the host copy carries

    def message(self, end: str = "; not synced to the host") -> str:
        key, why = self.refused[0]
        rest = [k for k, _ in self.refused[1:]]
        return (f"metadata.annotations[{key}]: {why}"
                + (f" (also refused: {', '.join(rest)})" if rest else "") + end)


def _own(value: str, namespace: str) -> str | None:
    """The tenant's object name of ``NAME`` or ``NAMESPACE/NAME`` (None: another namespace)."""
    ns, _, name = value.rpartition("/")
    return name if ns in ("", namespace) else None


def judge(annotations: dict[str, str], namespace: str, *, host_namespace: str,
          secret_name: Callable[[str], str], service_name: Callable[[str], str]) -> Judgement:
    """What may go down, translated; ``secret_name``/``service_name`` give the host copy's
    name of the tenant's object (of ``namespace``)."""
    out = Judgement()
    snippets = sorted(k for k in annotations if "snippet" in k.rsplit("/", 1)[-1].lower())
    if snippets:
        out.refused += [(k, "configuration snippets are not allowed (they configure the host's "
                         f"ingress controller for every tenant; found: {', '.join(snippets)})")
                        for k in snippets]
    for key in sorted(annotations):
        value = str(annotations[key])
        if key in snippets:
            continue
        low = key.lower()  # the API accepts any case (as upstream); judge as the strictest reader
        if low.startswith(NGINX):
            why = _nginx(key, low[len(NGINX):], value, namespace, host_namespace, secret_name,
                         service_name, out)
        elif low.startswith(TRAEFIK):
            why = _checked(TRAEFIK_SAFE, low[len(TRAEFIK):], value, "Traefik")
        elif low.split("/", 1)[0].endswith("ingress.kubernetes.io") or (
                low.startswith(_SHARED_PREFIXES) and low not in _ALLOWED_PLAIN):
            why = ("an ingress controller's annotation vkube does not know to be safe on a "
                   "controller every tenant shares")
        else:
            why = ""
        if why:
            out.refused.append((key, why))
        else:
            out.annotations.setdefault(key, value)
    return out


def _checked(safe: dict[str, re.Pattern[str]], name: str, value: str, who: str) -> str:
    pattern = safe.get(name)
    if pattern is None:
        return _WHY.get(name) or (f"not on vkube's allow-list of {who} annotations that are safe "
                                  "on a controller every tenant shares")
    if not pattern.match(value):
        return f"invalid value {value!r} (must match {pattern.pattern[4:-3]})"
    return ""


def _nginx(key: str, name: str, value: str, namespace: str, host_namespace: str,
           secret_name: Callable[[str], str], service_name: Callable[[str], str],
           out: Judgement) -> str:
    why = _checked(NGINX_SAFE, name, value, "ingress-nginx")
    if why:
        return why
    if name == "server-alias":
        for alias in (a.strip() for a in value.split(",") if a.strip()):
            problems = host_problems(alias)
            if problems:
                return f"invalid value {alias!r}: {problems[0]}"
    if name in SECRET_KEYS or name in SERVICE_KEYS:
        own = _own(value, namespace)
        if own is None:
            return (f"names {value!r} in another namespace: only the Ingress's own namespace's "
                    "objects can be used")
        if name in SERVICE_KEYS:
            out.annotations[key] = service_name(own)
        else:
            out.annotations[key] = f"{host_namespace}/{secret_name(own)}"
    return ""


def secret_refs(annotations: dict[str, str], namespace: str) -> list[str]:
    """The tenant's own Secrets the annotations name (the Secret syncer copies them down)."""
    names = (_own(str(annotations.get(NGINX + k) or ""), namespace) for k in SECRET_KEYS)
    return [n for n in names if n]
