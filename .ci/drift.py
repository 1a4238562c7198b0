"""Compare a `pip install --dry-run --report` with constraints.txt: print what pip would now install differently.

Exit 0 when nothing differs, 1 when something does (a newer or an unpinned package). torch and what only torch
needs are never pinned (see :func:`torch_own`). ``--torch-own REPORT`` prints those names.
"""

import json
import re
import sys


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def torch_own(report: dict) -> set[str]:
    """Packages of a pip report that only torch needs (sympy, networkx, triton, nvidia-*...), torch included: left
    out of constraints.txt, so that installing with it keeps the torch a GPU image ships (matched to its driver)."""
    requires = {}
    for item in report.get("install", []):
        names = [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in item["metadata"].get("requires_dist") or []
                 if "extra ==" not in r]
        requires[canonical(item["metadata"]["name"])] = {canonical(n) for n in names}

    def closure(roots, skip=frozenset()):
        seen, stack = set(), list(roots)
        while stack:
            name = stack.pop()
            if name not in seen and name not in skip:
                seen.add(name)
                stack.extend(requires.get(name, ()))
        return seen

    torch = closure(["torch"])
    others = closure([name for name in requires if name not in torch], skip={"torch"})  # needed without torch
    return torch - others if "torch" in requires else set()


def main(constraints_file: str, report_file: str) -> int:
    pinned = {}
    for line in open(constraints_file, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pinned[canonical(name)] = version.strip()
    report = json.load(open(report_file, encoding="utf-8"))
    unpinned = torch_own(report)
    drift = []
    for item in report.get("install", []):
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"].split("+")[0]
        if name == "hindi-ocr" or name in unpinned or pinned.get(name) == version:
            continue
        drift.append(f"  {name}: {pinned.get(name, 'not pinned')} -> {version}")
    if drift:
        print("pip resolves versions that constraints.txt does not pin:\n" + "\n".join(drift))
    return 1 if drift else 0


if __name__ == "__main__":
    if sys.argv[1] == "--torch-own":  # .ci/update-constraints: the names to leave out, one per line
        print("\n".join(sorted(torch_own(json.load(open(sys.argv[2], encoding="utf-8"))))))
        sys.exit(0)
    sys.exit(main(*sys.argv[1:]))
