"""Go's ``text/template``, as Docker's ``--format`` uses it, over JSON-shaped data.

The data is what ``json.loads`` gives (dicts, lists, str, int, float, bool,
None); a callable in a dict is a method (``{{.Label "k"}}``).  It runs as
Docker runs templates: Go's builtin functions plus Docker's ``json``, ``split``,
``join``, ``title``, ``lower``, ``upper``, ``pad`` and ``truncate``; a missing map
key is an error (Go's ``missingkey=error``, Docker's inspect fallback), and
errors read as Go's::

    template: :1: unclosed action
    template: :1:8: executing "" at <.State.Foo>: map has no entry for key "Foo"

Three stages, each a plain function of the one before: ``_lex`` (text → tokens),
``_Parser`` (tokens → nodes) and ``_Exec`` (nodes + data → text).  Not supported:
``define``/``template``/``block`` and complex numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn


class TemplateError(Exception):
    """A template that does not parse or does not execute, worded as Go words it."""


class _NoValue:
    """A missing map key under ``missingkey=default``: prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()

# ---------------------------------------------------------------------------- lexer

_SPACE = " \t\r\n"
_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "nil", "range",
             "template", "with"}


@dataclass(frozen=True)
class _Token:
    kind: str   # text left right space field dot var ident kw bool number char string
    #             rawstring lparen rparen pipe declare assign punct eof error
    value: str
    pos: int
    line: int

    def __str__(self) -> str:
        """How Go's parser names a token in "unexpected X in Y"."""
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.value
        if self.kind == "kw":
            return f"<{self.value}>"
        if len(self.value) > 10:
            return _go_quote(self.value[:10]) + "..."
        return _go_quote(self.value)


def _is_space(ch: str) -> bool:
    return ch != "" and ch in _SPACE


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


