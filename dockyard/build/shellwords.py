"""Docker's word processing for Dockerfile arguments: quotes, escapes and ``$VAR``.

The ``dockerfile`` package gives each instruction's words as written; Docker then
expands variables in ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
VOLUME, WORKDIR, ARG and ONBUILD-free flags (not in RUN/CMD/ENTRYPOINT, where the
shell does it).  The rules follow BuildKit's ``shell/lex.go``:

* ``'…'`` is literal; ``"…"`` expands ``$`` and lets the escape character escape
  only ``"``, ``$`` and itself; outside quotes the escape character makes the
  next character literal.
* ``$NAME`` and ``${NAME}``; ``${NAME:-word}`` / ``${NAME-word}`` (default when
  unset-or-empty / unset), ``${NAME:+word}`` / ``${NAME+word}`` (alternative),
  ``${NAME:?msg}`` / ``${NAME?msg}`` (error); an unset variable is empty.
"""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.errors import InvalidArgument

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str,
                 quotes: bool = True) -> None:
        self.text = text
        self.quotes = quotes
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def words(self, stop: str = "", split: bool = False) -> list[str]:
        """Process until ``stop`` (not consumed) or the end; split on unquoted blanks."""
        words: list[str] = []
        current: list[str] = []
        started = False
        while self.pos < len(self.text):
            char = self.peek()
            if stop and char == stop:
                break
            if split and char in " \t\n":
                self.take()
                if started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if char in "'\"" and not self.quotes:
                current.append(self.take())
            elif char == "'":
                self.take()
                current.append(self.single_quoted())
            elif char == '"':
                self.take()
                current.append(self.double_quoted())
            elif char == "$":
                self.take()
                current.append(self.dollar())
            elif char == self.escape:
                self.take()
                if not self.quotes and self.peek() not in ("$", self.escape):
                    current.append(char)
                else:
                    current.append(self.take())
            else:
                current.append(self.take())
        if started:
            words.append("".join(current))
        return words

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument(f"unexpected end of statement while looking for matching "
                                  f"single-quote in {self.text!r}")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument(f"unexpected end of statement while looking for "
                                      f"matching double-quote in {self.text!r}")
            char = self.take()
            if char == '"':
                return "".join(out)
            if char == "$":
                out.append(self.dollar())
            elif char == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.take())
            else:
                out.append(char)

    def dollar(self) -> str:
        char = self.peek()
        if char == "{":
            self.take()
            return self.braced()
        name = self.name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def name(self) -> str:
        start = self.pos
        if self.peek().isdigit():  # $1 is a positional parameter: one digit only
            self.pos += 1
            return self.text[start:self.pos]
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def braced(self) -> str:
        name = self.name()
        if not name:
            raise InvalidArgument(f"bad substitution in {self.text!r}")
        char = self.take()
        if char == "}":
            return self.env.get(name, "")
        colon = char == ":"
        if colon:
            char = self.take()
        if char not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({char!r}) in substitution "
                                  f"in {self.text!r}")
        word = "".join(self.words(stop="}"))
        if self.take() != "}":
            raise InvalidArgument(f"missing '}}' in {self.text!r}")
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if char == "-":
            return value if is_set and value is not None else word
        if char == "+":
            return word if is_set else ""
        if not is_set:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables expanded, blanks kept."""
    return "".join(_Lexer(text, env, escape).words())


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Several words, split on unquoted blanks after expansion of each."""
    return _Lexer(text, env, escape).words(split=True)


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A heredoc body (unquoted delimiter): variables expanded, quotes kept as written."""
    return "".join(_Lexer(text, env, escape, quotes=False).words())
