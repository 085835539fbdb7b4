#!/usr/bin/env bash
# Refreshes the console's vendored libraries (sparql/assets/vendor) from npm: pinned versions,
# checked by npm against the registry's integrity hashes, each with its licence. The files are
# committed and compiled into the binary, so the console works offline; run this only to
# upgrade them.
#
#   scripts/vendor-console.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/sparql/assets/vendor"
codemirror=5.65.20 # editor with a SPARQL mode (MIT)
cytoscape=3.33.1   # graph view (MIT)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "codemirror@$codemirror" "cytoscape@$cytoscape" >/dev/null
mkdir cm cy
tar xzf "codemirror-$codemirror.tgz" -C cm
tar xzf "cytoscape-$cytoscape.tgz" -C cy
rm -rf "$out"
mkdir -p "$out/codemirror" "$out/cytoscape"
cp cm/package/lib/codemirror.js cm/package/lib/codemirror.css cm/package/mode/sparql/sparql.js \
  cm/package/LICENSE "$out/codemirror/"
cp cy/package/dist/cytoscape.min.js cy/package/LICENSE "$out/cytoscape/"
cat > "$out/VERSIONS" <<VERSIONS
codemirror $codemirror (npm; lib/codemirror.js, lib/codemirror.css, mode/sparql/sparql.js)
cytoscape $cytoscape (npm; dist/cytoscape.min.js)
VERSIONS
echo "vendored into $out:"
ls -l "$out"/*
