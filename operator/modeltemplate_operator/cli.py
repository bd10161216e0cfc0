"""``modeltemplate`` command line: offline validation and SGP conversion.

    modeltemplate validate FILE|DIR...               # YAML (multi-document) or JSON; - = stdin
    modeltemplate validate template.yaml model.yaml  # a Model checked against its template
    modeltemplate validate deploy/samples/           # every .yaml/.yml/.json below, recursively
    modeltemplate convert --to manifest sgp.json     # SGP JSON -> ModelTemplate YAML
    modeltemplate convert --to sgp template.yaml     # ModelTemplate (or Model) YAML -> SGP JSON

``validate`` needs no cluster: it applies the rules of the CRD of each kind of the project
(ModelTemplate, Model, ModelDeployment, FineTuningJob: the owner kinds of ``api/kinds.py``,
via the same pydantic models). A ``Model`` document is checked against its CRD's rules and,
when its template (``spec.templateRef.name``) is among the files given, its creation
parameters against the template's schema (the operator's own checker), each problem naming the
field (``spec.creationParameters.tensor_parallel_size: must be of type int, got str``).
``convert --to manifest`` also accepts a JSON list of templates or an SGP list response
(``{"items": [...]}``) and writes one YAML document each; an SGP model (``/v4/models``) names
its template by id, so it converts with ``--template-name``. ``convert --to sgp`` converts
ModelTemplates and Models; input of another shape is refused, and nothing is written.

Exit codes: 0 every document valid (converted); 1 a document is invalid, cannot be parsed
(YAML/JSON errors name FILE:LINE) or has the wrong shape for the conversion; 2 wrong usage; 3 a
file or directory cannot be read (missing, unreadable, a directory without YAML or JSON files)
or the output cannot be written — 3 wins over 1 when both happen.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import KIND, MODEL_KIND, __version__
from .api.convert import (
    MODEL_UNSUPPORTED_FIELDS,
    manifest_to_sgp,
    model_manifest_from_sgp,
    model_manifest_to_sgp,
    sgp_to_manifest,
)
from .api.kinds import OWNERS
from .api.models import ModelTemplate
from .api.validation import (
    ManifestInvalid,
    parse_manifest,
    parse_model_manifest,
    validate_kind,
)
from .limits import MAX_DOCUMENT_DEPTH, text_too_deep
from .plan.instantiate import check_model

__all__ = ["main", "load_documents", "DuplicateKeyError", "EXIT_INVALID", "EXIT_UNREADABLE"]

#: Exit codes (documented in --help and README.md).
EXIT_OK = 0
EXIT_INVALID = 1  # a document is invalid, unparsable or of the wrong shape
EXIT_USAGE = 2  # argparse's
EXIT_UNREADABLE = 3  # a file or directory cannot be read, or the output written
#: The kinds of the project, from the owner-kind registry.
KINDS = tuple(k.kind for k in OWNERS)
#: Files a directory argument contributes.
SUFFIXES = (".yaml", ".yml", ".json")
#: Progress on stderr (a terminal only) from this many documents, every this many seconds.
PROGRESS_FROM = 1000
PROGRESS_EVERY = 0.5


class _LocatedError(yaml.YAMLError):
    """A refusal of the loader, with the line it happened on (None: not known)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class DuplicateKeyError(_LocatedError):
    """A mapping repeats a key (the API server refuses such documents)."""


class TooDeepError(_LocatedError):
    """A document nested deeper than :data:`~.limits.MAX_DOCUMENT_DEPTH` (refused before
    anything recursive reads it: PyYAML's composer and JSON's decoder recurse)."""


class TooLargeError(_LocatedError):
    """A document of more nodes than :data:`MAX_EXPANDED_NODES`, refused while it is read."""


class _ConstructTooDeep(TooDeepError):
    """Nested too deep through aliases: found once the document was read whole."""


