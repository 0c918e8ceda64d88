#!/usr/bin/env bash
# Vendors the dashboard's browser libraries from the npm registry into
# crates/firebreak-server/assets/vendor/ (committed, so neither a build nor a
# user needs npm): htmx (interaction, BSD-2-Clause) and uPlot (plots, MIT), each
# with its licence. Rerun to upgrade; VERSIONS records what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/firebreak-server/assets/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent htmx.org@2.0.11 uplot@1.6.32 >/dev/null)
for tgz in "$work"/*.tgz; do
  name=$(basename "$tgz" .tgz)
  mkdir -p "$work/$name" && tar xzf "$tgz" -C "$work/$name" --strip-components=1
done
mkdir -p "$out"
cp "$work"/htmx.org-*/dist/htmx.min.js "$out/htmx.min.js"
cp "$work"/htmx.org-*/LICENSE "$out/htmx.LICENSE"
cp "$work"/uplot-*/dist/uPlot.iife.min.js "$out/uPlot.iife.min.js"
cp "$work"/uplot-*/dist/uPlot.min.css "$out/uPlot.min.css"
cp "$work"/uplot-*/LICENSE "$out/uPlot.LICENSE"
{
  echo "htmx.org 2.0.11 (npm), BSD-2-Clause: htmx.min.js"
  echo "uplot 1.6.32 (npm), MIT: uPlot.iife.min.js, uPlot.min.css"
  (cd "$out" && sha256sum htmx.min.js uPlot.iife.min.js uPlot.min.css)
} > "$out/VERSIONS"
echo "vendored into $out"
