"""Kubernetes' CEL libraries in CRD rules, table-driven from the expectations of
k8s.io/apiserver pkg/cel/library (quantity_test.go, ip_test.go, cidr_test.go, the examples of
urls.go and lists.go) and cel-go's strings extension: each expression compiles through the
type checker and evaluates as a rule on a custom resource."""

from __future__ import annotations

import pytest

from vkube.api.cel import compile_rules
from vkube.api.errors import cause_text


def outcome(expr: str) -> str:
    """'true', 'false', or the compile or runtime error of ``expr`` as a rule."""
    rules, causes = compile_rules({"type": "object", "x-kubernetes-validations": [{"rule": expr}]}, "s")
    if causes:
        return "compile: " + "; ".join(cause_text(c) for c in causes)
    out = rules.validate({})
    if not out:
        return "true"
    text = cause_text(out[0])
    return "false" if "failed rule" in text else "runtime: " + text


TRUE = [
    # quantity
    'quantity("12Mi") == quantity("12Mi")', 'isQuantity("20")', 'isQuantity("20M")', 'isQuantity("20Mi")',
    '!isQuantity("20Mo")', '!isQuantity("10Mm")',
    'quantity("200M") == quantity("0.2G") && quantity("0.2G") == quantity("200M")',
    'quantity("2M") == quantity("0.002G") && quantity("2000k") == quantity("2M")',
    'quantity("200M") != quantity("0.3G")',
    'quantity("50M").isLessThan(quantity("50Mi"))', '!quantity("100M").isLessThan(quantity("50M"))',
    'quantity("50Mi").isGreaterThan(quantity("50M"))', '!quantity("50M").isGreaterThan(quantity("100M"))',
    'quantity("200M").compareTo(quantity("0.2G")) == 0', 'quantity("50M").compareTo(quantity("50Mi")) == -1',
    'quantity("50Mi").compareTo(quantity("50M")) == 1',
    'quantity("50k").add(quantity("20")) == quantity("50.02k")',
    '!quantity("50k").add(20).isLessThan(quantity("50020"))',
    'quantity("50k").sub(quantity("20")) == quantity("49.98k")', 'quantity("50k").sub(20) == quantity("49980")',
    'quantity("50k").add(20).sub(quantity("100k")).asInteger() == -49980',
    'quantity("50k").add(20).sub(quantity("100k")).sub(-50000).asInteger() == 20',
    'quantity("50k").asInteger() == 50000', '!quantity("9999999999999999999999999999999999999G").isInteger()',
    'quantity("50").isInteger()', 'quantity("50.703k").asApproximateFloat() == 50703.0',
    '[quantity("9999999999999999999999999999999999999")].all(x, x.add(quantity("1")).compareTo(x.add(quantity("2"))) == -1)',
    'quantity("-5").sign() == -1',
    # format
    "!format.dns1123Label().validate('my-name').hasValue()",
    "format.dns1123Label().validate('MY').value() == ['a lowercase RFC 1123 label must consist of lower case "
    "alphanumeric characters or \\'-\\', and must start and end with an alphanumeric character (e.g. "
    "\\'my-name\\',  or \\'123-abc\\', regex used for validation is \\'[a-z0-9]([-a-z0-9]*[a-z0-9])?\\')']",
    "format.named('dns1123Label').value().validate('a') == optional.none()", "!format.named('nope').hasValue()",
    "format.dns1035Label().validate('1a').hasValue()", "!format.qualifiedName().validate('example.com/a').hasValue()",
    "format.labelValue().validate('-x').hasValue()", "format.uuid().validate('x').value() == ['does not match the UUID format']",
    "!format.uri().validate('https://example.com/a').hasValue()", "format.byte().validate('@@').hasValue()",
    "!format.date().validate('2024-02-29').hasValue()", "format.datetime().validate('yesterday').hasValue()",
    # semver
    "isSemver('1.0.0')", "!isSemver('hello')", "!isSemver('v1.0')", "isSemver('v1.0', true)",
    "semver('v1.0.0', true) == semver('1.0.0')", "semver('1.0', true) == semver('1.0.0')",
    "semver('01.01.01', true) == semver('1.1.1')", "semver('1.2.3').major() == 1", "semver('1.2.3').minor() == 2",
    "semver('1.2.3').patch() == 3", "semver('1.2.3').isGreaterThan(semver('1.2.2'))",
    "semver('1.0.0-alpha').isLessThan(semver('1.0.0'))", "semver('1.0.0-alpha.1').isLessThan(semver('1.0.0-alpha.beta'))",
    "semver('1.0.0').compareTo(semver('1.0.0+build')) == 0", "semver('2.0.0').compareTo(semver('10.0.0')) == -1",
    # IP
    'isIP("192.168.0.1")', '!isIP("192.168.0.1.0")', 'ip.isCanonical("127.0.0.1")',
    'ip("192.168.0.1").family() == 4', 'ip("0.0.0.0").isUnspecified()', '!ip("127.0.0.1").isUnspecified()',
    'ip("127.0.0.1").isLoopback()', '!ip("1.2.3.4").isLoopback()', 'ip("224.0.0.1").isLinkLocalMulticast()',
    '!ip("224.0.1.1").isLinkLocalMulticast()', 'ip("169.254.169.254").isLinkLocalUnicast()',
    '!ip("192.168.0.1").isLinkLocalUnicast()', 'ip("192.168.0.1").isGlobalUnicast()',
    '!ip("255.255.255.255").isGlobalUnicast()', 'isIP("2001:db8::68")', '!isIP("2001:db8:::68")',
    'ip.isCanonical("2001:db8::68")', '!ip.isCanonical("2001:DB8::68")', 'ip("2001:db8::68").family() == 6',
    'ip("::").isUnspecified()', '!ip("::1").isUnspecified()', 'ip("::1").isLoopback()',
    '!ip("2001:db8::abcd").isLoopback()', 'ip("ff02::1").isLinkLocalMulticast()',
    '!ip("fd00::1").isLinkLocalMulticast()', 'ip("fe80::1").isLinkLocalUnicast()',
    '!ip("fd80::1").isLinkLocalUnicast()', 'ip("2001:db8::abcd").isGlobalUnicast()',
    '!ip("ff00::1").isGlobalUnicast()', 'string(ip("192.168.0.1")) == "192.168.0.1"',
    'ip("192.168.0.1") == ip("192.168.0.1")',
    # CIDR
    'cidr("192.168.0.0/24").containsIP(ip("192.168.0.1"))', '!cidr("192.168.0.0/24").containsIP(ip("192.168.1.1"))',
    'cidr("192.168.0.0/24").containsIP("192.168.0.1")', '!cidr("192.168.0.0/24").containsIP("192.168.1.1")',
    'cidr("192.168.0.0/24").containsCIDR(cidr("192.168.0.0/25"))',
    'cidr("192.168.0.0/24").containsCIDR(cidr("192.168.0.1/32"))',
    '!cidr("192.168.0.0/24").containsCIDR(cidr("192.168.0.0/23"))',
    '!cidr("192.168.0.0/24").containsCIDR(cidr("192.169.0.1/32"))',
    'cidr("192.168.0.0/24").containsCIDR("192.168.0.0/25")', '!cidr("192.168.0.0/24").containsCIDR("192.168.0.0/23")',
    'cidr("192.168.0.0/24").ip() == ip("192.168.0.0")', 'cidr("192.168.0.1/24").masked() == cidr("192.168.0.0/24")',
    'cidr("192.168.0.0/24").prefixLength() == 24', 'cidr("2001:db8::/32").containsIP(ip("2001:db8::1"))',
    '!cidr("2001:db8::/32").containsIP(ip("2001:dc8::1"))', 'cidr("2001:db8::/32").containsCIDR("2001:db8::/33")',
    '!cidr("2001:db8::/32").containsCIDR("2001:db8::/31")', 'cidr("2001:db8:1::/32").masked() == cidr("2001:db8::/32")',
    'cidr("2001:db8::/32").prefixLength() == 32', 'string(cidr("192.168.0.0/24")) == "192.168.0.0/24"',
    'isCIDR("10.0.0.0/8")', '!isCIDR("10.0.0.0")',
    # URL
    "url('/path').getScheme() == ''", "url('https://example.com/').getScheme() == 'https'",
    "url('https://example.com:80/').getHost() == 'example.com:80'", "url('https://example.com/').getHost() == 'example.com'",
    "url('https://[::1]:80/').getHost() == '[::1]:80'", "url('https://[::1]/').getHost() == '[::1]'",
    "url('/path').getHost() == ''", "url('https://example.com:80/').getHostname() == 'example.com'",
    "url('https://127.0.0.1:80/').getHostname() == '127.0.0.1'", "url('https://[::1]:80/').getHostname() == '::1'",
    "url('https://example.com:80/').getPort() == '80'", "url('https://example.com/').getPort() == ''",
    "url('https://example.com/path').getEscapedPath() == '/path'",
    "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
    "url('https://example.com').getEscapedPath() == ''",
    "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
    "url('https://example.com/path?key with spaces=value with spaces').getQuery() == {'key with spaces': ['value with spaces']}",
    "url('https://example.com/path?').getQuery() == {}",
    "isURL('https://user:pass@example.com:80/path?query=val#fragment')", "isURL('/absolute-path')",
    "!isURL('https://a:b:c/')", "!isURL('../relative-path')",
    # lists
    "[1, 2, 3].isSorted()", "['a', 'b', 'b', 'c'].isSorted()", "![2.0, 1.0].isSorted()", "[1].isSorted()",
    "[1, 3].sum() == 4", "[1.0, 3.0].sum() == 4.0", "[duration('1m'), duration('1s')].sum() == duration('1m1s')",
    "[1, 2, 3].includes(2)", "![1, 2, 3].includes(4)",
    # cel-go's lists extension, version 3
    "[1, 2, 3, 4].slice(1, 3) == [2, 3]", "[[1, 2], [3]].flatten() == [1, 2, 3]", "[1, 2, 2, 1].distinct() == [1, 2]",
    "[3, 1, 2].sort() == [1, 2, 3]", "['b', 'a'].sort() == ['a', 'b']", "[1, 2].reverse() == [2, 1]",
    "[1, 2].first().value() == 1", "![].last().hasValue()", "lists.range(3) == [0, 1, 2]",
    "[1, 3].min() == 1", "[1, 3].max() == 3", "[1].min() == 1", "[1, 2, 2, 3].indexOf(2) == 1",
    "['a', 'b', 'b', 'c'].lastIndexOf('b') == 2", "[1.0].indexOf(1.1) == -1",
    # two-variable comprehensions (Kubernetes 1.32+) and map with a filter, rewritten for cel-python
    "[1, 2, 3].all(i, v, v == i + 1)", "[1, 2, 3].exists(i, v, i == 2 && v == 3)",
    "{'a': 1, 'b': 2}.all(k, v, k.size() == 1 && v > 0)", "[5, 6].existsOne(i, v, v > 5)",
    "[5, 6].transformList(i, v, v * i) == [0, 6]", "[5, 6, 7].transformList(i, v, i > 0, v) == [6, 7]",
    "[1, 2, 3].map(x, x > 1, x * 2) == [4, 6]", "[1, 2].all(i, v, [3].all(v, v == 3) && v < 3)",
    # sets
    "sets.contains([1, 2, 3], [1, 2])", "!sets.contains([1, 2], [2, 3])", "sets.equivalent([1, 2], [2, 1, 1])",
    "!sets.equivalent([1, 2], [1, 3])", "sets.intersects([1, 2], [2, 3])", "!sets.intersects([1], [2])",
    # strings extension
    "'hello'.charAt(1) == 'e'", "'hello'.charAt(5) == ''", "'hello mellow'.indexOf('') == 0",
    "'hello mellow'.indexOf('jello') == -1", "'hello mellow'.indexOf('ello', 6) == 7",
    "'hello mellow'.lastIndexOf('') == 12", "'hello mellow'.lastIndexOf('ello') == 7",
    "'hello mellow'.lastIndexOf('ello', 6) == 1", "'TacoCat'.lowerAscii() == 'tacocat'",
    "'TacoCÆt Xii'.lowerAscii() == 'tacocÆt xii'", "'tacoCat'.upperAscii() == 'TACOCAT'",
    "'hello hello'.replace('he', 'we') == 'wello wello'", "'hello hello'.replace('he', 'we', 1) == 'wello hello'",
    "'hello hello'.replace('he', 'we', 0) == 'hello hello'", "'hello hello'.split(' ') == ['hello', 'hello']",
    "'hello hello hello'.split(' ', 2) == ['hello', 'hello hello']", "'hello hello'.split(' ', 0) == []",
    "'tacocat'.substring(4) == 'cat'", "'tacocat'.substring(0, 4) == 'taco'",
    "'  \\ttrim\\n    '.trim() == 'trim'", "['hello', 'mellow'].join() == 'hellomellow'",
    "['hello', 'mellow'].join(' ') == 'hello mellow'", "[].join() == ''",
    "strings.quote('single-quote with \"double quote\"') == '\"single-quote with \\\\\"double quote\\\\\"\"'",
    "'%s is %d years old'.format(['Ada', 36]) == 'Ada is 36 years old'", "'%.2f'.format([1.2345]) == '1.23'",
    "'%x'.format([255]) == 'ff'", "'%b'.format([5]) == '101'",
    # regex
    "'abc 123'.find('[0-9]+') == '123'", "'abc'.find('[0-9]+') == ''",
    "'123 abc 456'.findAll('[0-9]+') == ['123', '456']", "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
    "'abc'.findAll('[0-9]+') == []",
    # optionals
    "optional.of(1).hasValue()", "!optional.none().hasValue()", "optional.of(1).value() == 1",
    "optional.none().orValue(2) == 2", "optional.of(1).orValue(2) == 1", "optional.none().or(optional.of(3)).value() == 3",
    "{'a': 1}.?a.orValue(0) == 1", "{'a': 1}.?b.orValue(0) == 0", "[1, 2][?1].orValue(0) == 2", "[1][?5].orValue(0) == 0",
    "{'a': {'b': 2}}.?a.?b.orValue(0) == 2", "!{'a': {}}.?a.?b.hasValue()", "!optional.ofNonZeroValue('').hasValue()",
    "optional.of(1) == optional.of(1)", "optional.of(1) != optional.of(2)",
    "{'a': {'b': 2}}.?a.b.orValue(0) == 2", "!{'c': {'d': 1}}.?a.d.hasValue()",  # selection on an optional chains
]