class AliasBombError(_LocatedError):
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
                f"file is not read)",
                mark.line + 1,
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DOCUMENT_DEPTH:
            mark = self.peek_event().start_mark
            raise TooDeepError(
                f"nested deeper than {MAX_DOCUMENT_DEPTH} levels (line {mark.line + 1}; the rest "
                f"of the file is not read)",
                mark.line + 1,
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
                f"{node.start_mark.line + 1})",
                node.start_mark.line + 1,
            )
        size = _expanded_size(node, {})
        if size > MAX_EXPANDED_NODES:
            raise AliasBombError(
                f"line {node.start_mark.line + 1}: the document expands to {size} nodes through "
                f"its aliases (at most {MAX_EXPANDED_NODES})",
                node.start_mark.line + 1,
            )
        return super().construct_document(node)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise DuplicateKeyError(f"line {mark.line + 1}: duplicate key {key!r}", mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def _inputs(names: list[str], err: TextIO) -> tuple[list[str], int]:
    """The files to read: each argument, a directory replaced by its .yaml/.yml/.json files
    (recursively, sorted, hidden ones skipped); and how many arguments gave nothing to read."""
    files: list[str] = []
    missing = 0
    for name in names:
        path = Path(name)
        if name == "-" or not path.is_dir():
            files.append(name)
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in SUFFIXES
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            print(f"{name}: a directory without {', '.join(SUFFIXES)} files", file=err)
            missing += 1
        files.extend(str(p) for p in found)
    return files, missing


def _where(name: str, exc: Exception, label: str = "") -> str:
    """``FILE:LINE[:COLUMN]: [document N: ]message`` of a YAML or JSON error (``FILE: ...``
    when the error has no line)."""
    label = f"{label}: " if label else ""
    if isinstance(exc, json.JSONDecodeError):
        return f"{name}:{exc.lineno}:{exc.colno}: {label}{exc.msg}"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return f"{name}:{mark.line + 1}:{mark.column + 1}: {label}{what}"
    if isinstance(exc, _LocatedError) and exc.line is not None:
        return f"{name}:{exc.line}: {label}{exc}"
    return f"{name}: {label}{exc}"


class _Progress:
    """``checked N/M documents`` rewritten in place on stderr, for long runs on a terminal."""

    def __init__(self, err: TextIO, total: int):
        isatty = getattr(err, "isatty", None)
        self.err = err
        self.total = total
        self.on = total >= PROGRESS_FROM and bool(isatty and isatty())
        self.last = time.monotonic()
        self.shown = False

    def step(self, done: int) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.shown = True
            self.err.write(f"\rchecked {done}/{self.total} documents")
            self.err.flush()

    def close(self) -> None:
        if self.shown:
            self.err.write("\r\033[K")
            self.err.flush()


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
    files, unreadable = _inputs(args.files, err)
    loaded: list[tuple[str, list[tuple[int, Any]]]] = []  # (file, [(position, document)])
    for name in files:
        try:
            text = _read(name)
        except OSError as exc:
            print(f"{name}: {exc.strerror or exc}", file=err)
            unreadable += 1
            continue
        except UnicodeDecodeError as exc:
            print(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})", file=err)
            failed += 1
            continue
        docs: list[tuple[int, Any]] = []
        problems = 0
        for position, item in enumerate(documents_or_errors(text)):
            if isinstance(item, yaml.YAMLError):
                # A document that cannot be loaded is one line of its own; the file's other
                # documents, and the other files, are still checked.
                print(_where(name, item, f"document {position + 1}"), file=err)
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
    progress = _Progress(err, sum(len(docs) for _, docs in loaded))
    done = 0
    for name, docs in loaded:
        for i, doc in docs:
            done += 1
            progress.step(done)
            label = _label(doc, i)
            kind = doc.get("kind") if isinstance(doc, dict) else None
            note = ""
            if kind == MODEL_KIND:
                errors, note = _model_problems(doc, templates)
            elif isinstance(doc, dict) and kind not in (*KINDS, None) and args.skip_other_kinds:
                continue
            else:
                errors = validate_kind(doc)
            checked += 1
            if errors:
                failed += 1
                for e in errors:
                    print(f"{name}: {label}: {e}", file=out)
            elif not args.quiet:
                print(f"{name}: {label}: valid{note}", file=out)
    progress.close()
    if not args.quiet:
        print(f"{checked} document(s) checked, {failed} with errors", file=err)
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_INVALID if failed else EXIT_OK


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


