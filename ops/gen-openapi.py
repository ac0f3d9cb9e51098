#!/usr/bin/env python3
"""Generates api/http/openapi.json from the tables of ../shared/API.md (the fixed HTTP contract).

Usage: ops/gen-openapi.py [path/to/API.md] > api/http/openapi.json
Each table row "| METHOD /path · METHOD /path | notes | errors |" becomes an operation whose
description is the row's text, plus the responses API.md's tables leave out (421 for commands
routed by partition, see PARTITIONED_COMMANDS). tests/http/openapi_test.cc checks the committed file against
API.md, so a contract change without regenerating fails the suite.
"""
import json
import re
import sys

METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}

# Commands that append to a partition: on a multi-node deployment (ARCHITECTURE.md, "Kafka mode")
# a node that does not own the partition answers 421. API.md leaves deployment topology out of
# its tables, so the response is added here (api/include/api/ownership.h).
MISDIRECTED = {
    "description": "Misdirected: another node owns the partition of (some of) the events; "
                   "nothing was appended. error.code is `misdirected`; details.partition and "
                   "details.owner (the owner's URL, or null when unknown) name the first such "
                   "event, details.events lists each as {index, partition, owner}.",
}
PARTITIONED_COMMANDS = {("POST", "/v1/events")}


def operations(api_md):
    ops = []
    section = ""
    for line in api_md.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("| ") or line.startswith("| ---") or line.startswith("| method"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        first = cells[0]
        if not any(first.startswith(m) for m in METHODS):
            continue
        prev_methods, prev_path = None, None
        for part in (p.strip() for p in first.split("·")):
            words = part.split()
            if words[0].startswith("/"):
                methods = prev_methods
                path = prev_path.rsplit("/", 1)[0] + words[0]
            else:
                methods = words[0].split("/")
                path = words[1]
            for m in methods:
                ops.append((m, path, section, " | ".join(cells[1:])))
            prev_methods, prev_path = methods, path
    return ops


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/API.md"
    with open(path, encoding="utf-8") as f:
        ops = operations(f.read())
    paths = {}
    for method, p, section, text in ops:
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", p)]
        op = {"summary": f"{method} {p}", "tags": [section], "description": text,
              "responses": {"default": {"description": "See the description; errors use the "
                                                       "{data, error} envelope."}}}
        if (method, p) in PARTITIONED_COMMANDS:
            op["responses"]["421"] = MISDIRECTED
        if params:
            op["parameters"] = params
        paths.setdefault(p, {})[method.lower()] = op
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Sechex Ledger", "version": "1",
                 "description": "Generated from API.md by ops/gen-openapi.py."},
        "paths": dict(sorted(paths.items())),
    }
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
