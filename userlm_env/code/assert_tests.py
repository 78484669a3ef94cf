"""HumanEval ``check(candidate)`` asserts turned into host-graded call tests, once, at load time.

A HumanEval test runs inside the candidate's process: a policy can defeat it with a return value
whose ``__eq__`` is always true, or by forging the runner's events and exiting. A call test
(:class:`~userlm_env.code.sandbox.TestCase`) sends only the arguments into the sandbox; the return
value comes back as plain data and is compared in the host. :func:`convert_check` reads the test
code with :mod:`ast` only (it never runs it) and converts a ``check`` **only if every assert in it
converts**; otherwise the task keeps its in-process ``check`` (all of it: a partial conversion would
drop tests) and is not RL-safe.

Conversion rules (``f`` is ``check``'s parameter, e.g. ``candidate``, or the entry point's name):

- ``assert f(A) == E`` and ``assert E == f(A)``      -> ``TestCase(A, E)``;
- ``assert f(A) is True`` / ``is False`` / ``is None`` -> ``TestCase(A, True / False / None)``;
- ``assert f(A)``                                   -> ``TestCase(A, True)`` (a bool is then required);
- ``assert not f(A)``                               -> ``TestCase(A, False)``;
- ``assert tuple(f(A)) == tuple(E)`` (or ``list``)  -> ``TestCase(A, E)`` (E a list or tuple; the host
  then needs a list or tuple back, where ``tuple()`` in process accepted any iterable);
- ``assert <a true constant>`` (HumanEval's ``assert True, "This prints if ..."``) tests nothing
  and is dropped; the assert message is ignored (it only runs on failure); docstrings, ``pass``,
  imports and a bare builtin name (a ``print`` line) in ``check`` are no-ops.

``A`` (positional arguments only) and ``E`` must be *plain values*: literals (numbers, strings,
``True``/``False``/``None``, lists, tuples, dicts, sets, ``set()``), simple module-level constants
(``NAME = literal``; a mutable one may be used once only, since a candidate that mutates its
argument would change what a second use sees in process), and arithmetic on numbers (``2.0 / 3.0``,
``-1``, ``2 ** 10``) or repetition/concatenation of strings, lists and tuples (``'a' * 100``), within
size limits. ``complex`` and ``bytes`` values are not converted (the host cannot compare them).

Not converted (the reason is recorded): loops, ``if``, assignments and any other statement in
``check``; ``!=``, ``<``, ``in``, chained comparisons; keyword or starred arguments; a call result
that is post-processed (``sorted(f(x)) == ...``, ``f(x)[0] == ...``); computed expected values
(``f(x) == g(y)``); float tolerances (``abs(f(x) - y) < 1e-6``, ``math.isclose(f(x), y)``,
``pytest.approx``), because :class:`~userlm_env.code.sandbox.TestCase` has no tolerance field (the
host's float comparison is fixed at ``rel_tol=1e-6, abs_tol=1e-9``); helpers defined in the test
code and used by ``check``; module-level code other than imports, literal constants, docstrings and
unused plain helper functions.

Differences from the in-process ``==`` of a converted test (the host's
:func:`~userlm_env.code.sandbox.values_equal`): floats and ints match within ``rel_tol=1e-6``; a tuple
equals the list of the same items; a bool never equals an int (``f(x) == True`` then needs ``True``,
not ``1``); the arguments are fresh copies for every call.
"""

from __future__ import annotations

import ast
import builtins
import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from userlm_env.code.sandbox import TestCase

__all__ = ["CheckConversion", "NotConvertible", "check_function", "convert_check", "tests_from_check"]

_MAX_SEQUENCE = 100_000
_MAX_INT_BITS = 1 << 16
_TOLERANCE_FUNCS = {"isclose", "allclose", "approx", "assert_allclose", "assert_almost_equal"}
_PLAIN_SCALARS = (type(None), bool, int, float, str)
_MUTABLE = (list, dict, set)


class NotConvertible(Exception):
    """An assert (or a statement of ``check``) that cannot become a call test; ``str(err)`` says why."""


