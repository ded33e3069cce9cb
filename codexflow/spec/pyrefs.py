"""Which `kind: python` refs a spec may name without `trusted: true` (checked at validate time).

A python tool runs in codexflow's own process, with its privileges: a ref such as `os:system`,
`subprocess:run`, `builtins:exec` or `shutil:rmtree` hands the model the host. Refs into the
standard library, into codexflow itself, into a few packages that run programs or load code,
and to private functions are refused unless the tool is marked `trusted: true`.
"""

from __future__ import annotations

import sys

# Third-party top-level packages whose functions run programs, load code or write files
# anywhere (beyond the standard library, refused as a whole).
DANGEROUS_PACKAGES = frozenset({
    "codexflow", "prefect", "litellm", "pip", "setuptools", "pkg_resources", "_distutils_hack",
    "distutils", "wheel", "virtualenv", "dill", "cloudpickle", "joblib", "IPython", "pexpect",
    "sh", "plumbum", "invoke", "fabric", "paramiko", "docker", "pytest", "_pytest", "py",
    "jinja2", "ruamel", "yaml", "uvicorn", "anyio", "mcp", "fsspec", "sqlalchemy", "chromadb",
    "sqlmodel", "typer", "click", "rich", "pluggy", "importlib_metadata", "attr",
})  # fmt: skip


def ref_problem(ref: str) -> str | None:
    """Why `module:function` may not be used without `trusted: true`, or None."""
    module, _, attribute = ref.partition(":")
    top = module.split(".", 1)[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "builtins":
        return f"`{module}` is part of Python's standard library, which reaches the host"
    if top in DANGEROUS_PACKAGES:
        return f"`{top}` can run programs or write files anywhere on the host"
    if attribute.startswith("_") or any(part.startswith("__") for part in module.split(".")):
        return "private names (starting with `_`) are not tools"
    return None
