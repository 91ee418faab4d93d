#!/usr/bin/env bash
# One-step set-up on Debian 12: system packages (when root), npm ci, native addon, TypeScript.
# Nothing is downloaded except Debian and npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# libdnnl-dev: oneDNN (GEMM for the native addon); ffmpeg: decoding every media container;
# espeak-ng + flite + sox: the AV-digits demo data (speech engines, recording conditions);
# asterisk-core-sounds-en-{wav,g722,gsm} + saytime + pocketsphinx-testdata: recordings of people
# saying the digits, the held-out real-speech test set (src/data/real-digits.ts, docs/data.md);
# chromium: the browser test of the web page; python3: node-gyp; g++/make: the addon build.
APT_PACKAGES=(build-essential python3 libdnnl-dev ffmpeg espeak-ng flite sox chromium fonts-dejavu-core
  asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722 asterisk-core-sounds-en-gsm saytime pocketsphinx-testdata)

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

echo "setup: npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "setup: building the native addon"
# Build against the installed Node headers: node-gyp must never try to download them.
nodedir_flag=()
node_prefix=$(dirname "$(dirname "$(command -v node)")")
for d in "$node_prefix" /usr /usr/local; do
  if [ -f "$d/include/node/node_api.h" ]; then nodedir_flag=(--nodedir="$d"); break; fi
done
if npx --no-install node-gyp rebuild --directory native "${nodedir_flag[@]}" >native-build.log 2>&1; then
  echo "setup: native addon built"
else
  echo "setup: WARNING: the native addon failed to build (see native-build.log); the slow TypeScript kernels will be used."
fi

echo "setup: compiling TypeScript"
npx --no-install tsc -p tsconfig.json
echo "setup: done"