@dataclass(frozen=True)
class CheckConversion:
    """The outcome of :func:`convert_check`.

    Attributes:
        cases: one call test per (non-trivial) assert of ``check``, in order; ``None`` unless every
            assert converted (and there was at least one).
        reasons: why not, one ``"line N: ..."`` per statement that did not convert (empty when converted).
        asserts: the asserts of ``check`` that test something (``assert True`` excluded).
    """

    cases: tuple[TestCase, ...] | None
    reasons: tuple[str, ...]
    asserts: int

    @property
    def converted(self) -> bool:
        """Every assert became a call test."""
        return self.cases is not None


def check_function(test_code: str) -> tuple[ast.Module, ast.FunctionDef]:
    """Parse HumanEval test code and find its top-level ``check`` function (the last one defined).

    Raises:
        ValueError: the code does not parse (the message has the line), defines no top-level
            ``check``, or its ``check`` takes no positional argument (it is called as ``check(fn)``).
    """
    try:
        tree = ast.parse(test_code)
    except SyntaxError as err:
        raise ValueError(f"test code does not parse: {err.msg} (line {err.lineno} of the test)") from err
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes, absurd nesting
        raise ValueError(f"test code does not parse: {type(err).__name__}: {err}") from err
    checks = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "check"]
    if not checks:
        raise ValueError("test code defines no top-level check(candidate) function")
    check = checks[-1]
    if isinstance(check, ast.AsyncFunctionDef):
        raise ValueError("check is an async function; it must be a plain def check(candidate)")
    if not (check.args.posonlyargs or check.args.args or check.args.vararg):
        raise ValueError("check takes no argument; it must be def check(candidate)")
    return tree, check


# ---------------------------------------------------------------------- plain values
def _is_plain(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if isinstance(value, _PLAIN_SCALARS):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _is_mutable(value: Any) -> bool:
    if isinstance(value, _MUTABLE):
        return True
    if isinstance(value, (tuple, frozenset)):
        return any(_is_mutable(v) for v in value)
    return False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mult(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, (str, list, tuple)):
        a, b = b, a
    if isinstance(a, (str, list, tuple)) and isinstance(b, int) and not isinstance(b, bool):
        if len(a) * max(b, 0) > _MAX_SEQUENCE:
            raise NotConvertible("a repeated sequence too long to evaluate")
        return a * b
    if _number(a) and _number(b):
        if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > _MAX_INT_BITS:
            raise NotConvertible("an integer too large to evaluate")
        return a * b
    raise NotConvertible(f"'*' on {type(a).__name__} and {type(b).__name__}")


def _add(a: Any, b: Any) -> Any:
    if _number(a) and _number(b):
        return a + b
    if type(a) is type(b) and isinstance(a, (str, list, tuple)):
        if len(a) + len(b) > _MAX_SEQUENCE:
            raise NotConvertible("a concatenation too long to evaluate")
        return a + b
    raise NotConvertible(f"'+' on {type(a).__name__} and {type(b).__name__}")


def _pow(a: Any, b: Any) -> Any:
    if not (_number(a) and _number(b)):
        raise NotConvertible("'**' on non-numbers")
    if isinstance(a, int) and isinstance(b, int) and b > 0 and a.bit_length() * b > _MAX_INT_BITS:
        raise NotConvertible("an integer too large to evaluate")
    return a**b


def _numeric(op: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if not (_number(a) and _number(b)):
            raise NotConvertible(f"'{symbol}' on {type(a).__name__} and {type(b).__name__}")
        return op(a, b)

    return apply


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _numeric(operator.sub, "-"),
    ast.Mult: _mult,
    ast.Div: _numeric(operator.truediv, "/"),
    ast.FloorDiv: _numeric(operator.floordiv, "//"),
    ast.Mod: _numeric(operator.mod, "%"),
    ast.Pow: _pow,
}


class _Values:
    """Evaluates plain-value expressions (see the module docstring) without running any code."""

    def __init__(self, constants: dict[str, Any]):
        self.constants = constants
        self.uses: dict[str, int] = {}

    def __call__(self, node: ast.expr) -> Any:
        try:
            value = self._eval(node, 0)
        except (ArithmeticError, ValueError, TypeError, RecursionError) as err:  # 1 / 0, 2.0 ** 5000, ...
            raise NotConvertible(f"{ast.unparse(node)[:60]!r} cannot be evaluated ({type(err).__name__})") from err
        if not _is_plain(value):
            raise NotConvertible(f"{ast.unparse(node)[:60]!r} is a {type(value).__name__}, not a plain value")
        return value

    def _eval(self, node: ast.expr, depth: int) -> Any:
        if depth > 50:
            raise NotConvertible("an expression nested too deeply")
        ev = self._eval
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.constants:
                raise NotConvertible(f"{node.id!r} is not a literal constant of the test code")
            self.uses[node.id] = self.uses.get(node.id, 0) + 1
            return copy.deepcopy(self.constants[node.id])
        if isinstance(node, ast.Tuple):
            return tuple(ev(e, depth + 1) for e in node.elts)
        if isinstance(node, ast.List):
            return [ev(e, depth + 1) for e in node.elts]
        if isinstance(node, ast.Set):
            return {ev(e, depth + 1) for e in node.elts}
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NotConvertible("a dict with ** unpacking")
            return {ev(k, depth + 1): ev(v, depth + 1) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call) and not node.args and not node.keywords:
            if isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset"):
                return set() if node.func.id == "set" else frozenset()
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand, depth + 1)
            if not _number(value):
                raise NotConvertible(f"unary minus/plus on a {type(value).__name__}")
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left, depth + 1), ev(node.right, depth + 1))
        if isinstance(node, ast.Starred):
            raise NotConvertible("a starred argument")
        raise NotConvertible(f"{ast.unparse(node)[:60]!r} is computed, not a literal")