def _char_name(ch: str) -> str:
    """Go's ``%#U``: ``U+002D '-'``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[_Token] = []
        self.paren_depth = 0

    def run(self) -> list[_Token]:
        try:
            self._text()
        except _LexError as exc:
            self.tokens.append(_Token("error", str(exc), self.pos, self._line(self.pos)))
        return self.tokens

    def _line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def _emit(self, kind: str, start: int, end: int | None = None) -> None:
        end = self.pos if end is None else end
        self.tokens.append(_Token(kind, self.text[start:end], start, self._line(start)))

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def _text(self) -> None:
        text = self.text
        while True:
            start = self.pos
            found = text.find("{{", start)
            if found < 0:
                if start < len(text):
                    self._emit("text", start, len(text))
                self.pos = len(text)
                self._emit("eof", self.pos)
                return
            trim = text[found + 2:found + 3] == "-" and _is_space(text[found + 3:found + 4])
            chunk_end = found
            if trim:
                while chunk_end > start and text[chunk_end - 1] in _SPACE:
                    chunk_end -= 1
            if chunk_end > start:
                self._emit("text", start, chunk_end)
            self.pos = found + 2 + (2 if trim else 0)
            if text.startswith("/*", self.pos):
                self._comment()
            else:
                self._emit("left", found, found + 2)
                self.paren_depth = 0
                self._action()

    def _at_right(self) -> tuple[bool, bool]:
        """At ``}}``, and whether a `` -`` trim marker precedes it."""
        rest = self.text[self.pos:]
        if len(rest) >= 2 and _is_space(rest[0]) and rest[1] == "-" and \
                rest[2:].startswith("}}"):
            return True, True
        return rest.startswith("}}"), False

    def _skip_right(self, trim: bool) -> None:
        if trim:
            self.pos += 2
        start = self.pos
        self.pos += 2
        self._emit("right", start)
        if trim:
            self._skip_spaces()

    def _skip_spaces(self) -> None:
        while _is_space(self._peek()):
            self.pos += 1

    def _comment(self) -> None:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            raise _LexError("unclosed comment")
        self.pos = end + 2
        at_right, trim = self._at_right()
        if not at_right:
            raise _LexError("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += 2
        if trim:
            self._skip_spaces()

    def _action(self) -> None:
        while True:
            at_right, trim = self._at_right()
            if at_right:
                if self.paren_depth:
                    raise _LexError("unclosed left paren")
                self._skip_right(trim)
                return
            start = self.pos
            ch = self._peek()
            nxt = self._peek(1)
            if not ch:
                raise _LexError("unclosed action")
            if _is_space(ch):
                # stop before a " -}}": that space belongs to the trim marker
                while _is_space(self._peek()) and not self._at_right()[1]:
                    self.pos += 1
                if self.pos > start:
                    self._emit("space", start)
                continue
            self.pos += 1
            if ch == "=":
                self._emit("assign", start)
            elif ch == ":":
                if self._peek() != "=":
                    raise _LexError("expected :=")
                self.pos += 1
                self._emit("declare", start)
            elif ch == "|":
                self._emit("pipe", start)
            elif ch == '"':
                self._quoted('"', "unterminated quoted string", "string")
            elif ch == "`":
                end = self.text.find("`", self.pos)
                if end < 0:
                    raise _LexError("unterminated raw quoted string")
                self.pos = end + 1
                self._emit("rawstring", start)
            elif ch == "'":
                self._quoted("'", "unterminated character constant", "char")
            elif ch == "$":
                self._field_or_variable("var", start)
            elif ch == "." and not ("0" <= nxt <= "9"):
                self._field_or_variable("field", start)
            elif ch in "+-." or "0" <= ch <= "9":
                self._number(start)
            elif _is_alnum(ch):
                self._identifier(start)
            elif ch == "(":
                self._emit("lparen", start)
                self.paren_depth += 1
            elif ch == ")":
                self._emit("rparen", start)
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    raise _LexError("unexpected right paren")
            elif ch.isascii() and ch.isprintable():
                self._emit("punct", start)
            else:
                raise _LexError(f"unrecognized character in action: {_char_name(ch)}")

    def _quoted(self, quote: str, error: str, kind: str) -> None:
        start = self.pos - 1
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\":
                escaped = self._peek()
                if escaped and escaped != "\n":
                    self.pos += 1
                    continue
                raise _LexError(error)
            if not ch or ch == "\n":
                raise _LexError(error)
            if ch == quote:
                break
        self._emit(kind, start)

    def _at_terminator(self) -> bool:
        ch = self._peek()
        return not ch or ch in _SPACE + ".,|:()" or self.text.startswith("}}", self.pos)

    def _field_or_variable(self, kind: str, start: int) -> None:
        if self._at_terminator():
            self._emit("var" if kind == "var" else "dot", start)
            return
        while self._peek() and _is_alnum(self._peek()):
            self.pos += 1
        if not self._at_terminator():
            raise _LexError(f"bad character {_char_name(self._peek())}")
        self._emit(kind, start)

    def _identifier(self, start: int) -> None:
        while self._peek() and _is_alnum(self._peek()):
            self.pos += 1
        if not self._at_terminator():
            raise _LexError(f"bad character {_char_name(self._peek())}")
        word = self.text[start:self.pos]
        kind = "kw" if word in _KEYWORDS else "bool" if word in ("true", "false") else "ident"
        self._emit(kind, start)

    def _number(self, start: int) -> None:
        self.pos = start
        if self._peek() in ("+", "-"):
            self.pos += 1
        prefix = self.text[self.pos:self.pos + 2].lower()
        digits, exponent = "0123456789_", "eE"
        if prefix in ("0x", "0o", "0b"):
            digits, exponent = {"0x": ("0123456789abcdefABCDEF_", "pP"), "0o": ("01234567_", ""),
                                "0b": ("01_", "")}[prefix]
            self.pos += 2
        self._run(digits)
        if self._peek() == ".":
            self.pos += 1
            self._run(digits)
        if self._peek() and self._peek() in exponent:
            self.pos += 1
            if self._peek() in ("+", "-"):
                self.pos += 1
            self._run("0123456789_")
        if self._peek() and _is_alnum(self._peek()):
            self.pos += 1
            raise _LexError(f"bad number syntax: {_go_quote(self.text[start:self.pos])}")
        self._emit("number", start)

    def _run(self, accepted: str) -> None:
        while self._peek() and self._peek() in accepted:
            self.pos += 1


class _LexError(Exception):
    pass


# ---------------------------------------------------------------------------- nodes


@dataclass
class _Node:
    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Field(_Node):
    idents: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class _Variable(_Node):
    idents: tuple[str, ...]   # idents[0] is "$" or "$name"

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class _Identifier(_Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class _Dot(_Node):
    def __str__(self) -> str:
        return "."


@dataclass
class _Nil(_Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class _Literal(_Node):
    """A bool, number, string or character constant: its source text and value."""

    text: str
    value: Any

    def __str__(self) -> str:
        return self.text


@dataclass
class _Command(_Node):
    args: list[_Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass
class _Pipe(_Node):
    line: int
    decls: list[str] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[_Command] = field(default_factory=list)

    def __str__(self) -> str:
        text = ", ".join(self.decls) + (" = " if self.is_assign else " := ") \
            if self.decls else ""
        return text + " | ".join(str(c) for c in self.cmds)


@dataclass
class _Chain(_Node):
    """``(pipeline).Field.Field``: fields of something that is not a field or variable."""

    node: _Node
    fields: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@dataclass
class _Action(_Node):
    pipe: _Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class _Branch(_Node):
    """``if``, ``with`` or ``range``: a pipeline, a body, and an optional else body."""

    kind: str
    pipe: _Pipe
    body: list[_Node]
    orelse: list[_Node] | None

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


@dataclass
class _Jump(_Node):
    """``{{break}}`` or ``{{continue}}``."""

    kind: str

    def __str__(self) -> str:
        return "{{" + self.kind + "}}"


@dataclass
class _End(_Node):
    kind: str   # "end" or "else"

    def __str__(self) -> str:
        return "{{" + self.kind + "}}"


# ---------------------------------------------------------------------------- parser


class _ParseError(Exception):
    pass


class _Parser:
    """Go's text/template/parse, token for token where it shows in error messages."""

    def __init__(self, text: str, functions: Mapping[str, Any]) -> None:
        self.tokens = _Lexer(text).run()
        self.index = 0
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0

    def error(self, message: str, token: _Token | None = None) -> NoReturn:
        line = (token or self.tokens[min(max(self.index - 1, 0), len(self.tokens) - 1)]).line
        raise _ParseError(f"template: :{line}: {message}")

    # token access: spaces are tokens, as in Go, because they separate arguments
    def next(self) -> _Token:
        token = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.index += 1
        if token.kind == "error":
            self.error(token.value, token)
        return token

    def peek(self) -> _Token:
        return self.tokens[min(self.index, len(self.tokens) - 1)]

    def next_non_space(self) -> _Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> _Token:
        token = self.next_non_space()
        self.index -= 1
        return token

    def expect(self, kind: str, context: str) -> _Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    def unexpected(self, token: _Token, context: str) -> NoReturn:
        if token.kind == "error":
            self.error(token.value, token)
        self.error(f"unexpected {token} in {context}", token)

    # grammar
    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        while self.peek().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _End):
                self.error(f"unexpected {node}")
            nodes.append(node)
        return nodes

    def text_or_action(self) -> _Node:
        token = self.next_non_space()
        if token.kind == "text":
            return _Text(token.pos, token.value)
        if token.kind == "left":
            return self.action()
        self.unexpected(token, "input")

    def action(self) -> _Node:
        token = self.next_non_space()
        if token.kind == "kw":
            word = token.value
            if word in ("if", "range", "with"):
                return self.control(word, token)
            if word == "end":
                self.expect("right", "end")
                return _End(token.pos, "end")
            if word == "else":
                following = self.peek_non_space()   # "else if" and "else with" go on
                if not (following.kind == "kw" and following.value in ("if", "with")):
                    self.expect("right", "else")
                return _End(token.pos, "else")
            if word in ("break", "continue"):
                self.expect("right", word)
                if not self.range_depth:
                    self.error(f"{{{{{word}}}}} outside {{{{range}}}}", token)
                return _Jump(token.pos, word)
            if word in ("define", "template", "block"):
                self.error(f"{{{{{word}}}}} is not supported", token)
        self.index -= 1
        return _Action(token.pos, self.pipeline("command", "right"))

    def control(self, kind: str, token: _Token) -> _Branch:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        orelse: list[_Node] | None = None
        if end.kind == "else":
            following = self.peek()
            if kind in ("if", "with") and following.kind == "kw" and following.value == kind:
                self.next()
                orelse = [self.control(kind, following)]
            else:
                orelse, end = self.item_list()
                if end.kind != "end":
                    self.error(f"expected end; found {end}")
        del self.vars[mark:]
        return _Branch(token.pos, kind, pipe, body, orelse)

    def item_list(self) -> tuple[list[_Node], _End]:
        nodes: list[_Node] = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _End):
                return nodes, node
            nodes.append(node)
        self.error("unexpected EOF")

    def pipeline(self, context: str, end: str) -> _Pipe:
        first = self.peek_non_space()
        pipe = _Pipe(first.pos, first.line)
        while self.peek_non_space().kind == "var":
            saved = self.index
            variable = self.next_non_space()
            after = self.peek_non_space()
            if after.kind in ("assign", "declare"):
                self.next_non_space()
                pipe.is_assign = after.kind == "assign"
                pipe.decls.append(variable.value)
                self.vars.append(variable.value)
                break
            if after.kind == "punct" and after.value == ",":
                self.next_non_space()
                pipe.decls.append(variable.value)
                self.vars.append(variable.value)
                if context == "range" and len(pipe.decls) < 2 and \
                        self.peek_non_space().kind in ("var", "right", "rparen"):
                    continue
                if context == "range" and len(pipe.decls) < 2:
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.index = saved   # "$x" was an operand, not a declaration
            break
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.kind in ("bool", "char", "dot", "field", "ident", "number", "string",
                              "rawstring", "var", "lparen") or \
                    token.kind == "kw" and token.value == "nil":
                self.index -= 1
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.error(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], (_Literal, _Dot, _Nil)):
                self.error(f"non executable command in pipeline stage {stage}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.index -= 1
            elif token.kind != "pipe":
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.error("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().kind == "field":
            fields.append(self.next().value[1:])
        if isinstance(node, _Field):
            return _Field(pos, node.idents + tuple(fields))
        if isinstance(node, _Variable):
            return _Variable(pos, node.idents + tuple(fields))
        if isinstance(node, (_Literal, _Nil, _Dot)):
            self.error(f"unexpected . after term {_go_quote(str(node))}")
        return _Chain(pos, node, tuple(fields))

    def term(self) -> _Node | None:
        token = self.next_non_space()
        kind, value, pos = token.kind, token.value, token.pos
        if kind == "ident":
            if value not in self.functions:
                self.error(f"function {_go_quote(value)} not defined")
            return _Identifier(pos, value)
        if kind == "dot":
            return _Dot(pos)
        if kind == "kw" and value == "nil":
            return _Nil(pos)
        if kind == "var":
            if value not in self.vars:
                self.error(f"undefined variable {_go_quote(value)}")
            return _Variable(pos, (value,))
        if kind == "field":
            return _Field(pos, (value[1:],))
        if kind == "bool":
            return _Literal(pos, value, value == "true")
        if kind == "number":
            return _Literal(pos, value, self.number(value))
        if kind == "char":
            text = _unquote(value, "'")
            if text is None or len(text) != 1:
                self.error("malformed character constant: " + value)
            return _Literal(pos, value, ord(text))
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if kind in ("string", "rawstring"):
            text = value[1:-1] if kind == "rawstring" else _unquote(value, '"')
            if text is None:
                self.error("invalid syntax")
            return _Literal(pos, value, text)
        self.index -= 1
        return None

    def number(self, text: str) -> int | float:
        clean = text.replace("_", "")
        body = clean.lstrip("+-")
        sign = -1 if clean.startswith("-") else 1
        try:
            if re.fullmatch(r"0[0-7]+", body):
                return sign * int(body, 8)
            return sign * int(body, 0)
        except ValueError:
            pass
        try:
            if body[:2].lower() == "0x":
                return sign * float.fromhex(body)
            return float(clean)
        except ValueError:
            self.error(f"illegal number syntax: {_go_quote(text)}")


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\"}


def _unquote(literal: str, quote: str) -> str | None:
    """A Go interpreted string (or rune) literal's value; None when malformed."""
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1:i + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == quote:
            out.append(quote)
            i += 2
        elif esc in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + size]
            if len(digits) != size or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                return None
            out.append(chr(int(digits, 16)))
            i += 2 + size
        elif re.fullmatch(r"[0-7]{3}", body[i + 1:i + 4]):
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            return None
    return "".join(out)


# ---------------------------------------------------------------------------- values

def go_type(value: Any) -> str:
    """The Go type a JSON-decoded value has in ``map[string]interface {}``."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return "func"


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value) > 0
    if isinstance(value, (bool, int, float)):
        return bool(value)
    return True


def _sorted_items(value: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(((k, v) for k, v in value.items() if not callable(v)),
                  key=lambda item: str(item[0]))


def format_value(value: Any) -> str:
    """Go's ``fmt.Sprint`` of one value (``%v``): ``[a b]``, ``map[k:v]``, ``<nil>``."""
    if value is None:
        return "<nil>"
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{format_value(v)}" for k, v in _sorted_items(value)) \
            + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return f"{value}"


def _float_digits(value: float) -> tuple[str, int]:
    """The shortest digits that read back as ``value``, and the decimal point's place."""
    sign_digits_exp = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(d) for d in sign_digits_exp.digits)
    exponent = int(sign_digits_exp.exponent)
    stripped = digits.rstrip("0") or "0"
    exponent += len(digits) - len(stripped)
    digits = stripped.lstrip("0") or "0"
    return digits, len(digits) + exponent