@pytest.mark.parametrize("expr", TRUE)
def test_library_expression_is_true(expr: str) -> None:
    assert outcome(expr) == "true"


@pytest.mark.parametrize("expr, error", [
    ('quantity("10Mo") == quantity("1")', "quantities must match the regular expression"),
    ('quantity("9999999999999999999999999999999999999G").asInteger() == 0', "cannot convert value to integer"),
    ('ip("192.168.0.1.0") == ip("1.2.3.4")', 'IP Address "192.168.0.1.0" parse error during conversion from string'),
    ('ip.isCanonical("127.0.0.1.0")', 'IP Address "127.0.0.1.0" parse error during conversion from string'),
    ('ip("::ffff:1.2.3.4").family() == 6', "IPv4-mapped IPv6 address"),
    ('cidr("192.168.0.0/") == cidr("1.0.0.0/8")', "network address parse error during conversion from string"),
    ("url('../relative-path').getHost() == ''", "URL must be an absolute URI or an absolute path"),
    ("[].max() == 1", "max called on empty list"),
    ("[].min() == 1", "empty sequence"),  # celpy evaluates min() itself
    ("'hello'.charAt(10) == ''", "index out of range: 10"),
    ("'tacocat'.substring(40) == ''", "index out of range: 40"),
    ("'tacocat'.substring(4, 2) == ''", "invalid substring range. start: 4, end: 2"),
    ("optional.none().value() == 1", "optional.none() dereference"),
    ("semver('200K').major() == 1", "Invalid semver: 200K"),
    ("[1].slice(1, 0) == []", "cannot slice(1, 0), start index must be less than or equal to end index"),
    ("[1].slice(0, 2) == []", "cannot slice(0, 2), list is length 1"),
])
def test_library_errors_are_runtime_errors_of_the_rule(expr: str, error: str) -> None:
    result = outcome(expr)
    assert result.startswith("runtime: ") and error in result, result


