"""Campaign personalisation: compile once, render per recipient, fast and sandboxed.

Templates are written by tenants, so they run in Jinja2's immutable sandbox
and are also checked statically when a draft is saved: any attribute or key
starting with ``_`` (the road to ``__class__``/``__globals__``), unknown
variables and misspelt ``subscriber``/``campaign`` attributes are refused
with the part, line and a message.  The same sandbox still guards rendering,
so anything the static check misses fails at render time instead of leaking.

Policy for missing data: a *variable* name must be known at save time, but a
missing subscriber *field* renders as an empty string (fields vary between
subscribers and one missing value must not fail a send half-way through a
list); use ``| default("there")`` for a fallback.  ``None`` renders as "".

Templates are also bounded, because a few bytes of template can ask for gigabytes or
hours: strings and lists built with ``*``, ``**`` exponents, padding widths (``center``,
``indent``, ``ljust``..., ``%`` and ``format`` widths), ``range`` and ``replace`` results
are capped; loops nest at most :data:`MAX_LOOP_DEPTH` deep and ``namespace`` (the one
way to carry a value out of a loop) is not offered; each render has a CPU-time budget
(:data:`RENDER_CPU_SECONDS`, checked at every loop step, call and output chunk) and an
output cap (:data:`MAX_OUTPUT` characters per recipient, all parts).  A bound that is
visible in the source is refused when the draft is saved; otherwise the render fails
with :class:`RenderBound`, naming the bound.

Compilation happens once per campaign (the naive per-recipient
``Template(src)`` is ~50x slower).  Link rewriting for click tracking is a
single regex pass over the rendered HTML: at compile time every trackable
``<a href>`` in the source is wrapped in private-use marker characters
carrying its link index, so indexes are stable per template link no matter
what conditionals render, and no HTML parsing happens per recipient.
"""

from __future__ import annotations

import operator
import re
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape as _escape_attr
from html import unescape
from itertools import islice
from typing import Any

from jinja2 import Template, filters, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import ChainableUndefined, Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lunamail.lib.html2text import html_to_text

__all__ = [
    "MAX_LOOP_DEPTH",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_SEQUENCE",
    "MAX_WIDTH",
    "PARTS",
    "RENDER_CPU_SECONDS",
    "VARIABLES",
    "CompiledCampaign",
    "Link",
    "LinkRewriter",
    "RenderBound",
    "RenderProblem",
    "Rendered",
    "TemplateProblem",
    "compile_campaign",
    "extract_links",
]

PARTS = ("subject", "html", "text")
#: Top-level names a campaign template may use.
VARIABLES = frozenset({"subscriber", "unsubscribe_url", "view_in_browser_url", "campaign"})
_KNOWN_ATTRS: Mapping[str, frozenset[str]] = {
    "subscriber": frozenset({"email", "name", "fields"}),
    "campaign": frozenset({"id", "subject", "name"}),
}
#: Largest string/list a template may build with ``*`` (and the largest ``**`` exponent / 100):
#: constant folding at compile time would otherwise let ``{{ "x" * 10**10 }}`` exhaust memory.
MAX_SEQUENCE = 100_000
#: Largest ``range`` a template may loop over.
MAX_RANGE = 10_000
#: Deepest nesting of ``{% for %}`` loops.
MAX_LOOP_DEPTH = 3
#: Largest padding / field width (``center``, ``indent``, ``ljust``, ``%10d``, ``{:>10}``).
MAX_WIDTH = 1_000
#: Characters one recipient's render may produce, subject + HTML + text.
MAX_OUTPUT = 2_000_000
#: CPU seconds one recipient's render may take (all parts), measured on the rendering thread.
RENDER_CPU_SECONDS = 0.5
_MAX_STRING = MAX_OUTPUT  # largest string a call may take or return
_SAMPLE: Mapping[str, Any] = {"email": "sample@example.com", "name": "Sample", "fields": {}}

LinkRewriter = Callable[[str, int], str]


class TemplateProblem(ValueError):
    """A template that cannot be used: which part, which line (1-based; None if unknown), why."""

    def __init__(self, part: str, line: int | None, message: str) -> None:
        where = f"{part}, line {line}" if line else part
        super().__init__(f"{where}: {message}")
        self.part = part
        self.line = line
        self.message = message


