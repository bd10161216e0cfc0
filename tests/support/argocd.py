"""The Argo CD health check of ModelTemplates (deploy/gitops/argocd), run in a Lua 5.1
interpreter as Argo CD runs it (gopher-lua is Lua 5.1; lupa's bundled Lua 5.1 is the closest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "gitops"
    / "argocd"
    / "modeltemplate-health.lua"
)


def lua_runtime():
    try:
        from lupa import lua51 as lupa_module
    except ImportError:  # a lupa build without 5.1
        import lupa as lupa_module
    return lupa_module.LuaRuntime(unpack_returned_tuples=True)


def health_check() -> Callable[[dict], tuple[str, str]]:
    """obj -> (status, message), as Argo CD computes them with the script."""
    lua = lua_runtime()
    # Argo CD hands the object to the script as the global ``obj``.
    run = lua.eval(
        "function(source) return function(o) obj = o; return assert(loadstring(source))() end end"
    )(SCRIPT.read_text())

    def evaluate(obj: dict) -> tuple[str, str]:
        result = run(lua.table_from(obj, recursive=True))
        return result["status"], result["message"]

    return evaluate