# ---------------------------------------------------------------------- asserts
def _callee(node: ast.expr) -> str | None:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _func_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class _AssertConverter:
    def __init__(self, callees: set[str], values: _Values, shadowed: set[str]):
        self.callees = callees
        self.values = values
        self.sequences = {"tuple", "list"} - shadowed  # tuple()/list() unless the test code rebinds them

    def _is_call(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and _callee(node) in self.callees

    def _contains_call(self, node: ast.expr) -> bool:
        return any(isinstance(n, ast.Name) and n.id in self.callees for n in ast.walk(node))

    def _sequence_of_call(self, node: ast.expr) -> ast.Call | None:
        """``f(A)`` of ``tuple(f(A))`` / ``list(f(A))``, else None."""
        if _callee(node) in self.sequences and len(node.args) == 1 and not node.keywords:
            inner = node.args[0]
            return inner if self._is_call(inner) else None
        return None

    def _sequence_value(self, node: ast.expr) -> list | tuple:
        """The expected value of ``tuple(f(A)) == E``: ``E`` or ``tuple(E)``/``list(E)``, a list or a tuple."""
        wrapper = _callee(node) if _callee(node) in self.sequences else None
        if wrapper and len(node.args) == 1 and not node.keywords:
            node = node.args[0]
        value = self.values(node)
        if not isinstance(value, (list, tuple)):
            raise NotConvertible(f"tuple(f(x)) compared with a {type(value).__name__}, not a list or tuple")
        return tuple(value) if wrapper == "tuple" else list(value) if wrapper == "list" else value

    def _args(self, call: ast.Call) -> tuple:
        if call.keywords:
            raise NotConvertible("keyword arguments (call tests pass positional arguments only)")
        if any(isinstance(a, ast.Starred) for a in call.args):
            raise NotConvertible("a starred argument")
        return tuple(self.values(a) for a in call.args)

    def _tolerance(self, test: ast.expr) -> bool:
        """``abs(f(x) - y) < tol``, ``math.isclose(f(x), y)``, ``f(x) == pytest.approx(y)`` and the like."""
        for node in ast.walk(test):
            if isinstance(node, ast.Call) and _func_name(node.func) in _TOLERANCE_FUNCS:
                return True
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Lt, ast.LtE)):
            left = test.left
            return isinstance(left, ast.Call) and _func_name(left.func) in ("abs", "fabs")
        return False

    def convert(self, node: ast.Assert) -> TestCase | None:
        """The call test of one assert, ``None`` for an always-true constant assert."""
        test = node.test
        if isinstance(test, ast.Constant):
            if test.value:
                return None
            raise NotConvertible("an assert that always fails")
        if not self._contains_call(test):
            raise NotConvertible("an assert that does not call the function")
        if self._tolerance(test):
            raise NotConvertible(
                "a float tolerance (abs(f(x) - y) < tol, isclose, approx): TestCase has no tolerance field"
            )
        if self._is_call(test):
            return TestCase(self._args(test), True)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and self._is_call(test.operand):
            return TestCase(self._args(test.operand), False)
        if isinstance(test, ast.Compare):
            if len(test.ops) != 1:
                raise NotConvertible("a chained comparison")
            op, left, right = test.ops[0], test.left, test.comparators[0]
            if isinstance(op, ast.Eq):
                if self._is_call(left) and not self._contains_call(right):
                    return TestCase(self._args(left), self.values(right))
                if self._is_call(right) and not self._contains_call(left):
                    return TestCase(self._args(right), self.values(left))
                for seq, other in ((left, right), (right, left)):
                    call = self._sequence_of_call(seq)
                    if call is not None and not self._contains_call(other):
                        return TestCase(self._args(call), self._sequence_value(other))
                if self._contains_call(left) and self._contains_call(right):
                    raise NotConvertible("the expected value is computed with the function")
                raise NotConvertible("the function's result is post-processed before '=='")
            if isinstance(op, ast.Is):
                for call, other in ((left, right), (right, left)):
                    singleton = isinstance(other, ast.Constant) and isinstance(other.value, (bool, type(None)))
                    if self._is_call(call) and singleton:
                        return TestCase(self._args(call), other.value)
                raise NotConvertible("'is' with something other than True, False or None")
            raise NotConvertible(f"a {type(op).__name__!r} comparison (only '==' and 'is' convert)")
        raise NotConvertible("not of the form f(args) == value (the call's result is post-processed)")