def _go_float(value: float, verb: str = "g") -> str:
    """Go's ``%v`` of a float64: the shortest digits; %e from 1e6 up or below 1e-4."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _float_digits(value)
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}{verb.replace('g', 'e').replace('G', 'E')}" \
               f"{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return sign + "0." + "0" * -point + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def _go_quote(text: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable() and (ch.isascii() or not ascii_only):
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out) + '"'


def to_json(value: Any) -> str:
    """Docker's ``json`` function: compact, no HTML escaping, no trailing newline."""
    text = json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _plain(value: Any) -> Any:
    """Data without its methods (as Go's json.Marshal ignores them)."""
    if value is NO_VALUE:
        return None
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)   # Go writes 1e6 as 1000000, not 1000000.0
    return value


# ---------------------------------------------------------------------------- printf

@dataclass
class _Spec:
    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    prec: int | None = None


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs that make sense on JSON data."""
    out: list[str] = []
    arg_index = 0
    i = 0
    while i < len(fmt):
        percent = fmt.find("%", i)
        if percent < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:percent])
        i = percent + 1
        spec = _Spec()
        while i < len(fmt) and fmt[i] in "+-# 0":
            flag = fmt[i]
            spec.plus |= flag == "+"
            spec.minus |= flag == "-"
            spec.sharp |= flag == "#"
            spec.space |= flag == " "
            spec.zero |= flag == "0"
            i += 1
        if fmt[i:i + 1] == "*":
            i += 1
            if arg_index < len(args) and type(args[arg_index]) is int:
                spec.width = args[arg_index]
                arg_index += 1
                if spec.width < 0:
                    spec.minus, spec.width = True, -spec.width
            else:
                arg_index += 1
                out.append("%!(BADWIDTH)")
        else:
            digits = re.match(r"\d*", fmt[i:])
            if digits and digits.group():
                spec.width = int(digits.group())
                i += len(digits.group())
        if fmt[i:i + 1] == ".":
            i += 1
            if fmt[i:i + 1] == "*":
                i += 1
                if arg_index < len(args) and type(args[arg_index]) is int:
                    spec.prec = max(args[arg_index], 0)
                    arg_index += 1
                else:
                    arg_index += 1
                    out.append("%!(BADPREC)")
            else:
                digits = re.match(r"\d*", fmt[i:])
                spec.prec = int(digits.group() or 0) if digits else 0
                i += len(digits.group()) if digits else 0
        if i >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if arg_index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_arg(args[arg_index], verb, spec))
        arg_index += 1
    if arg_index < len(args):
        extra = ", ".join(f"{go_type(a)}={format_value(a)}" if a is not None else "<nil>"
                          for a in args[arg_index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, spec: _Spec, zero_ok: bool = False) -> str:
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and zero_ok:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        return sign + "0" * fill + text[len(sign):]
    return " " * fill + text


def _bad_verb(value: Any, verb: str) -> str:
    if value is None or value is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(value)}={format_value(value)})"


def _format_arg(value: Any, verb: str, spec: _Spec) -> str:
    if verb == "T":
        return _pad(go_type(value), spec)
    if value is None or value is NO_VALUE:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(value, verb)
    if isinstance(value, Mapping):
        items = " ".join(f"{_format_arg(k, verb, spec)}:{_format_arg(v, verb, spec)}"
                         for k, v in _sorted_items(value))
        return "map[" + items + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format_arg(v, verb, spec) for v in value) + "]"
    if isinstance(value, bool):
        if verb in ("v", "t"):
            return _pad("true" if value else "false", spec)
        return _bad_verb(value, verb)
    if isinstance(value, int):
        return _format_int(value, verb, spec)
    if isinstance(value, float):
        return _format_float(value, verb, spec)
    if isinstance(value, str):
        return _format_str(value, verb, spec)
    return _bad_verb(value, verb)


def _format_int(value: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(chr(value), spec)
    if verb == "q":
        return _pad("'" + _go_quote(chr(value))[1:-1].replace("'", "\\'") + "'", spec)
    if verb == "U":
        text = f"U+{value:04X}"
        return _pad(text + (f" '{chr(value)}'" if spec.sharp else ""), spec)
    bases = {"d": (10, ""), "v": (10, ""), "b": (2, "0b"), "o": (8, "0"), "O": (8, "0o"),
             "x": (16, "0x"), "X": (16, "0X")}
    if verb not in bases:
        return _bad_verb(value, verb)
    base, prefix = bases[verb]
    digits = {2: "b", 8: "o", 10: "d", 16: "x"}[base]
    text = format(abs(value), digits)
    if verb == "X":
        text = text.upper()
    if spec.prec is not None:
        text = "" if spec.prec == 0 and value == 0 else text.zfill(spec.prec)
    elif spec.zero and spec.width and not spec.minus:
        room = spec.width - (1 if value < 0 or spec.plus or spec.space else 0)
        text = text.zfill(room)
    if verb == "O" or spec.sharp and not (verb == "o" and text.startswith("0")):
        text = prefix + text
    sign = "-" if value < 0 else "+" if spec.plus else " " if spec.space else ""
    return _pad(sign + text, spec)


def _format_float(value: float, verb: str, spec: _Spec) -> str:
    if verb not in "vfFeEgG" or not verb:
        return _bad_verb(value, verb)
    if math.isnan(value) or math.isinf(value):
        text = _go_float(value)
        if text == "NaN" and spec.plus:
            text = "+NaN"
        elif text == "+Inf" and not spec.plus:
            text = " Inf" if spec.space else "+Inf"
        return _pad(text, spec)
    if verb in "fF":
        text = f"{value:.{6 if spec.prec is None else spec.prec}f}"
    elif verb in "eE":
        text = f"{value:.{6 if spec.prec is None else spec.prec}{verb}}"
    elif spec.prec is not None:
        text = f"{value:.{max(spec.prec, 1)}{'g' if verb == 'v' else verb}}"
    else:
        text = _go_float(value, "G" if verb == "G" else "g")
    if not text.startswith("-"):
        text = ("+" if spec.plus else " " if spec.space else "") + text
    return _pad(text, spec, zero_ok=True)


def _format_str(value: str, verb: str, spec: _Spec) -> str:
    if verb in ("s", "v"):
        return _pad(value if spec.prec is None else value[:spec.prec], spec, zero_ok=True)
    if verb == "q":
        if spec.sharp and "`" not in value and value.isprintable():
            return _pad("`" + value + "`", spec)
        return _pad(_go_quote(value, ascii_only=spec.plus), spec)
    if verb in ("x", "X"):
        data = value.encode()
        if spec.prec is not None:
            data = data[:spec.prec]
        parts = [format(b, "02x" if verb == "x" else "02X") for b in data]
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            return _pad(" ".join(prefix + p for p in parts), spec)
        return _pad(prefix + "".join(parts), spec)
    return _bad_verb(value, verb)


# ---------------------------------------------------------------------------- functions

_STRING, _INT, _STRINGS, _ANY = "string", "int", "[]string", "interface {}"


@dataclass(frozen=True)
class Function:
    """A template function: its Go parameter types (the last repeated when variadic)."""

    call: Callable[..., Any]
    params: tuple[str, ...]
    variadic: bool = False


class _FuncError(Exception):
    """A function's own error: Go reports it as ``error calling NAME: ...``."""


