#!/usr/bin/env bash
# Install the Debian packages behind missing tools, and only those.
#   install-tools.sh TOOL=PACKAGE...
# TOOL is a command looked up on PATH, or a file path when it contains a "/".
set -euo pipefail

missing=()
for pair in "$@"; do
  tool=${pair%%=*} package=${pair#*=}
  if [[ $tool == */* ]]; then [[ -e $tool ]] && continue; else command -v "$tool" >/dev/null && continue; fi
  [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
