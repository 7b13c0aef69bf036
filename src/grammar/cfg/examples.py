"""Example grammars, each in both syntaxes: llama.cpp's own examples (grammars/*.gbnf:
arithmetic, list, JSON, chess), re-expressed, and the recursive grammars the benchmark
uses. `GBNF[name]` and `LARK[name]` describe the same language; the Lark texts are also
accepted by the `lark` package (Earley, `lexer="dynamic_complete"`), which tests use as an
independent parser.
"""

from __future__ import annotations

GBNF = {
    "arithmetic": r'''
root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*
''',
    "list": r'''
root ::= item+

# Excludes various line break characters
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"
''',
    "json": r'''
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
''',
    "chess": r'''
# Specifies chess moves as a list in algebraic notation, using PGN conventions
root    ::= "1. " move " " move "\n" ([1-9] [0-9]? ". " move " " move "\n")+
move    ::= (pawn | nonpawn | castle) [+#]?

# piece type, optional file/rank, optional capture, dest file & rank
nonpawn ::= [NBKQR] [a-h]? [1-8]? "x"? [a-h] [1-8]

# optional file & capture, dest file & rank, optional promotion
pawn    ::= ([a-h] "x")? [a-h] [1-8] ("=" [NBKQR])?

castle  ::= "O-O" "-O"?
''',
    "nested_lists": r'''
root  ::= list
list  ::= "[" ws (value ("," ws value)*)? "]" ws
value ::= list | [0-9]+ ws
ws    ::= [ \n]*
''',
    "calls": r'''
root ::= call
call ::= name "(" (arg ("," " "? arg)*)? ")"
arg  ::= call | [0-9]+ | name | name "=" arg
name ::= [a-z_] [a-z0-9_]*
''',
}

LARK = {
    "arithmetic": r'''
start: (expr "=" ws term "\n")+
expr: term (/[-+*\/]/ term)*
term: ident | num | "(" ws expr ")" ws
ident: /[a-z]/ /[a-z0-9_]/* ws
num: /[0-9]/+ ws
ws: /[ \t\n]/*
''',
    "list": r'''
start: item+
item: "- " /[^\r\n\x0b\x0c\x85\u2028\u2029]/+ "\n"
''',
    "json": r'''
start: object
value: object | array | string | number | ("true" | "false" | "null") ws
object: "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}" ws
array: "[" ws (value ("," ws value)*)? "]" ws
string: "\"" (/[^"\\\x7F\x00-\x1F]/ | "\\" (/["\\bfnrt]/ | "u" /[0-9a-fA-F]/ ~ 4))* "\"" ws
number: ("-"? (/[0-9]/ | /[1-9]/ /[0-9]/ ~ 0..15)) ("." /[0-9]/+)? (/[eE]/ /[-+]/? /[0-9]/ /[1-9]/ ~ 0..15)? ws
ws: (" " | "\n" /[ \t]/ ~ 0..20)?
''',
    "chess": r'''
start: "1. " move " " move "\n" (/[1-9]/ /[0-9]/? ". " move " " move "\n")+
move: (pawn | nonpawn | castle) /[+#]/?
nonpawn: /[NBKQR]/ /[a-h]/? /[1-8]/? "x"? /[a-h]/ /[1-8]/
pawn: (/[a-h]/ "x")? /[a-h]/ /[1-8]/ ("=" /[NBKQR]/)?
castle: "O-O" "-O"?
''',
    "nested_lists": r'''
start: list
list: "[" ws (value ("," ws value)*)? "]" ws
value: list | /[0-9]/+ ws
ws: /[ \n]/*
''',
    "calls": r'''
start: call
call: name "(" (arg ("," " "? arg)*)? ")"
arg: call | /[0-9]/+ | name | name "=" arg
name: /[a-z_]/ /[a-z0-9_]/*
''',
}

# (grammar, a text in its language, a text outside it)
SAMPLES = {
    "arithmetic": ("x = 1\n(a+b)*22 = c_1\n", "x = \n"),
    "list": ("- eggs\n- milk, 2 l\n", "- eggs\nmilk\n"),
    "json": ('{"a": [1, 2.5e3, "x\\n"], "b":\n {"c": null}}', '{"a": [1, 2,]}'),
    "chess": ("1. e4 e5\n2. Nf3 Nc6\n3. Bb5 a6\n", "1. e4 e5\n2. Zf3 Nc6\n"),
    "nested_lists": ("[[1, 2], [], [3, [4]]]", "[[1, 2], [3]"),
    "calls": ("f(a, g(b=1, c), h())", "f(a, g(b=))"),
}

# The benchmark's grammars (bench/grammar_cfg.py): Lark with `%ignore WS` and common imports.
BENCH = {
    "arithmetic": r"""
start: expr
expr: expr ("+" | "-") term | term
term: term ("*" | "/") factor | factor
factor: NUMBER | "(" expr ")" | "-" factor
%import common (NUMBER, WS_INLINE)
%ignore WS_INLINE
""",
    "sql": r"""
start: select
select: "SELECT" columns "FROM" table join* where? order? limit?
columns: "*" | column ("," column)*
column: name | func "(" (name | "*") ")" | column "AS" CNAME
name: CNAME ("." CNAME)?
func: "COUNT" | "SUM" | "AVG" | "MIN" | "MAX"
table: CNAME (CNAME)?
join: "JOIN" table "ON" condition
where: "WHERE" condition
condition: condition ("AND" | "OR") comparison | comparison
comparison: operand OP operand | "(" condition ")" | "NOT" comparison
operand: name | NUMBER | STRING
OP: "=" | "!=" | "<" | ">" | "<=" | ">="
STRING: /'[^'\n]*'/
order: "ORDER BY" name ("ASC" | "DESC")?
limit: "LIMIT" INT
%import common (CNAME, NUMBER, INT, WS)
%ignore WS
""",
    "nested_lists": r"""
start: value
value: list | INT | ESCAPED_STRING
list: "[" [value ("," value)*] "]"
%import common (INT, ESCAPED_STRING, WS)
%ignore WS
""",
    "calls": r"""
start: call
call: CNAME "(" [arg ("," arg)*] ")"
arg: call | NUMBER | ESCAPED_STRING | CNAME | CNAME "=" arg | "[" [arg ("," arg)*] "]"
%import common (CNAME, NUMBER, ESCAPED_STRING, WS)
%ignore WS
""",
}