def _index(item: Any, *keys: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise _FuncError("index of untyped nil")
    for key in keys:
        if isinstance(item, Mapping):
            if not isinstance(key, str):
                raise _FuncError(f"value has type {go_type(key)}; should be string")
            item = item[key] if key in item else _zero(item)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _FuncError(f"cannot index slice/array with type {go_type(key)}")
            sequence = item.encode() if isinstance(item, str) else item
            if not 0 <= key < len(sequence):
                raise _FuncError(f"index out of range: {key}")
            item = sequence[key]
        elif item is None:
            raise _FuncError("index of nil pointer")
        else:
            raise _FuncError(f"can't index item of type {go_type(item)}")
    return item


def _zero(mapping: Mapping[str, Any]) -> Any:
    """The zero value of a map's elements: "" for a map of strings such as Labels."""
    if all(isinstance(v, str) for v in mapping.values()):
        return ""
    return None


def _slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {go_type(item)}")
    if len(indexes) > 2:
        raise _FuncError("too many slice indexes: 3" if isinstance(item, str) else
                         "3-index slice not supported")
    bounds = [int(i) for i in indexes]
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise _FuncError(f"index out of range: {end if end > len(item) else start}")
    return item[start:end]


def _length(item: Any) -> int:
    if item is None or item is NO_VALUE:
        raise _FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, tuple, Mapping)):
        return len(item)
    raise _FuncError(f"len of type {go_type(item)}")


