#!/usr/bin/env bash
# One-step set-up on Debian 12: system packages (when root), npm ci, native addon, TypeScript.
# Nothing is downloaded except Debian and npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# libdnnl-dev: oneDNN (GEMM for the native addon); ffmpeg: decoding every media container;
# espeak-ng + flite + sox: the AV-digits demo data (speech engines, recording conditions);
# asterisk-core-sounds-en-{wav,g722,gsm} + saytime + pocketsphinx-testdata: recordings of people
# saying the digits, the held-out real-speech test set (src/data/real-digits.ts, docs/data.md);
# chromium: the browser test of the web page; python3: node-gyp; g++/make: the addon build;
# redis-server: the job queue of distributed indexing (tests start their own instance);
# python3-torch: the test that PyTorch loads `cavmae export` output.
APT_PACKAGES=(build-essential python3 libdnnl-dev ffmpeg espeak-ng flite sox chromium fonts-dejavu-core
  asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722 asterisk-core-sounds-en-gsm saytime pocketsphinx-testdata
  redis-server python3-torch)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run:"
    echo "  sudo apt-get install -y ${missing[*]}"
    echo "setup: continuing; the parts that need them will say so."
  fi
fi

# node-gyp (hnswlib-node's build and ours) compiles against this Node's own headers: never let it
# try to download them.
if [ -z "${npm_config_nodedir:-}" ]; then
  node_prefix=$(dirname "$(dirname "$(command -v node)")")
  for d in "$node_prefix" /usr /usr/local; do
    if [ -f "$d/include/node/common.gypi" ]; then export npm_config_nodedir="$d"; break; fi
  done
fi

echo "setup: npm ci (its install step builds the native addon: scripts/native.mjs)"
npm ci --no-audit --no-fund --loglevel=error

# Reports the addon npm ci built, or builds it when npm ran without scripts; never fails: without
# oneDNN or a compiler it says which Debian packages are missing, and the TypeScript kernels run.
# Node headers come from this Node's installation (--nodedir), never downloaded.
echo "setup: native addon"
node scripts/native.mjs install

echo "setup: compiling TypeScript"
npx --no-install tsc -p tsconfig.json
echo "setup: done"
