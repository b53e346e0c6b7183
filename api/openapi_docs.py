"""`GET /docs`: the OpenAPI document rendered on the server as one self-contained HTML page — no script, nothing
loaded from elsewhere, so it works offline and under a strict Content-Security-Policy. Operations are grouped by
tag: method and path, summary and description, parameters, request bodies and answers with their headers, schemas
as field tables (nested models link to the Schemas section) and examples as JSON."""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from typing import Any

Doc = dict[str, Any]
EVERYWHERE = "X-Request-ID"  # a response header of every answer: said once at the top, not under each answer

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header,main,nav{max-width:1100px;margin:0 auto;padding:0 1.5rem}
header{padding-top:1.5rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.3rem;margin-top:2.5rem}
article{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1.2rem 1rem;margin:1.2rem 0}
h3 code{font-size:1.05rem}h4{margin:1.2rem 0 .4rem}h5{margin:.8rem 0 .3rem;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .6rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f3f5f7}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:.6rem;overflow:auto;font-size:.82rem;
max-height:28rem}
.method{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;color:#fff;font-weight:600;
font-size:.85rem;padding:.05rem .4rem;margin-right:.5rem}
.get{background:#1f6feb}.post{background:#1a7f37}.put{background:#9a6700}.delete{background:#cf222e}
.auth{color:#57606a;font-size:.88rem}nav ul{columns:2;font-size:.9rem}.code{font-weight:600}
"""


# For the page's Content-Security-Policy: this exact inline style may apply, nothing else.
STYLE_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"


def render(doc: Doc) -> str:
    """The whole page for an OpenAPI 3.1 document (as served at /openapi.json)."""
    return _Page(doc).html()


class _Page:
    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.components: Doc = doc.get("components", {})

    def html(self) -> str:
        info = self.doc["info"]
        title = f"{info['title']} API {info['version']}"
        groups = self._by_tag()
        sections = "".join(self._tag_section(tag, ops) for tag, ops in groups.items())
        return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
                f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{STYLE}</style>"
                f"</head><body><header><h1>{escape(title)}</h1><p>{_text(info.get('description', ''))}</p>"
                f"<p>OpenAPI {escape(self.doc['openapi'])} document: <a href=\"/openapi.json\">/openapi.json</a>. "
                f"Every answer carries <code>{EVERYWHERE}</code>: {_text(self._everywhere())}</p></header>"
                f"<nav>{self._nav(groups)}</nav><main>{sections}{self._schemas()}</main></body></html>")

    def _everywhere(self) -> str:
        header: Doc = self.components.get("headers", {}).get(EVERYWHERE, {})
        return str(header.get("description", ""))

    def _by_tag(self) -> dict[str, list[tuple[str, str, Doc]]]:
        groups: dict[str, list[tuple[str, str, Doc]]] = {t["name"]: [] for t in self.doc.get("tags", [])}
        for path, item in self.doc["paths"].items():
            for method, operation in item.items():
                tag = (operation.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).append((path, method, operation))
        return {tag: ops for tag, ops in groups.items() if ops}

    def _nav(self, groups: dict[str, list[tuple[str, str, Doc]]]) -> str:
        links = "".join(f"<li><a href=\"#{escape(op['operationId'])}\">{method.upper()} {escape(path)}</a></li>"
                        for ops in groups.values() for path, method, op in ops)
        return f"<h2>Endpoints</h2><ul>{links}</ul>"

    def _tag_section(self, tag: str, ops: list[tuple[str, str, Doc]]) -> str:
        about = next((t.get("description", "") for t in self.doc.get("tags", []) if t["name"] == tag), "")
        body = "".join(self._operation(path, method, op) for path, method, op in ops)
        return f"<section id=\"tag-{escape(tag)}\"><h2>{escape(tag)}</h2><p>{_text(about)}</p>{body}</section>"

    def _operation(self, path: str, method: str, op: Doc) -> str:
        security = op.get("security", self.doc.get("security", []))
        auth = "API key (<code>Authorization: Bearer …</code>)" if security else "no API key needed"
        return (f"<article id=\"{escape(op['operationId'])}\"><h3><span class=\"method {method}\">{method.upper()}"
                f"</span><code>{escape(path)}</code></h3><p><strong>{_text(op.get('summary', ''))}</strong></p>"
                f"<p>{_text(op.get('description', ''))}</p><p class=\"auth\">Auth: {auth}</p>"
                f"{self._parameters(op)}{self._request(op)}{self._responses(op)}</article>")

    def _parameters(self, op: Doc) -> str:
        params = [self._resolve(p) for p in op.get("parameters", [])]
        if not params:
            return ""
        rows = "".join(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                       f"<td>{self._type(p.get('schema', {}))}</td><td>{'yes' if p.get('required') else ''}</td>"
                       f"<td>{_text(p.get('description', ''))}{_example_inline(p)}</td></tr>" for p in params)
        return ("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>required</th>"
                f"<th>description</th></tr>{rows}</table>")

    def _request(self, op: Doc) -> str:
        body = op.get("requestBody")
        if body is None:
            return ""
        media = "".join(self._media(kind, m) for kind, m in body.get("content", {}).items())
        return f"<h4>Request body</h4><p>{_text(body.get('description', ''))}</p>{media}"

    def _responses(self, op: Doc) -> str:
        parts = []
        for code, answer in op.get("responses", {}).items():
            headers = {name: h for name, h in answer.get("headers", {}).items() if name != EVERYWHERE}
            rows = "".join(f"<tr><td><code>{escape(name)}</code></td><td>{_text(self._resolve(h)['description'])}"
                           f"</td></tr>" for name, h in headers.items())
            table = f"<table><tr><th>header</th><th>meaning</th></tr>{rows}</table>" if rows else ""
            # Error bodies are all the same Problem: its fields are listed once, under Schemas.
            media = "".join(self._media(kind, m, fields=int(code) < 400)
                            for kind, m in answer.get("content", {}).items())
            parts.append(f"<h5><span class=\"code\">{escape(code)}</span> {_text(answer.get('description', ''))}"
                         f"</h5>{table}{media}")
        return "<h4>Responses</h4>" + "".join(parts)

    def _media(self, kind: str, media: Doc, *, fields: bool = True) -> str:
        schema = media.get("schema", {})
        about = self._resolve(schema).get("description", "") if fields else ""
        return (f"<p><code>{escape(kind)}</code>: {self._type(schema)}</p><p>{_text(about)}</p>"
                f"{self._fields(schema) if fields else ''}{_examples(media)}")

    def _fields(self, schema: Doc) -> str:
        """The fields of an object schema (following one $ref), as a table; nothing for other schemas."""
        target = self._resolve(schema)
        properties: Doc = target.get("properties", {})
        if not properties:
            return ""
        required = set(target.get("required", []))
        rows = "".join(f"<tr><td><code>{escape(name)}</code></td><td>{self._type(prop)}</td>"
                       f"<td>{'yes' if name in required else ''}</td><td>{_text(prop.get('description', ''))}"
                       f"{_notes(prop)}</td></tr>" for name, prop in properties.items())
        return ("<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
                f"{rows}</table>")

    def _type(self, schema: Doc) -> str:  # noqa: PLR0911 - one plain answer per JSON Schema shape
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return f"<a href=\"#schema-{escape(name)}\">{escape(name)}</a>"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return " | ".join(self._type(s) for s in schema[key])
        if "const" in schema:
            return f"<code>{escape(json.dumps(schema['const']))}</code>"
        if "enum" in schema:
            return "one of " + ", ".join(f"<code>{escape(json.dumps(v))}</code>" for v in schema["enum"])
        kind = schema.get("type", "any")
        if kind == "array":
            items = schema.get("prefixItems")
            if items:
                return "[" + ", ".join(self._type(s) for s in items) + "]"
            return f"array of {self._type(schema.get('items', {}))}"
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            return f"object of {self._type(schema['additionalProperties'])}"
        extra = schema.get("format") or schema.get("contentMediaType")
        return escape(" or ".join(kind) if isinstance(kind, list) else str(kind)) + (
            f" ({escape(extra)})" if extra else "")

    def _schemas(self) -> str:
        schemas: Doc = self.components.get("schemas", {})
        parts = [f"<article id=\"schema-{escape(name)}\"><h3>{escape(name)}</h3><p>"
                 f"{_text(schema.get('description', ''))}</p>{self._fields(schema) or self._type(schema)}</article>"
                 for name, schema in sorted(schemas.items())]
        return f"<section id=\"schemas\"><h2>Schemas</h2>{''.join(parts)}</section>"

    def _resolve(self, obj: Doc) -> Doc:
        ref = obj.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/components/"):
            return obj
        kind, name = ref.removeprefix("#/components/").split("/", 1)
        found: Doc = self.components.get(kind, {}).get(name, obj)
        return found


def _text(value: str) -> str:
    """Plain text with `code` spans, the only markup the descriptions use."""
    parts = escape(value).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def _notes(schema: Doc) -> str:
    notes = [f"{label} {escape(json.dumps(schema[key]))}" for key, label in (
        ("default", "default"), ("minLength", "min length"), ("maxLength", "max length"), ("minItems", "min items"),
        ("maxItems", "max items"), ("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"),
        ("exclusiveMaximum", "<"), ("pattern", "pattern")) if key in schema]
    return f" <em>({'; '.join(notes)})</em>" if notes else ""


def _example_inline(param: Doc) -> str:
    return f" Example: <code>{escape(str(param['example']))}</code>." if "example" in param else ""


def _examples(media: Doc) -> str:
    examples = {"Example": media["example"]} if "example" in media else {
        f"Example: {e.get('summary', name)}": e.get("value") for name, e in media.get("examples", {}).items()}
    return "".join(f"<p><em>{escape(title)}</em></p><pre>{escape(_pretty(value))}</pre>"
                   for title, value in examples.items())


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