def _manifest_kind(item: dict[str, Any]) -> str | None:
    """The kind of a Kubernetes manifest (None: no apiVersion nor kind, so not a manifest)."""
    if "apiVersion" in item or "kind" in item:
        return str(item.get("kind"))
    return None


def _is_sgp_model(item: dict[str, Any]) -> bool:
    return "model_template_id" in item or "model_creation_parameters" in item


def _to_manifests(args: argparse.Namespace, text: str, out: TextIO, err: TextIO) -> int:
    try:
        items = _load_sgp(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        print(_where(args.file, exc), file=err)
        return EXIT_INVALID
    # The shape of every item first: nothing is written for input of the wrong shape.
    refused = []
    for i, sgp in enumerate(items):
        where = f"{args.file}: item {i + 1}"
        if not isinstance(sgp, dict):
            refused.append(
                f"{where}: an SGP object must be a JSON object (got {type(sgp).__name__})"
            )
        elif (kind := _manifest_kind(sgp)) is not None:
            refused.append(
                f"{where}: a Kubernetes manifest (kind {kind}), not SGP JSON: "
                "convert it with --to sgp"
            )
        elif _is_sgp_model(sgp):
            unsupported = [f for f in MODEL_UNSUPPORTED_FIELDS if sgp.get(f) is not None]
            if not args.template_name:
                refused.append(
                    f"{where}: an SGP model names its template by id (model_template_id); "
                    "give the template's name with --template-name"
                )
            elif unsupported:
                refused.append(f"{where}: {', '.join(unsupported)}: no Model field holds it")
    if refused:
        print("\n".join(refused), file=err)
        return EXIT_INVALID
    status = EXIT_OK
    docs = []
    for i, sgp in enumerate(items):
        where = f"{args.file}: item {i + 1}"
        try:
            if _is_sgp_model(sgp):
                manifest = model_manifest_from_sgp(
                    sgp, template_name=args.template_name, namespace=args.namespace
                )
            else:
                manifest = sgp_to_manifest(sgp, namespace=args.namespace)
        except ValueError as exc:
            print(f"{where}: {exc}", file=err)
            return EXIT_INVALID
        for e in validate_kind(manifest):
            print(f"{where}: warning: {e}", file=err)
            status = EXIT_INVALID if args.strict else status
        docs.append(manifest)
    out.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=len(docs) > 1))
    return status


def _to_sgp(args: argparse.Namespace, text: str, out: TextIO, err: TextIO) -> int:
    try:
        docs = list(load_documents(text))
    except yaml.YAMLError as exc:
        print(_where(args.file, exc), file=err)
        return EXIT_INVALID
    refused = []
    for i, doc in enumerate(docs):
        where = f"{args.file}: {_label(doc, i)}"
        kind = _manifest_kind(doc) if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or kind is None:
            sgp = isinstance(doc, (dict, list))
            refused.append(
                f"{where}: not a Kubernetes manifest (no apiVersion nor kind)"
                + ("; SGP JSON converts with --to manifest" if sgp else "")
            )
        elif kind not in (KIND, MODEL_KIND):
            known = kind in KINDS
            refused.append(
                f"{where}: kind {kind} "
                + ("has no SGP shape" if known else f"is not one of {', '.join(KINDS)}")
                + f"; --to sgp converts {KIND} and {MODEL_KIND}"
            )
    if refused:
        print("\n".join(refused), file=err)
        return EXIT_INVALID
    # A Model's SGP model_template_id is its template's id (uid): known when the template,
    # as read from the cluster, is among the documents.
    uids = {
        (d.get("metadata") or {}).get("name"): (d.get("metadata") or {}).get("uid")
        for d in docs
        if d.get("kind") == KIND
    }
    status = EXIT_OK
    results = []
    for i, doc in enumerate(docs):
        where = f"{args.file}: {_label(doc, i)}"
        for e in validate_kind(doc):
            print(f"{where}: warning: {e}", file=err)
            status = EXIT_INVALID if args.strict else status
        if doc["kind"] == MODEL_KIND:
            ref = ((doc.get("spec") or {}).get("templateRef") or {}).get("name")
            template_id = uids.get(ref)
            if template_id is None:
                print(
                    f"{where}: warning: model_template_id is the id (uid) of template {ref!r}, "
                    "not among the documents as read from the cluster: null",
                    file=err,
                )
            results.append(model_manifest_to_sgp(doc, template_id=template_id))
            continue
        try:
            sgp, warnings = manifest_to_sgp(doc, keep_extensions=args.keep_extensions)
        except ValueError as exc:
            print(f"{where}: {exc}", file=err)
            return EXIT_INVALID
        for w in warnings:
            print(f"{where}: warning: {w}", file=err)
        results.append(sgp)
    payload: Any = results[0] if len(results) == 1 else results
    out.write(json.dumps(payload, indent=2) + "\n")
    return status