class RenderProblem(RuntimeError):
    """Rendering one recipient failed (e.g. the sandbox refused an operation)."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


class RenderBound(RenderProblem):
    """A render broke one of the bounds (CPU time, output size, a size limit); ``bound``
    names it, e.g. ``"cpu_time"`` or ``"output_size"``."""

    def __init__(self, part: str, bound: str, message: str) -> None:
        super().__init__(part, message)
        self.bound = bound


class _Exceeded(SecurityError):
    """Raised inside the sandbox when a bound is broken (turned into RenderBound)."""

    def __init__(self, bound: str, message: str) -> None:
        super().__init__(message)
        self.bound = bound


class _Budget(threading.local):
    """The CPU deadline of the render running on this thread (0: none)."""

    deadline = 0.0
    seconds = 0.0
    ticks = 0
    produced = 0  # characters output so far, into any buffer (macros, blocks, the page)


_BUDGET = _Budget()


def _tick() -> None:
    """Count one step of template work; every 64th step compare the thread's CPU time with
    the render's deadline."""
    b = _BUDGET
    b.ticks += 1
    if b.ticks & 63 == 0 and b.deadline and time.thread_time() > b.deadline:
        raise _Exceeded("cpu_time", f"the render took more than {b.seconds:g} s of CPU time")


_MAX_PRODUCED = 4 * MAX_OUTPUT


def _produced(value: Any) -> Any:
    """Every ``{{ expression }}`` output passes through this (inserted at compile time)."""
    b = _BUDGET
    if isinstance(value, str):
        b.produced += len(value)
        if b.produced > _MAX_PRODUCED:
            raise _Exceeded("output_size", f"the render produced more than {_MAX_PRODUCED} characters")
    _tick()
    return value


def _bounded_iter(value: Any) -> Any:
    """Every loop iterates through this (inserted at compile time): a budget check per step."""
    for item in value:
        _tick()
        yield item


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise _Exceeded("width", f"{what} width {width} is above the limit of {MAX_WIDTH}")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str) -> None:
    """Widths and precisions of a ``%`` format string (``*`` widths are refused)."""
    for m in _PERCENT_SPEC.finditer(fmt):
        for group in m.groups():
            if group == "*":
                raise _Exceeded("width", "'*' widths are not allowed in templates")
            if group and int(group) > MAX_WIDTH:
                raise _Exceeded("width", f"format width {group} is above the limit of {MAX_WIDTH}")


_BRACE_WIDTH = re.compile(r"\d+")


