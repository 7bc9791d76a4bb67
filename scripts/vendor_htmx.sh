#!/usr/bin/env bash
# Vendor HTMX from its npm package into the content service's static files, so the portal loads
# nothing from another origin (it must work on a closed network). Run it to update HTMX; commit
# the two files it writes. Needs npm (the package registry only; no build step, no node_modules).
set -euo pipefail

version="${1:-2}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
static="$here/services/content/static"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball="$(npm pack --silent "htmx.org@$version" | tail -n 1)"
tar -xzf "$tarball"
install -m 0644 package/dist/htmx.min.js "$static/htmx.min.js"
install -m 0644 package/LICENSE "$static/htmx.LICENSE"
resolved="$(node -p "require('./package/package.json').version")"
echo "vendored htmx.org $resolved into $static"
