"""The request graph a trace produces, and its drawings (Graphviz dot, Mermaid).

Nodes are what a run would do, in order: `text` (static text; consecutive pieces merged),
`arg` / `var` (text known only at run time: an argument, a variable), `gen`, `select`,
`role` (a role marker, when traced without a backend to render it), `fork`, `join`. Edges
point from a node to the next one in the same state; a fork has one edge per branch and a
join one edge from each branch's last node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = ("text", "arg", "var", "gen", "select", "role", "fork", "join")
_DOT_SHAPES = {"text": "box", "arg": "parallelogram", "var": "parallelogram", "gen": "ellipse",
               "select": "diamond", "role": "note", "fork": "trapezium", "join": "invtrapezium"}
_MERMAID_SHAPES = {"text": ('["', '"]'), "arg": ('[/"', '"/]'), "var": ('[/"', '"/]'),
                   "gen": ('(["', '"])'), "select": ('{"', '"}'), "role": ('>"', '"]'),
                   "fork": ('[["', '"]]'), "join": ('[["', '"]]')}

_MERMAID_ESCAPES = {c: f"#{ord(c)};" for c in '#"<>&'}  # Mermaid's entity codes


@dataclass(frozen=True, slots=True)
class TraceNode:
    id: int
    kind: str
    label: str  # short human-readable description
    text: str = ""  # the exact text of a `text` node
    data: dict[str, Any] = field(default_factory=dict)  # gen params, choices, fork size...


@dataclass(slots=True)
class TraceGraph:
    nodes: list[TraceNode] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, kind: str, label: str, after: Iterable[int | None], text: str = "",
            **data: Any) -> int:
        node = TraceNode(len(self.nodes), kind, label, text, data)
        self.nodes.append(node)
        self.edges.extend((p, node.id) for p in dict.fromkeys(after) if p is not None)
        return node.id

    def extend_text(self, node_id: int, text: str) -> None:
        node = self.nodes[node_id]
        merged = node.text + text
        self.nodes[node_id] = replace(node, text=merged, label=_short(merged))

    def kinds(self) -> list[str]:
        return [n.kind for n in self.nodes]

    def successors(self, node_id: int) -> list[int]:
        return [b for a, b in self.edges if a == node_id]

    def predecessors(self, node_id: int) -> list[int]:
        return [a for a, b in self.edges if b == node_id]

    def find(self, kind: str) -> list[TraceNode]:
        return [n for n in self.nodes if n.kind == kind]

    def static_prefix(self) -> str:
        """The text every run starts with: the first node's, if it is static text."""
        return self.nodes[0].text if self.nodes and self.nodes[0].kind == "text" else ""

    def to_dot(self) -> str:
        lines = ["digraph program {", '  node [fontname="Helvetica"];']
        for n in self.nodes:
            label = n.label.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'  n{n.id} [label="{n.kind}: {label}", shape={_DOT_SHAPES[n.kind]}];')
        lines += [f"  n{a} -> n{b};" for a, b in self.edges]
        return "\n".join(lines + ["}"]) + "\n"

    def to_mermaid(self) -> str:
        lines = ["flowchart TD"]
        for n in self.nodes:
            label = "".join(_MERMAID_ESCAPES.get(c, c) for c in n.label)
            left, right = _MERMAID_SHAPES[n.kind]
            lines.append(f"  n{n.id}{left}{n.kind}: {label}{right}")
        lines += [f"  n{a} --> n{b}" for a, b in self.edges]
        return "\n".join(lines) + "\n"


def _short(text: str, limit: int = 48) -> str:
    """One line, at most `limit` characters: newlines shown as ⏎."""
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
