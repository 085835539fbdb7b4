#!/usr/bin/env bash
# Prints the path of the peer, the `oxigraph` 0.5.13 command-line server: $OXIGRAPH if set,
# else the official release binary that the `oxigraph` PyPI wheel ships (the same oxigraph-cli
# as `cargo install oxigraph-cli --version 0.5.13`), fetched once into $TESSERA_HOME/peers.
set -euo pipefail
if [[ -n ${OXIGRAPH:-} ]]; then echo "$OXIGRAPH"; exit 0; fi
dir="${TESSERA_HOME:-$HOME/.cache/tessera}/peers/oxigraph-0.5.13"
bin="$dir/oxigraph"
if [[ ! -x $bin ]]; then
  mkdir -p "$dir"
  pip download --quiet --no-deps --dest "$dir" oxigraph==0.5.13 >&2
  python3 - "$dir" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
wheel = glob.glob(os.path.join(d, "oxigraph-0.5.13-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("oxigraph-0.5.13.data/scripts/oxigraph") as src, open(os.path.join(d, "oxigraph"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(d, "oxigraph"), 0o755)
PY
fi
echo "$bin"
