"""``modeltemplate`` command line: offline validation and SGP conversion.

    modeltemplate validate FILE...                   # YAML (multi-document) or JSON; - = stdin
    modeltemplate validate template.yaml model.yaml  # a Model checked against its template
    modeltemplate convert --to manifest sgp.json     # SGP JSON -> ModelTemplate YAML
    modeltemplate convert --to sgp template.yaml     # ModelTemplate YAML -> SGP JSON

``validate`` needs no cluster: it applies the rules of the CRD (via the same pydantic models)
and exits 1 when any document has an error. A ``Model`` document is checked against its CRD's
rules and, when its template (``spec.templateRef.name``) is among the files given, its creation
parameters against the template's schema (the operator's own checker), each problem naming the
field (``spec.creationParameters.tensor_parallel_size: must be of type int, got str``).
``convert --to manifest`` also accepts a JSON list of templates or an SGP list response (``{"items": [...]}``) and writes one YAML document each.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import KIND, MODEL_KIND
from .api.convert import manifest_to_sgp, sgp_to_manifest
from .api.models import ModelTemplate
from .api.validation import ManifestInvalid, parse_manifest, parse_model_manifest, validate_manifest
from .limits import MAX_DOCUMENT_DEPTH, text_too_deep
from .plan.instantiate import check_model

__all__ = ["main", "load_documents", "DuplicateKeyError"]


class DuplicateKeyError(yaml.YAMLError):
    """A mapping repeats a key (the API server refuses such documents)."""


class TooDeepError(yaml.YAMLError):
    """A document nested deeper than :data:`~.limits.MAX_DOCUMENT_DEPTH` (refused before
    anything recursive reads it: PyYAML's composer and JSON's decoder recurse)."""


class TooLargeError(yaml.YAMLError):
    """A document of more nodes than :data:`MAX_EXPANDED_NODES`, refused while it is read."""


class _ConstructTooDeep(TooDeepError):
    """Nested too deep through aliases: found once the document was read whole."""


class AliasBombError(yaml.YAMLError):
    """A document that aliases expand far beyond its size (a "billion laughs" document)."""


#: Nodes a document may expand to through its aliases. A large template (64 parameters, 128 env
#: variables) has about 2,000; kubectl refuses excessive aliasing, and so does this.
MAX_EXPANDED_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded, counted once per distinct node (cheap)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def _node_too_deep(root: yaml.Node, limit: int = MAX_DOCUMENT_DEPTH) -> bool:
    """Whether the composed node graph nests deeper than ``limit`` containers, aliases followed
    (an alias can nest a deep anchor inside another, or an anchor inside itself); iterative. A
    node is explored again only when reached deeper than before, so at most ``limit`` times."""
    deepest: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        if deepest.get(id(node), 0) >= depth:
            continue
        deepest[id(node)] = depth
        stack.extend((child, depth) for child in children)
    return False


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, alias bombs and documents nested deeper than
    :data:`~.limits.MAX_DOCUMENT_DEPTH` (before anything recursive reads them: PyYAML's
    composer and constructor recurse)."""

    _depth = 0
    _nodes = 0

    def compose_document(self) -> yaml.Node | None:
        self._nodes = 0
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._nodes += 1
        if self._nodes > MAX_EXPANDED_NODES:  # before aliases: PyYAML's nodes cost ~2 KB each
            mark = self.peek_event().start_mark
            raise TooLargeError(
                f"more than {MAX_EXPANDED_NODES} nodes (line {mark.line + 1}; the rest of the "
                f"file is not read)"
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DOCUMENT_DEPTH:
            mark = self.peek_event().start_mark
            raise TooDeepError(
                f"nested deeper than {MAX_DOCUMENT_DEPTH} levels (line {mark.line + 1}; the rest "
                f"of the file is not read)"
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        if _node_too_deep(node):  # through its aliases (the text itself was measured above)
            raise _ConstructTooDeep(
                f"nested deeper than {MAX_DOCUMENT_DEPTH} levels through its aliases (line "
                f"{node.start_mark.line + 1})"
            )
        size = _expanded_size(node, {})
        if size > MAX_EXPANDED_NODES:
            raise AliasBombError(
                f"line {node.start_mark.line + 1}: the document expands to {size} nodes through "
                f"its aliases (at most {MAX_EXPANDED_NODES})"
            )
        return super().construct_document(node)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise DuplicateKeyError(f"line {mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def load_documents(text: str) -> Iterator[Any]:
    """The non-empty documents of a YAML (or JSON) text; ``kind: List`` is expanded. Raises
    the first document's error (:func:`documents_or_errors` goes on past it)."""
    for item in documents_or_errors(text):
        if isinstance(item, yaml.YAMLError):
            raise item
        yield item


def documents_or_errors(text: str) -> Iterator[Any]:
    """Like :func:`load_documents`, with a document that fails yielded as its error: after an
    alias bomb, a duplicate key or aliases nested too deep the next documents are still loaded;
    a syntax error or text nested too deep is the file's last item."""
    loader = _StrictLoader(text)
    try:
        while True:
            try:
                if not loader.check_data():
                    return
                doc = loader.get_data()
            except (AliasBombError, DuplicateKeyError, _ConstructTooDeep) as exc:
                yield exc  # found once the document was read whole: the next one can follow
                continue
            except yaml.YAMLError as exc:
                # Mid-document (a syntax error, or text nested too deep, found before reading
                # further): reading on would cost as much as the nesting (PyYAML's scanner is
                # quadratic in it), so the rest of the file is not read.
                yield exc
                return
            if doc is None:
                continue
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "List"
                and isinstance(doc.get("items"), list)
            ):
                yield from doc["items"]
            else:
                yield doc
    finally:
        loader.dispose()


def _label(doc: Any, index: int) -> str:
    name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
    name = name if isinstance(name, str) else None
    return f"document {index + 1}" + (f" ({name})" if name else "")


def _model_problems(doc: Any, templates: dict[str, ModelTemplate | None]) -> tuple[list, str]:
    """Problems of a Model document (its schema, then its parameters against its template when
    that template is among the files), and a note for a valid one."""
    try:
        model = parse_model_manifest(doc)
    except ManifestInvalid as exc:
        return exc.errors, ""
    ref = model.spec.template_ref.name
    if ref not in templates:
        return [], f" (template {ref!r} not among the files: parameters not checked)"
    template = templates[ref]
    if template is None:
        return [f"spec.templateRef.name: template {ref!r} is not valid (see its errors)"], ""
    return [f"{e['field']}: {e['problem']}" for e in check_model(model, template)], ""


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    failed = 0
    checked = 0
    loaded: list[tuple[str, list[tuple[int, Any]]]] = []  # (file, [(position, document)])
    for name in args.files:
        try:
            text = _read(name)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{name}: {exc}", file=err)
            failed += 1
            continue
        docs: list[tuple[int, Any]] = []
        problems = 0
        for position, item in enumerate(documents_or_errors(text)):
            if isinstance(item, yaml.YAMLError):
                # A document that cannot be loaded is one line of its own; the file's other
                # documents, and the other files, are still checked.
                print(f"{name}: document {position + 1}: {item}", file=err)
                problems += 1
            else:
                docs.append((position, item))
        failed += problems
        checked += problems
        if not docs:
            if not problems:
                print(f"{name}: no documents", file=err)
                failed += 1
            continue
        loaded.append((name, docs))
    # Templates first, by name: the Models of any file are checked against them.
    templates: dict[str, ModelTemplate | None] = {}
    for _, docs in loaded:
        for _, doc in docs:
            if isinstance(doc, dict) and doc.get("kind") in (KIND, None):
                tname = (doc.get("metadata") or {}).get("name")
                if isinstance(tname, str):
                    try:
                        templates[tname] = parse_manifest(doc)
                    except ManifestInvalid:
                        templates[tname] = None
    for name, docs in loaded:
        for i, doc in docs:
            checked += 1
            label = _label(doc, i)
            kind = doc.get("kind") if isinstance(doc, dict) else None
            note = ""
            if kind == MODEL_KIND:
                errors, note = _model_problems(doc, templates)
            elif isinstance(doc, dict) and kind not in (KIND, None) and args.skip_other_kinds:
                continue
            else:
                errors = validate_manifest(doc)
            if errors:
                failed += 1
                for e in errors:
                    print(f"{name}: {label}: {e}", file=out)
            elif not args.quiet:
                print(f"{name}: {label}: valid{note}", file=out)
    if not args.quiet:
        print(f"{checked} document(s) checked, {failed} with errors", file=err)
    return 1 if failed else 0


def _load_sgp(text: str) -> list[dict[str, Any]]:
    if text.lstrip().startswith(("{", "[")):
        if text_too_deep(text):
            raise TooDeepError(f"nested deeper than {MAX_DOCUMENT_DEPTH} levels")
        data = json.loads(text)
    else:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - safe loader subclass
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return data["items"]
    if isinstance(data, list):
        return data
    return [data]


def cmd_convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    text = _read(args.file)
    status = 0
    if args.to == "manifest":
        try:
            templates = _load_sgp(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            print(f"{args.file}: {exc}", file=err)
            return 1
        docs = []
        for i, sgp in enumerate(templates):
            try:
                manifest = sgp_to_manifest(sgp, namespace=args.namespace)
            except ValueError as exc:
                print(f"{args.file}: item {i + 1}: {exc}", file=err)
                return 1
            for e in validate_manifest(manifest):
                print(f"{args.file}: item {i + 1}: warning: {e}", file=err)
                status = 1 if args.strict else status
            docs.append(manifest)
        out.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=len(docs) > 1))
        return status
    try:
        docs = list(load_documents(text))
    except yaml.YAMLError as exc:
        print(f"{args.file}: {exc}", file=err)
        return 1
    results = []
    for i, doc in enumerate(docs):
        for e in validate_manifest(doc):
            print(f"{args.file}: {_label(doc, i)}: warning: {e}", file=err)
            status = 1 if args.strict else status
        try:
            sgp, warnings = manifest_to_sgp(doc, keep_extensions=args.keep_extensions)
        except ValueError as exc:
            print(f"{args.file}: {_label(doc, i)}: {exc}", file=err)
            return 1
        for w in warnings:
            print(f"{args.file}: {_label(doc, i)}: warning: {w}", file=err)
        results.append(sgp)
    payload: Any = results[0] if len(results) == 1 else results
    out.write(json.dumps(payload, indent=2) + "\n")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeltemplate", description="ModelTemplate tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate ModelTemplate and Model manifests offline")
    v.add_argument("files", nargs="+", metavar="FILE", help="YAML/JSON files (- for stdin)")
    v.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    v.add_argument(
        "--skip-other-kinds",
        action="store_true",
        help="ignore documents of other kinds instead of reporting them",
    )
    c = sub.add_parser("convert", help="convert SGP JSON <-> ModelTemplate manifest")
    c.add_argument("--to", choices=("manifest", "sgp"), required=True)
    c.add_argument("file", metavar="FILE", help="input file (- for stdin)")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("-n", "--namespace", help="metadata.namespace of generated manifests")
    c.add_argument(
        "--keep-extensions",
        action="store_true",
        help="keep secretEnv/imagePullSecrets (as secret_env/image_pull_secrets) in SGP output",
    )
    c.add_argument("--strict", action="store_true", help="exit 1 when the result is invalid")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        return cmd_validate(args, sys.stdout, sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            return cmd_convert(args, fh, sys.stderr)
    return cmd_convert(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