# ---------------------------------------------------------------------- check
def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    names: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
    return names


def _describe(stmt: ast.stmt) -> str:
    kinds = {
        ast.For: "a for loop",
        ast.While: "a while loop",
        ast.If: "an if statement",
        ast.With: "a with statement",
        ast.Try: "a try statement",
        ast.Assign: "an assignment",
        ast.AugAssign: "an assignment",
        ast.AnnAssign: "an assignment",
        ast.Expr: "an expression statement",
        ast.FunctionDef: "a nested function",
        ast.ClassDef: "a class definition",
        ast.Return: "a return",
        ast.Raise: "a raise",
    }
    return kinds.get(type(stmt), f"a {type(stmt).__name__} statement")


def _is_builtin_name(stmt: ast.stmt, shadowed: set[str]) -> bool:
    """A statement that only names a builtin (``print``), which does nothing."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Name)):
        return False
    return stmt.value.id in vars(builtins) and stmt.value.id not in shadowed


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _module_scope(
    tree: ast.Module, check: ast.FunctionDef, entry_point: str, used: set[str], reasons: list[str]
) -> tuple[dict[str, Any], set[str]]:
    """Module-level literal constants of the test code, and the names it binds (shadowing builtins/entry)."""
    constants: dict[str, Any] = {}
    assigned: dict[str, int] = {}
    bound: set[str] = set()
    literal = _Values({})
    for stmt in tree.body:
        where = f"line {stmt.lineno}"
        if stmt is check or _is_docstring(stmt) or isinstance(stmt, ast.Pass):
            continue
        names = _bound_names(stmt)
        bound |= names
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            continue  # an earlier check, replaced by the last one (check_function picks it)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if stmt.name in used or stmt.name == entry_point:
                reasons.append(f"{where}: check uses the helper {stmt.name!r} defined in the test code")
            elif stmt.decorator_list or stmt.args.defaults or any(stmt.args.kw_defaults):
                reasons.append(f"{where}: the helper {stmt.name!r} runs code when defined (decorators, defaults)")
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            assigned[name] = assigned.get(name, 0) + 1
            try:
                constants[name] = literal(stmt.value)
            except NotConvertible as err:
                reasons.append(f"{where}: module-level {name} = ... is computed ({err})")
            continue
        reasons.append(f"{where}: module-level code ({_describe(stmt)})")
    for name, count in assigned.items():
        if count > 1:
            constants.pop(name, None)
    return constants, bound


def convert_check(test_code: str, entry_point: str) -> CheckConversion:
    """Convert the asserts of a HumanEval ``check(candidate)`` into call tests (see the module rules).

    Pure :mod:`ast` analysis: nothing of ``test_code`` is executed.

    Raises:
        ValueError: the test code is invalid (see :func:`check_function`).
    """
    tree, check = check_function(test_code)
    param = (check.args.posonlyargs + check.args.args)[0].arg if (check.args.posonlyargs or check.args.args) else None
    reasons: list[str] = []
    if param is None:
        reasons.append(f"line {check.lineno}: check(*args) takes its function through *args")
    used = set().union(*(_names(s) for s in check.body)) if check.body else set()
    constants, module_bound = _module_scope(tree, check, entry_point, used, reasons)
    if check.decorator_list:
        reasons.append(f"line {check.lineno}: check is decorated")
    callees = {param} if param else set()
    if entry_point not in module_bound and entry_point != param:
        callees.add(entry_point)
    local_bound: set[str] = set()
    for stmt in check.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            local_bound |= _bound_names(stmt)
    for name in sorted(local_bound & (callees | set(constants))):
        reasons.append(f"line {check.lineno}: check rebinds {name!r} with an import")
        callees.discard(name)
        constants.pop(name, None)
    values = _Values(constants)
    converter = _AssertConverter(callees, values, module_bound | local_bound)
    cases: list[TestCase] = []
    asserts = 0
    for stmt in check.body:
        where = f"line {stmt.lineno}"
        if _is_docstring(stmt) or isinstance(stmt, (ast.Pass, ast.Import, ast.ImportFrom)):
            continue
        if _is_builtin_name(stmt, module_bound | local_bound):
            continue  # a bare `print` line (HumanEval/129): a no-op
        if not isinstance(stmt, ast.Assert):
            reasons.append(f"{where}: {_describe(stmt)} in check")
            continue
        try:
            case = converter.convert(stmt)
        except NotConvertible as err:
            asserts += not (isinstance(stmt.test, ast.Constant) and stmt.test.value)
            reasons.append(f"{where}: {err}")
            continue
        if case is not None:
            asserts += 1
            cases.append(case)
    for name, count in sorted(values.uses.items()):
        if count > 1 and _is_mutable(constants[name]):
            reasons.append(f"the mutable constant {name!r} is used {count} times (a call may mutate it)")
    if not reasons and not cases:
        reasons.append(f"line {check.lineno}: check has no assert that calls the function")
    if reasons:
        return CheckConversion(None, tuple(reasons), asserts)
    return CheckConversion(tuple(cases), (), asserts)


def tests_from_check(test_code: str, entry_point: str) -> tuple[dict[str, Any], bool, tuple[str, ...]]:
    """The ``metadata["tests"]`` of a HumanEval-style task, whether it is RL-safe, and why not.

    ``({"type": "calls", "cases": ...}, True, ())`` when every assert converts, else
    ``({"type": "script", "code": test_code}, False, reasons)``.

    Raises:
        ValueError: the test code is invalid (see :func:`check_function`).
    """
    conversion = convert_check(test_code, entry_point)
    if conversion.converted:
        return {"type": "calls", "cases": conversion.cases}, True, ()
    return {"type": "script", "code": test_code}, False, conversion.reasons