def cmd_convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        text = _read(args.file)
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=err)
        return EXIT_UNREADABLE
    except UnicodeDecodeError as exc:
        print(f"{args.file}: not UTF-8 text ({exc.reason} at byte {exc.start})", file=err)
        return EXIT_INVALID
    if args.to == "manifest":
        return _to_manifests(args, text, out, err)
    return _to_sgp(args, text, out, err)


EXIT_HELP = f"""exit codes:
  {EXIT_OK}  every document valid (convert: converted)
  {EXIT_INVALID}  a document is invalid, cannot be parsed (FILE:LINE), or has the wrong shape
  {EXIT_USAGE}  wrong usage
  {EXIT_UNREADABLE}  a file or directory cannot be read (missing, unreadable, a directory without
     YAML or JSON files) or the output cannot be written; wins over {EXIT_INVALID}
"""


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="modeltemplate",
        description="ModelTemplate tools: validate manifests offline, convert to and from SGP JSON.",
        epilog=EXIT_HELP,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser(
        "validate",
        help=f"validate manifests offline ({', '.join(KINDS)})",
        description=f"Check {', '.join(KINDS)} manifests against the rules of their CRDs, and "
        "Models' creation parameters against their templates among the files. Progress goes "
        f"to stderr when it is a terminal and there are {PROGRESS_FROM} documents or more.",
        epilog=EXIT_HELP,
        formatter_class=formatter,
    )
    v.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="YAML/JSON files, directories (their .yaml/.yml/.json files, recursively), - for stdin",
    )
    v.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    v.add_argument(
        "--skip-other-kinds",
        action="store_true",
        help="ignore documents of other kinds instead of reporting them",
    )
    c = sub.add_parser(
        "convert",
        help="convert SGP JSON <-> ModelTemplate (and Model) manifests",
        description="SGP JSON (a model template, a list, an SGP list response, or an SGP model "
        "with --template-name) -> manifests; ModelTemplate and Model manifests -> SGP JSON. "
        "Input of another shape is refused and nothing is written.",
        epilog=EXIT_HELP,
        formatter_class=formatter,
    )
    c.add_argument("--to", choices=("manifest", "sgp"), required=True)
    c.add_argument("file", metavar="FILE", help="input file (- for stdin)")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("-n", "--namespace", help="metadata.namespace of generated manifests")
    c.add_argument(
        "--template-name",
        help="--to manifest: name of the template SGP models (model_template_id) refer to",
    )
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
        buffer = io.StringIO()
        code = cmd_convert(args, buffer, sys.stderr)
        if code == EXIT_OK or buffer.getvalue():
            try:
                Path(args.output).write_text(buffer.getvalue(), encoding="utf-8")
            except OSError as exc:
                print(f"{args.output}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_UNREADABLE
        return code
    return cmd_convert(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
