"""dnspython's side of the cluster DNS (:mod:`vkube.dns.server`): parsing queries, building
answers, forwarding upstream. Imported on the first query: dnspython's message, name and
rdata modules are ~3 MiB of resident memory, which a cluster nobody resolves in never needs."""

from __future__ import annotations

import contextlib
import logging
import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from vkube.dns.records import NXDOMAIN, SRV, Answer, Record

log = logging.getLogger("vkube.dns.server")

_MAX_UDP = 512  # without EDNS0, as RFC 1035 says; larger answers set TC and the client retries on TCP


def _rdata(rec: Record) -> dns.rdata.Rdata:
    rtype = dns.rdatatype.from_text(rec.rtype)
    if rec.rtype == SRV:
        prio, weight, port, target = rec.value  # type: ignore[misc]
        text = f"{prio} {weight} {port} {target}"
    elif rec.rtype == "TXT":
        text = f'"{rec.value}"'
    else:
        text = str(rec.value)
    return dns.rdata.from_text(dns.rdataclass.IN, rtype, text)


def build_response(query: dns.message.Message, answer: Answer) -> dns.message.Message:
    """A response to ``query`` carrying ``answer`` (authoritative for the cluster zone)."""
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.AA | dns.flags.RA
    resp.set_rcode(dns.rcode.NXDOMAIN if answer.rcode == NXDOMAIN else dns.rcode.NOERROR)
    grouped: dict[tuple[str, str], list[Record]] = {}
    for rec in answer.records:
        grouped.setdefault((rec.name, rec.rtype), []).append(rec)
    for (name, rtype), recs in grouped.items():
        rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN,
                                dns.rdatatype.from_text(rtype))
        for rec in recs:
            rrset.add(_rdata(rec), ttl=rec.ttl)
        resp.answer.append(rrset)
    return resp


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query ID, when at least a header arrived (as resolvers do)."""
    if len(wire) < 12:
        return None
    qid = struct.unpack("!H", wire[:2])[0]
    resp = dns.message.Message(id=qid)
    resp.flags |= dns.flags.QR
    resp.set_rcode(dns.rcode.FORMERR)
    return resp.to_wire()


def _truncate(wire: bytes) -> bytes:
    """A UDP answer too large for 512 bytes: header with TC and the question only."""
    msg = dns.message.from_wire(wire)
    msg.answer.clear()
    msg.authority.clear()
    msg.additional.clear()
    msg.flags |= dns.flags.TC
    return msg.to_wire()




def parse_question(wire: bytes) -> tuple[dns.message.Message, str, str] | bytes | None:
    """``(query, qname, qtype)`` of a one-question query; else the response to send (FORMERR),
    or None for garbage that is not even a header."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return _formerr(wire)
    if len(query.question) != 1:
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.FORMERR)
        return resp.to_wire()
    q = query.question[0]
    return query, q.name.to_text(), dns.rdatatype.to_text(q.rdtype)


def respond(query: dns.message.Message, answer: Answer) -> bytes:
    return build_response(query, answer).to_wire()


async def forward(query: dns.message.Message, upstream: tuple[str, int] | None,
                  timeout: float) -> bytes:
    """The upstream resolver's answer to a name outside the cluster zone (REFUSED without
    one, SERVFAIL when it fails)."""
    if upstream is None:
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.REFUSED)
        return resp.to_wire()
    from dns import asyncquery  # its transports (~0.6 MiB) only once a name goes upstream

    try:
        resp = await asyncquery.udp(query, upstream[0], port=upstream[1], timeout=timeout)
        if resp.flags & dns.flags.TC:
            resp = await asyncquery.tcp(query, upstream[0], port=upstream[1], timeout=timeout)
        return resp.to_wire()
    except (dns.exception.DNSException, OSError) as exc:
        log.info("dns: upstream %s:%s failed for %s: %s", *upstream, query.question[0].name, exc)
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.SERVFAIL)
        return resp.to_wire()


def fit_udp(query: bytes, resp: bytes) -> bytes:
    """``resp`` as sent over UDP: truncated (TC) beyond 512 bytes, or beyond the query's EDNS0
    payload size."""
    limit = _MAX_UDP
    with contextlib.suppress(dns.exception.DNSException):
        q = dns.message.from_wire(query)
        if q.edns >= 0:
            limit = max(_MAX_UDP, q.payload)
    return _truncate(resp) if len(resp) > limit else resp