def _kind(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    for other in others:
        k1, k2 = _kind(first), _kind(other)
        if k1 != k2:
            if k1 != "nil" and k2 != "nil":
                raise _FuncError("incompatible types for comparison")
            continue
        if k1 == "other":
            raise _FuncError(f"non-comparable type {format_value(first)}: {go_type(first)}")
        if k1 == "nil" or first == other:
            return True
    return False


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _less(first: Any, second: Any) -> bool:
    k1, k2 = _kind(first), _kind(second)
    if k1 in ("nil", "other", "bool") or k2 in ("nil", "other", "bool"):
        raise _FuncError("invalid type for comparison")
    if k1 != k2:
        raise _FuncError("incompatible types for comparison")
    return bool(first < second)


def _print(*args: Any) -> str:
    """Go's Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def _html(*args: Any) -> str:
    text = _print(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    for raw, escaped in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"),
                         ('"', "&#34;"), ("\0", "\ufffd")):
        text = text.replace(raw, escaped)
    return text


def _js(*args: Any) -> str:
    text = _print(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    out = []
    for ch in text:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    text = _print(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    return quote_plus(text, safe="")


def _is_separator(ch: str) -> bool:
    """Go's strings.Title word boundary."""
    if ch.isascii():
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or unicodedata.category(ch) == "Nd":
        return False
    return ch.isspace()


def _title(text: str) -> str:
    """Go's ``strings.Title``: the first letter of each word upper-cased, the rest kept."""
    out = []
    previous = " "
    for ch in text:
        out.append(ch.upper() if _is_separator(previous) else ch)
        previous = ch
    return "".join(out)


def _split(text: str, sep: str) -> list[str]:
    return list(text) if sep == "" else text.split(sep)


def _pad_with_space(source: str, prefix: int, suffix: int) -> str:
    return source and " " * prefix + source + " " * suffix


def _truncate(source: str, length: int) -> str:
    if length < 0:
        raise _FuncError(f"slice bounds out of range [:{length}]")
    return source if len(source) < length else source[:length]


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _FuncError(f"non-function of type {go_type(fn)}")
    return fn(*args)


FUNCTIONS: dict[str, Function] = {
    # Go's builtins (and/or are special: evaluated lazily in _Exec)
    "and": Function(lambda *a: a[-1], (_ANY, _ANY), True),
    "or": Function(lambda *a: a[-1], (_ANY, _ANY), True),
    "not": Function(lambda a: not truth(a), (_ANY,)),
    "len": Function(_length, (_ANY,)),
    "index": Function(_index, (_ANY, _ANY), True),
    "slice": Function(_slice, (_ANY, _ANY), True),
    "call": Function(_call, (_ANY, _ANY), True),
    "print": Function(_print, (_ANY,), True),
    "println": Function(lambda *a: " ".join(format_value(v) for v in a) + "\n", (_ANY,), True),
    "printf": Function(lambda f, *a: sprintf(f, a), (_STRING, _ANY), True),
    "html": Function(_html, (_ANY,), True),
    "js": Function(_js, (_ANY,), True),
    "urlquery": Function(_urlquery, (_ANY,), True),
    "eq": Function(_eq, (_ANY, _ANY), True),
    "ne": Function(_ne, (_ANY, _ANY)),
    "lt": Function(_less, (_ANY, _ANY)),
    "le": Function(lambda a, b: _less(a, b) or _eq(a, b), (_ANY, _ANY)),
    "gt": Function(lambda a, b: not (_less(a, b) or _eq(a, b)), (_ANY, _ANY)),
    "ge": Function(lambda a, b: not _less(a, b), (_ANY, _ANY)),
    # Docker's (github.com/docker/cli/templates)
    "json": Function(to_json, (_ANY,)),
    "split": Function(_split, (_STRING, _STRING)),
    "join": Function(lambda items, sep: sep.join(items), (_STRINGS, _STRING)),
    "title": Function(_title, (_STRING,)),
    "lower": Function(str.lower, (_STRING,)),
    "upper": Function(str.upper, (_STRING,)),
    "pad": Function(_pad_with_space, (_STRING, _INT, _INT)),
    "truncate": Function(_truncate, (_STRING, _INT)),
}

# Docker's HeaderFunctions: a table's header row runs the same template over the
# column names, with the functions that would mangle a name made to return it.
HEADER_FUNCTIONS: dict[str, Function] = {
    **FUNCTIONS,
    "json": Function(lambda v: v, (_STRING,)),
    "split": Function(lambda v, _s: v, (_STRING, _STRING)),
    "join": Function(lambda v, _s: v, (_STRING, _STRING)),
    "title": Function(lambda v: v, (_STRING,)),
    "lower": Function(lambda v: v, (_STRING,)),
    "upper": Function(lambda v: v, (_STRING,)),
    "truncate": Function(lambda v, _n: v, (_STRING, _INT)),
}


# ---------------------------------------------------------------------------- execution

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MISSING = object()   # "no final value": the first command of a pipeline


class _Exec:
    def __init__(self, text: str, functions: Mapping[str, Function], missing_error: bool,
                 out: list[str]) -> None:
        self.text = text
        self.functions = functions
        self.missing_error = missing_error
        self.out = out
        self.vars: list[tuple[str, Any]] = []
        self.node: _Node | None = None

    def error(self, message: str, node: _Node | None = None) -> NoReturn:
        node = node or self.node
        if node is None:
            raise TemplateError(f"template: : {message}")
        before = self.text[:node.pos]
        line = before.count("\n") + 1
        column = len(before[before.rfind("\n") + 1:].encode())
        context = str(node)
        if len(context) > 20:
            context = context[:20] + "..."
        raise TemplateError(f'template: :{line}:{column}: executing "" at <{context}>: '
                            f"{message}")

    def at(self, node: _Node) -> None:
        self.node = node

    # statements
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                self.at(node)
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decls:
                    self.print(node, value)
            elif isinstance(node, _Branch):
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if(dot, node)
            elif isinstance(node, _Jump):
                raise _Break() if node.kind == "break" else _Continue()

    def print(self, node: _Node, value: Any) -> None:
        self.at(node)
        if value is None or value is NO_VALUE:
            self.out.append("<no value>")
        elif callable(value):
            self.error(f"can't print {node} of type func")
        else:
            self.out.append(format_value(value))

    def walk_if(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if truth(value):
            self.walk(value if node.kind == "with" else dot, node.body)
        elif node.orelse is not None:
            self.walk(dot, node.orelse)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: _Branch) -> None:
        self.at(node)
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        decls = node.pipe.decls
        items: list[tuple[Any, Any]]
        if isinstance(value, Mapping):
            items = _sorted_items(value)
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decls) > 1:
                self.error(f"can't use {value} to iterate over more than one variable")
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            self.error(f"range can't iterate over {format_value(value)}")
        inner = len(self.vars)
        try:
            for key, element in items:
                self.bind_range_vars(node.pipe, key, element)
                with contextlib.suppress(_Continue):
                    self.walk(element, node.body)
                del self.vars[inner:]
        except _Break:
            pass
        if not items and node.orelse is not None:
            self.walk(dot, node.orelse)
        del self.vars[mark:]

    def bind_range_vars(self, pipe: _Pipe, key: Any, element: Any) -> None:
        decls = pipe.decls
        if not decls:
            return
        if pipe.is_assign:
            self.set_var(decls[0], key if len(decls) > 1 else element)
            if len(decls) > 1:
                self.set_var(decls[1], element)
            return
        # the pipeline pushed its variables: the last is the element, the first the key
        top = len(self.vars) - 1
        self.vars[top] = (self.vars[top][0], element)
        if len(decls) > 1:
            self.vars[top - 1] = (self.vars[top - 1][0], key)

    # expressions
    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def var(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.error(f"undefined variable: {name}")

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            self.at(first)
            return self.field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, _Chain):
            self.at(first)
            if isinstance(first.node, _Nil):
                self.error(f"indirection through explicit nil in {first}")
            receiver = self.arg(dot, first.node)
            return self.field_chain(dot, receiver, first, first.fields, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.function(dot, first, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, _Variable):
            self.at(first)
            value = self.var(first.idents[0])
            if len(first.idents) == 1:
                self.not_a_function(cmd.args, final)
                return value
            return self.field_chain(dot, value, first, first.idents[1:], cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Nil):
            self.error("nil is not a command")
        if isinstance(first, _Dot):
            return dot
        assert isinstance(first, _Literal)
        return first.value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.error(f"can't give argument to non-function {args[0]}")

    def field_chain(self, dot: Any, receiver: Any, node: _Node, idents: Sequence[str],
                    args: list[_Node], final: Any) -> Any:
        for name in idents[:-1]:
            receiver = self.field(dot, name, node, [], _MISSING, receiver)
        return self.field(dot, idents[-1], node, args, final, receiver)

    def field(self, dot: Any, name: str, node: _Node, args: list[_Node], final: Any,
              receiver: Any) -> Any:
        if receiver is NO_VALUE:
            if self.missing_error:
                self.error(f"nil data; no entry for key {_go_quote(name)}", node)
            return NO_VALUE
        if receiver is None:
            self.error(f"nil pointer evaluating interface {{}}.{name}", node)
        has_args = len(args) > 1 or final is not _MISSING
        if isinstance(receiver, Mapping):
            if name not in receiver:
                if self.missing_error:
                    self.error(f"map has no entry for key {_go_quote(name)}", node)
                return NO_VALUE
            value = receiver[name]
            if callable(value):
                values = [self.arg(dot, a) for a in args[1:]]
                if final is not _MISSING:
                    values.append(final)
                try:
                    return value(*values)
                except TypeError:
                    self.error(f"wrong number of args for {name}: got {len(values)}", node)
            if has_args:
                self.error(f"{name} is not a method but has arguments", node)
            return value
        self.error(f"can't evaluate field {name} in type {go_type(receiver)}", node)

    def function(self, dot: Any, node: _Identifier, args: list[_Node], final: Any) -> Any:
        self.at(node)
        name = node.name
        function = self.functions.get(name)
        if function is None:
            self.error(f"{_go_quote(name)} is not a defined function")
        params = function.params
        operands = args[1:]
        count = len(operands) + (final is not _MISSING)
        if function.variadic:
            if count < len(params) - 1:
                self.error(f"wrong number of args for {name}: want at least {len(params) - 1} "
                           f"got {len(operands)}")
        elif count != len(params):
            self.error(f"wrong number of args for {name}: want {len(params)} got {count}")

        def param(i: int) -> str:
            return params[min(i, len(params) - 1)]

        if name in ("and", "or") and function is FUNCTIONS[name]:
            value: Any = None
            for operand in operands:
                value = self.arg(dot, operand)
                if truth(value) == (name == "or"):
                    return value
            return final if final is not _MISSING else value
        values = [self.typed_arg(dot, param(i), a) for i, a in enumerate(operands)]
        if final is not _MISSING:
            values.append(self.check_type(final, param(len(values)), node))
        try:
            return function.call(*values)
        except _FuncError as exc:
            self.error(f"error calling {name}: {exc}", node)

    def arg(self, dot: Any, node: _Node) -> Any:
        self.at(node)
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, (_Field, _Chain, _Variable)):
            return self.command(dot, _Command(node.pos, [node]), _MISSING)
        if isinstance(node, _Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, _Identifier):
            return self.function(dot, node, [node], _MISSING)
        assert isinstance(node, _Literal)
        return node.value

    def typed_arg(self, dot: Any, kind: str, node: _Node) -> Any:
        if isinstance(node, _Literal) and kind != _ANY:
            value = node.value
            if kind == _STRING and not isinstance(value, str):
                self.error(f"expected string; found {node}", node)
            if kind == _INT and (type(value) is not int):
                self.error(f"expected integer; found {node}", node)
            if kind == _STRINGS:
                self.error(f"can't handle {node} for arg of type {kind}", node)
            return value
        if isinstance(node, _Nil) and kind in (_STRING, _INT):
            self.error(f"cannot assign nil to {kind}", node)
        return self.check_type(self.arg(dot, node), kind, node)

    def check_type(self, value: Any, kind: str, node: _Node) -> Any:
        if kind == _ANY:
            return value
        if value is None or value is NO_VALUE:
            if kind == _STRINGS:
                return []
            self.error(f"invalid value; expected {kind}", node)
        ok = (kind == _STRING and isinstance(value, str)
              or kind == _INT and type(value) is int
              or kind == _STRINGS and isinstance(value, (list, tuple))
              and all(isinstance(v, str) for v in value))
        if not ok:
            self.error(f"wrong type for value; expected {kind}; got {go_type(value)}", node)
        return value


# ---------------------------------------------------------------------------- API

class Template:
    """A parsed template; ``execute`` runs it over one value."""

    def __init__(self, text: str, functions: Mapping[str, Function] = FUNCTIONS) -> None:
        self.text = text
        try:
            self.nodes = _Parser(text, functions).parse()
        except _ParseError as exc:
            raise TemplateError(str(exc)) from None

    def execute(self, data: Any, *, missing_key_error: bool = True,
                functions: Mapping[str, Function] = FUNCTIONS,
                out: list[str] | None = None) -> str:
        """The text for ``data``.  Pass ``out`` to keep what was written before an error."""
        buffer = [] if out is None else out
        runner = _Exec(self.text, functions, missing_key_error, buffer)
        runner.vars.append(("$", data))
        runner.walk(data, self.nodes)
        return "".join(buffer)


def render(text: str, data: Any) -> str:
    """Parse and execute in one step."""
    return Template(text).execute(data)