def _check_brace_format(fmt: str) -> None:
    """Widths and precisions of a ``str.format`` string (nested ``{}`` specs are refused)."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format itself will refuse it
    for _, _, spec, _ in parsed:
        if not spec:
            continue
        if "{" in spec:
            raise _Exceeded("width", "nested format fields are not allowed in templates")
        for number in _BRACE_WIDTH.findall(spec):
            if int(number) > MAX_WIDTH:
                raise _Exceeded("width", f"format width {number} is above the limit of {MAX_WIDTH}")


def _check_string(value: Any, what: str) -> None:
    if isinstance(value, str) and len(value) > _MAX_STRING:
        raise _Exceeded("string_size", f"{what} is longer than {_MAX_STRING} characters")


def _safe_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise _Exceeded("range", f"range of {len(r)} items is above the limit of {MAX_RANGE}")
    return r


def _bounded_center(value: str, width: int = 80) -> str:
    _check_width(width, "center")
    return filters.do_center(value, width)


def _bounded_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    if isinstance(width, str):
        _check_string(width, "indent")
        if len(width) > MAX_WIDTH:
            raise _Exceeded("width", f"indent width {len(width)} is above the limit of {MAX_WIDTH}")
    else:
        _check_width(width, "indent")
    return filters.do_indent(value, width, first, blank)


def _bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent(str(value))
    return filters.do_format(value, *args, **kwargs)


def _replaced_size(text: str, old: str, new: str, count: int | None) -> int:
    n = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        n = min(n, count)
    return len(text) + n * (len(new) - len(old))


def _check_size(size: int, what: str) -> None:
    if size > _MAX_STRING:
        raise _Exceeded("string_size", f"{what} would build more than {_MAX_STRING} characters")


@pass_eval_context
def _bounded_replace(eval_ctx: Any, value: str, old: str, new: str, count: int | None = None) -> str:
    _check_size(_replaced_size(str(value), str(old), str(new), count), "replace")
    return filters.do_replace(eval_ctx, value, old, new, count)


@pass_eval_context
def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_size(len(items) * len(str(d)) + sum(len(x) for x in items if isinstance(x, str)), "join")
    return filters.sync_do_join(eval_ctx, items, d, attribute)


@pass_environment
def _bounded_wordwrap(environment: Any, s: str, width: int = 79, break_long_words: bool = True,
                      wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    wrap = environment.newline_sequence if wrapstring is None else wrapstring
    _check_size(len(s) + (len(s) // max(1, int(width)) + 1) * len(wrap), "wordwrap")
    return filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _bounded_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if int(linecount) > MAX_SEQUENCE:
        raise _Exceeded("batch", f"batch of {linecount} is above the limit of {MAX_SEQUENCE}")
    return filters.do_batch(value, linecount, fill_with)


def _bounded_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if int(slices) > MAX_SEQUENCE:
        raise _Exceeded("slice", f"slice into {slices} is above the limit of {MAX_SEQUENCE}")
    return filters.sync_do_slice(value, slices, fill_with)


@pass_eval_context
def _bounded_tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    if indent is not None:
        _check_width(indent, "tojson indent")
        if int(indent) > 16:
            raise _Exceeded("width", "tojson indent above 16 is not allowed")
    return filters.do_tojson(eval_ctx, value, indent)


@pass_environment
def _bounded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, int | float):
        raise _Exceeded("sum", "sum only adds numbers in templates")
    return filters.sync_do_sum(environment, iterable, attribute, start)


def _weight(seq: Any) -> int:
    """What a list or string costs to repeat: characters of its strings, 1 per scalar;
    containers inside a repeated list are refused (they could be repeated again, shared)."""
    if isinstance(seq, str):
        return len(seq)
    total = 0
    for item in seq:
        if isinstance(item, str):
            total += len(item) or 1
        elif isinstance(item, list | tuple | dict | set):
            raise _Exceeded("sequence_size", "a list of lists cannot be repeated in templates")
        else:
            total += 1
    return total


def _sized(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parts of a ``~`` concatenation, refused when together they are too long."""
    _check_size(sum(len(x) for x in items if isinstance(x, str)), "concatenation")
    return items


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with ``~`` concatenations measured before they are joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.sized((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")

    # Output inside a loop or into a buffer (macro, call and set blocks) is measured as it is
    # produced: there, a little source can repeat a large value many times.  Top-level output
    # outside loops is bounded by the source and measured by ``_run``.
    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if _repeating(frame):
            self.write("environment.produced(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        if _repeating(frame):
            self.write(")")


def _repeating(frame: Frame | None) -> bool:
    if frame is not None and frame.buffer is not None:
        return True
    while frame is not None:
        if frame.loop_frame:
            return True
        frame = frame.parent
    return False


_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A trackable link of the HTML template: its stable index, its ``href`` as written
    (entities decoded; may contain template expressions) and its visible text."""

    index: int
    url: str
    text: str


# ---------------------------------------------------------------- the sandbox


class _Undefined(ChainableUndefined):
    """Missing data renders as "" and chains (``a.b.c``); but a value the sandbox refused
    raises when printed instead of silently printing nothing."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return ""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: keys before attributes on dicts (a field called
    ``items`` is the field, and it skips a costly AttributeError per lookup), size
    limits on ``*``, ``**``, ``%``, widths and calls, and a CPU-budget step per call."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BoundedCodeGenerator
    sized = staticmethod(_sized)
    produced = staticmethod(_produced)

    @staticmethod
    def concat(parts: Any) -> str:  # type: ignore[override]
        """Joins every buffered block (macros, ``{% set %}`` blocks, call blocks): measured
        first, so a macro cannot assemble gigabytes from shared references."""
        parts = list(parts)
        _check_size(sum(len(p) for p in parts), "a block's output")
        return "".join(parts)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_brace_format(value.__self__)
        return wrapped

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        for arg in args:
            _check_string(arg, "an argument")
        name = getattr(__obj, "__name__", "")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            if name in _STR_WIDTH_METHODS and args:
                _check_width(args[0], name)
                if name == "expandtabs":
                    _check_size(len(owner) + owner.count("\t") * int(args[0]), "expandtabs")
            elif name == "join" and args:
                items = list(args[0])
                args = (items, *args[1:])
                _check_size(len(items) * len(owner) + sum(len(x) for x in items if isinstance(x, str)),
                            "join")
            elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
                if _replaced_size(owner, args[0], args[1], count) > _MAX_STRING:
                    raise _Exceeded("string_size", f"replace would build more than {_MAX_STRING} characters")
            elif name in ("format", "format_map"):
                _check_brace_format(owner)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_string(result, "a call's result")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                if attribute not in _DICT_METHODS:
                    return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                limit = _MAX_STRING if isinstance(left, str) else MAX_SEQUENCE
                if len(left) + len(right) > limit:
                    raise _Exceeded("sequence_size", f"result longer than {limit} is not allowed")
            return operator.add(left, right)
        if operator_ == "%":
            if isinstance(left, str):
                _check_percent(left)
            return operator.mod(left, right)
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and max(len(seq), _weight(seq)) * times > MAX_SEQUENCE
                ):
                    raise SecurityError(f"result longer than {MAX_SEQUENCE} is not allowed")
            return operator.mul(left, right)
        if isinstance(left, int) and isinstance(right, int) and abs(right) > MAX_SEQUENCE // 100:
            raise SecurityError(f"exponent above {MAX_SEQUENCE // 100} is not allowed")
        if (isinstance(left, int) and isinstance(right, int) and right > 0
                and abs(left).bit_length() * right > 10 * MAX_SEQUENCE):
            raise SecurityError("the power is too large")
        return operator.pow(left, right)


def _make_env(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=_Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.pop("lipsum", None)
    env.globals.pop("namespace", None)  # a loop could carry (and double) a value out with it
    env.globals["range"] = _safe_range
    env.filters["center"] = _bounded_center
    env.filters["indent"] = _bounded_indent
    env.filters["format"] = _bounded_format
    env.filters["replace"] = _bounded_replace
    env.filters["join"] = _bounded_join
    env.filters["wordwrap"] = _bounded_wordwrap
    env.filters["batch"] = _bounded_batch
    env.filters["slice"] = _bounded_slice
    env.filters["tojson"] = _bounded_tojson
    env.filters["sum"] = _bounded_sum
    env.filters["lm_bounded_iter"] = _bounded_iter
    return env


_HTML_ENV = _make_env(autoescape=True)
_TEXT_ENV = _make_env(autoescape=False)  # subject and text: no HTML escaping
_ALLOWED_NAMES = VARIABLES | frozenset(_HTML_ENV.globals)
_GLOBALS: dict[str, Any] = dict(_HTML_ENV.globals)


# ---------------------------------------------------------------- static checks


def _private(value: object) -> bool:
    return isinstance(value, str) and value.startswith("_")


def _check_ast(part: str, ast: nodes.Template) -> frozenset[str]:
    """Raise TemplateProblem for the first (lowest line) problem; return the top-level
    names the template reads."""
    problems: list[tuple[int, str]] = []
    undeclared = find_undeclared_variables(ast)
    # A name the template assigns somewhere (e.g. inside an {% if %}) is the author's own.
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in sorted(undeclared - _ALLOWED_NAMES - assigned):
        line = next(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
            1,
        )
        known = ", ".join(sorted(VARIABLES))
        problems.append((line, f"unknown variable {name!r} (known: {known})"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        key: object = None
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            key = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            key = arg.value if isinstance(arg, nodes.Const) else None
        if _private(key):
            problems.append(
                (node.lineno, f"access to {key!r} is not allowed (names starting with '_' are private)")
            )
            continue
        if (
            isinstance(node, nodes.Getattr | nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and node.node.name in _KNOWN_ATTRS
            and node.node.name in undeclared
            and isinstance(key, str)
            and key not in _KNOWN_ATTRS[node.node.name]
        ):
            name = node.node.name
            known = ", ".join(sorted(_KNOWN_ATTRS[name]))
            problems.append((node.lineno, f"{name} has no attribute {key!r} (known: {known})"))
    problems += _bound_problems(ast)
    if problems:
        line, message = min(problems)
        raise TemplateProblem(part, line, message)
    return frozenset(n.name for n in ast.find_all(nodes.Name) if n.ctx == "load")


_WIDTH_FILTERS = frozenset({"center", "indent"})


def _const_ints(args: list[nodes.Expr]) -> list[int]:
    out = []
    for arg in args:
        try:
            value = arg.as_const()
        except Exception:  # anything not constant (nodes.Impossible, or it raised)
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(value)
    return out


def _bound_problems(ast: nodes.Template) -> list[tuple[int, str]]:
    """The bounds a template visibly breaks: loop nesting, constant widths and ranges."""
    problems: list[tuple[int, str]] = []

    def depth(node: nodes.Node, level: int) -> None:
        for child in node.iter_child_nodes():
            inner = level + 1 if isinstance(child, nodes.For) else level
            if inner > MAX_LOOP_DEPTH and isinstance(child, nodes.For):
                problems.append((child.lineno, f"loops nest deeper than {MAX_LOOP_DEPTH} levels"))
                continue
            depth(child, inner)

    depth(ast, 0)
    for f in ast.find_all(nodes.Filter):
        if f.name in _WIDTH_FILTERS and any(v > MAX_WIDTH for v in _const_ints(f.args)):
            problems.append((f.lineno, f"{f.name} width above the limit of {MAX_WIDTH}"))
        if f.name == "format" and isinstance(f.node, nodes.Const) and isinstance(f.node.value, str):
            try:
                _check_percent(f.node.value)
            except _Exceeded as e:
                problems.append((f.lineno, str(e)))
    for c in ast.find_all(nodes.Call):
        if isinstance(c.node, nodes.Name) and c.node.name == "range":
            ints = _const_ints(c.args)
            if len(ints) == len(c.args) and ints:
                try:
                    _safe_range(*ints)
                except (_Exceeded, ValueError, TypeError) as e:
                    problems.append((c.lineno, str(e)))
        elif (isinstance(c.node, nodes.Getattr) and c.node.attr in _STR_WIDTH_METHODS
              and any(v > MAX_WIDTH for v in _const_ints(c.args))):
            problems.append((c.lineno, f"{c.node.attr} width above the limit of {MAX_WIDTH}"))
    for m in ast.find_all(nodes.Mod):
        if isinstance(m.left, nodes.Const) and isinstance(m.left.value, str):
            try:
                _check_percent(m.left.value)
            except _Exceeded as e:
                problems.append((m.lineno, str(e)))
    return problems


def _guard_loops(ast: nodes.Template) -> nodes.Template:
    """Make every ``{% for %}`` iterate through the budget check (in place)."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "lm_bounded_iter", [], [], None, None, lineno=loop.lineno)
    return ast


def _compile(part: str, source: str, env: _Sandbox, note: str = "") -> tuple[Template, frozenset[str]]:
    try:
        ast = env.parse(source)
        names = _check_ast(part, ast)
        return env.from_string(_guard_loops(ast)), names
    except TemplateSyntaxError as e:
        raise TemplateProblem(part, e.lineno, note + (e.message or str(e))) from None
    except TemplateProblem as e:
        if note:
            raise TemplateProblem(part, e.line, note + e.message) from None
        raise


# ---------------------------------------------------------------- link scanning (compile time)

_A_START = re.compile(r"<a(?=[\s>/])", re.IGNORECASE)
_JINJA_CLOSE = {"{{": "}}", "{%": "%}", "{#": "#}"}
_UNSUB_ONLY = re.compile(r"\{\{-?\s*unsubscribe_url\s*-?\}\}")
_NOT_TRACKED = ("mailto:", "#", "tel:", "sms:", "javascript:", "data:")
_TRACK_ATTR = "data-lunamail-track"
_TAGS = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Attr:
    name: str
    value: str | None
    start: int  # where the attribute (including leading whitespace) starts
    vstart: int  # value span, quotes excluded
    vend: int
    quoted: bool


def _skip_jinja(src: str, i: int) -> int:
    """If a Jinja tag/expression/comment starts at ``i``, the index after it, else ``i``."""
    opener = src[i : i + 2]
    closer = _JINJA_CLOSE.get(opener)
    if closer is None:
        return i
    j = src.find(closer, i + 2)
    return len(src) if j < 0 else j + 2


def _scan_tag(src: str, i: int) -> tuple[int, list[_Attr]]:
    """Attributes of the tag whose name ends at ``i``; returns (index after '>', attrs).
    Tolerates Jinja inside the tag and inside attribute values."""
    n = len(src)
    attrs: list[_Attr] = []
    while i < n:
        start = i
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            break
        if src[i] == ">":
            return i + 1, attrs
        if src.startswith("/>", i):
            return i + 2, attrs
        j = _skip_jinja(src, i)
        if j != i:
            i = j
            continue
        name_start = i
        while i < n and not src[i].isspace() and src[i] not in "=>" and not src.startswith("/>", i):
            j = _skip_jinja(src, i)
            i = j if j != i else i + 1
        name = src[name_start:i].lower()
        k = i
        while k < n and src[k].isspace():
            k += 1
        if k < n and src[k] == "=":
            k += 1
            while k < n and src[k].isspace():
                k += 1
            quote = src[k] if k < n and src[k] in "\"'" else ""
            vstart = k + 1 if quote else k
            k = vstart
            while k < n:
                j = _skip_jinja(src, k)
                if j != k:
                    k = j
                    continue
                c = src[k]
                if (quote and c == quote) or (not quote and (c.isspace() or c == ">")):
                    break
                k += 1
            attrs.append(_Attr(name, src[vstart:k], start, vstart, k, bool(quote)))
            i = k + 1 if quote else k
        elif name:
            attrs.append(_Attr(name, None, start, i, i, False))
        else:
            i += 1
    return n, attrs


@dataclass(frozen=True, slots=True)
class _ScannedLink:
    index: int | None  # None: never tracked
    href: _Attr | None
    track_attr: _Attr | None
    tag_end: int


def _scan_links(src: str) -> list[_ScannedLink]:
    found: list[_ScannedLink] = []
    index = 0
    pos = 0
    while True:
        m = _A_START.search(src, pos)
        if m is None:
            return found
        end, attrs = _scan_tag(src, m.end())
        pos = end
        by_name = {a.name: a for a in attrs}
        href = by_name.get("href")
        track = by_name.get(_TRACK_ATTR)
        trackable = False
        if href is not None and href.value is not None:
            value = href.value.strip()
            low = value.lower()
            templated = "{{" in value or "{%" in value
            trackable = not (
                not value
                or low.startswith(_NOT_TRACKED)
                or _UNSUB_ONLY.fullmatch(value)
                or (not templated and not low.startswith(("http://", "https://")))
                or (track is not None and (track.value or "").strip().lower() == "off")
            )
        found.append(_ScannedLink(index if trackable else None, href, track, end))
        if trackable:
            index += 1


def extract_links(html: str) -> list[Link]:
    """The trackable links of an HTML template in order, with the indexes that
    :meth:`CompiledCampaign.render` passes to a link rewriter (reports map link id -> URL)."""
    out: list[Link] = []
    for link in _scan_links(html):
        if link.index is None or link.href is None or link.href.value is None:
            continue
        close = html.lower().find("</a", link.tag_end)
        inner = html[link.tag_end : close] if close >= 0 else ""
        text = _WS.sub(" ", unescape(_TAGS.sub(" ", inner))).strip()
        out.append(Link(link.index, unescape(link.href.value.strip()), text))
    return out


_MARK_OPEN, _MARK_MID, _MARK_CLOSE = "\x01", "\x02", "\x03"


def _prepare_html(src: str) -> tuple[str, str]:
    """(plain, marked) variants of the HTML source: both without the internal
    ``data-lunamail-track`` attribute; the marked one with each trackable href wrapped
    in markers carrying its index."""
    plain: list[str] = []
    marked: list[str] = []
    pos_p = pos_m = 0
    for link in _scan_links(src):
        if link.track_attr is not None:
            a = link.track_attr
            stop = a.vend + (1 if a.quoted else 0)
            plain.append(src[pos_p : a.start])
            pos_p = stop
            marked.append(src[pos_m : a.start])
            pos_m = stop
        if link.index is not None and link.href is not None:
            h = link.href
            q = "" if h.quoted else '"'
            marked.append(src[pos_m : h.vstart])
            marked.append(f"{q}{_MARK_OPEN}{link.index}{_MARK_MID}{src[h.vstart : h.vend]}{_MARK_CLOSE}{q}")
            pos_m = h.vend
    plain.append(src[pos_p:])
    marked.append(src[pos_m:])
    return "".join(plain), "".join(marked)


# ---------------------------------------------------------------- compiled campaign


class CompiledCampaign:
    """Subject, HTML and text compiled once; :meth:`render` per recipient."""

    __slots__ = (
        "_html",
        "_marked",
        "_marked_source",
        "_static_urls",
        "_subject",
        "_text",
        "html_source",
        "links",
        "names",
        "subject_source",
        "text_generated",
        "text_source",
        "unsubscribe_link",
    )

    def __init__(self, subject: str, html: str, text: str | None) -> None:
        self.subject_source = subject
        self.html_source = html
        self.text_generated = text is None
        self.text_source = html_to_text(html) if text is None else text
        note = "(in the text generated from the HTML) " if text is None else ""
        self._subject, subject_names = _compile("subject", subject, _TEXT_ENV)
        self._html, html_names = _compile("html", html, _HTML_ENV)
        self._text, text_names = _compile("text", self.text_source, _TEXT_ENV, note)
        plain, self._marked_source = _prepare_html(html)
        if plain != html:
            self._html = _HTML_ENV.from_string(_guard_loops(_HTML_ENV.parse(plain)))
        self._marked: Template | None = None
        self.links: tuple[Link, ...] = tuple(extract_links(html))
        #: Whether some ``<a href>`` of the HTML uses ``unsubscribe_url`` (the visible link
        #: that every campaign must carry).
        self.unsubscribe_link = any(
            link.href is not None and "unsubscribe_url" in (link.href.value or "")
            for link in _scan_links(html)
        )
        self._static_urls: Mapping[int, str] = {
            link.index: link.url.strip()
            for link in self.links
            if "{{" not in link.url and "{%" not in link.url
        }
        #: Top-level names each part reads, e.g. to check that "unsubscribe_url" is used.
        self.names: Mapping[str, frozenset[str]] = {
            "subject": subject_names,
            "html": html_names,
            "text": text_names,
        }
        self._trial()

    def _trial(self) -> None:
        """Render once with sample data: a template that breaks a bound even then (a loop
        bomb, an output bomb) is refused now, when the draft is saved, not at send time."""
        try:
            self.render(_SAMPLE, unsubscribe_url="https://example.invalid/u",
                        view_in_browser_url="https://example.invalid/v",
                        campaign={"id": "sample", "name": "", "subject": self.subject_source},
                        link_rewriter=lambda url, index: url)
        except RenderBound as e:
            raise TemplateProblem(e.part, None, f"{e.message} (found by a trial render with sample data)") from None
        except RenderProblem:
            pass  # data-dependent; real subscribers may render fine

    def uses(self, part: str, name: str) -> bool:
        """Whether ``part`` reads the top-level variable ``name``."""
        return name in self.names[part]

    def render(
        self,
        subscriber: Mapping[str, Any],
        *,
        unsubscribe_url: str,
        view_in_browser_url: str,
        campaign: Mapping[str, Any],
        link_rewriter: LinkRewriter | None = None,
        cpu_seconds: float | None = None,
    ) -> Rendered:
        """Render one recipient, within ``cpu_seconds`` of CPU (default
        :data:`RENDER_CPU_SECONDS`) and :data:`MAX_OUTPUT` characters.  With ``link_rewriter``, each trackable ``href`` (absolute
        http(s), not the unsubscribe URL, not ``mailto:``/``#``, not marked
        ``data-lunamail-track="off"``) is replaced by ``link_rewriter(url, index)``.
        Raises RenderProblem when the sandbox refuses something, RenderBound (a
        RenderProblem) when a bound is broken."""
        # One plain dict for all three parts; a fresh Context per part, because a template's
        # top-level {% set %} writes into its Context and must not leak to the next recipient.
        parent = {
            **_GLOBALS,
            "subscriber": subscriber,
            "unsubscribe_url": unsubscribe_url,
            "view_in_browser_url": view_in_browser_url,
            "campaign": campaign,
        }
        part = "subject"
        budget = _BUDGET
        budget.seconds = RENDER_CPU_SECONDS if cpu_seconds is None else cpu_seconds
        budget.deadline = time.thread_time() + budget.seconds
        budget.produced = 0
        room = [MAX_OUTPUT]
        try:
            subject = _run(self._subject, _TEXT_ENV, parent, room)
            if "\n" in subject or "\r" in subject:  # a header must stay one line
                subject = " ".join(subject.split())
            part = "html"
            if link_rewriter is None:
                html = _run(self._html, _HTML_ENV, parent, room)
            else:
                marked = _run(self._marked_template(), _HTML_ENV, parent, room)
                html = _rewrite(marked, unsubscribe_url, link_rewriter, self._static_urls)
            part = "text"
            text = _run(self._text, _TEXT_ENV, parent, room)
        except _Exceeded as e:
            raise RenderBound(part, e.bound, str(e)) from e
        except (MemoryError, RecursionError) as e:
            raise RenderBound(part, "memory" if isinstance(e, MemoryError) else "recursion",
                              "the template needs too much memory" if isinstance(e, MemoryError)
                              else "the template recurses too deeply") from e
        except Exception as e:
            raise RenderProblem(part, str(e) or type(e).__name__) from e
        finally:
            budget.deadline = 0.0
        return Rendered(subject.strip(), html, text)

    def _marked_template(self) -> Template:
        # Built on first use: campaigns without tracking never pay for it.
        if self._marked is None:
            self._marked = _HTML_ENV.from_string(_guard_loops(_HTML_ENV.parse(self._marked_source)))
        return self._marked


def _run(template: Template, env: _Sandbox, parent: dict[str, Any], room: list[int]) -> str:
    """``Template.render`` without its per-call costs: no copy of the globals ChainMap into
    every context (a third of the render time for a typical email); the output counted
    against ``room[0]`` characters and the CPU budget checked per chunk."""
    ctx = Context(env, parent, None, template.blocks)
    chunks: list[str] = []
    gen = template.root_render_func(ctx)
    left = room[0]
    while True:  # in blocks: the size check and the CPU check stay off the per-chunk path
        start = len(chunks)
        chunks.extend(islice(gen, 32))
        if len(chunks) == start:
            break
        left -= sum(map(len, chunks[start:]))
        if left < 0:
            raise _Exceeded("output_size", f"the render is longer than {MAX_OUTPUT} characters")
        _tick()
    room[0] = left
    return "".join(chunks)


def _href_url(raw: str) -> str:
    """The URL an href value stands for (the rendered value is HTML-escaped)."""
    url = raw
    if "&" in url:
        url = url.replace("&amp;", "&")
        if "&" in url and ";" in url:
            url = unescape(raw)
    return url.strip()


def _rewrite(
    html: str, unsubscribe_url: str, rewriter: LinkRewriter, static: Mapping[int, str]
) -> str:
    """Replace each marked href by the rewriter's URL.  A split on the marker characters, not
    an HTML parse; for links whose href has no template code, ``static`` holds the URL
    decoded at compile time."""
    chunks = html.split(_MARK_OPEN)
    out = [chunks[0]]
    for chunk in chunks[1:]:
        head, found, tail = chunk.partition(_MARK_CLOSE)
        number, mid, raw = head.partition(_MARK_MID)
        if not (found and mid and number.isdigit()):
            out.append(chunk)  # a stray marker character (from data): drop it
            continue
        index = int(number)
        url = static.get(index)
        if url is None:
            url = _href_url(raw)
            if not url[:8].lower().startswith(("http://", "https://")):
                url = unsubscribe_url  # rendered to mailto:, #, a relative link...: keep
        if url == unsubscribe_url:
            out.append(raw)
        else:
            new = rewriter(url, index)
            if "&" in new or '"' in new or "<" in new or ">" in new or "'" in new:
                new = _escape_attr(new)
            out.append(new)
        out.append(tail)
    return "".join(out)


def compile_campaign(subject: str, html: str, text: str | None) -> CompiledCampaign:
    """Validate and compile a campaign's three parts (``text=None``: derive it from the
    HTML).  Raises TemplateProblem(part, line, message) for the first problem found."""
    return CompiledCampaign(subject, html, text)