@pytest.mark.parametrize("expr, error", [
    ('isIP(cidr("192.168.0.0/24"))', "found no matching overload for 'isIP' applied to '(net.CIDR)'"),
    ('isQuantity([1, 2, 3])', "found no matching overload for 'isQuantity' applied to '(list(int))'"),
    ("'abc'.charAt('1') == 'b'", "found no matching overload for 'charAt' applied to 'string.(string)'"),
    ("quantity('1').isLessThan(1)", "found no matching overload for 'isLessThan' applied to 'kubernetes.Quantity.(int)'"),
    ("[1].authorizer()", "undeclared reference to 'authorizer'"),
    ("{'a': 1}.all(k, v, v == 'x')", "found no matching overload for '_==_' applied to '(int, string)'"),
    ("[1].all(i, v, w > 0)", "undeclared reference to 'w'"),
    # Kubernetes' AST validators: literals are checked where they are written
    ("[1, 'a'].size() == 2", "ERROR: <input>:1:5: expected type 'int' but found 'string'"),
    ("{'a': 1, 'b': 'x'}.size() == 2", "expected type 'int' but found 'string'"),
    ("'a'.matches('[')", "ERROR: <input>:1:13: invalid matches argument"),
    ("duration('1x') > duration('1s')", "invalid duration argument"),
    ("timestamp('yesterday') < timestamp('2020-01-01T00:00:00Z')", "invalid timestamp argument"),
])
def test_library_misuse_is_refused_when_compiling(expr: str, error: str) -> None:
    result = outcome(expr)
    assert result.startswith("compile: ") and error in result, result


def test_rules_printed_back_from_the_checked_ast_mean_the_same() -> None:
    """The rewriter prints whole rules back (around the comprehensions it rewrites): every
    expression above, printed from its AST, still evaluates to true."""
    import celpy

    from vkube.api.cel_ast import desugar, to_ast
    from vkube.api.cel_check import check_ast
    from vkube.api.cel_library import functions
    from vkube.api.cel_rewrite import rewrite, to_text
    from vkube.api.cel_types import primitive

    env = celpy.Environment()
    for expr in TRUE:
        source = desugar(expr)
        ast = to_ast(env.compile(source), source)
        check_ast(ast, {"self": primitive("dyn"), "oldSelf": primitive("dyn")})
        text = to_text(rewrite(ast))
        assert env.program(env.compile(text), functions=functions()).evaluate({}), (expr, text)
