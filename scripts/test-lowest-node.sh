#!/usr/bin/env bash
# Runs `npm test` on the lowest Node.js that package.json's "engines" claims
# (the first version it names), taken from the npm registry's node-<os>-<arch>
# package into a temporary folder. Arguments go to jest, as with npm test.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p "require('./package.json').engines.node.match(/\d+\.\d+\.\d+/)[0]")
binary_package=$(node -p "'node-' + ({ win32: 'win' }[process.platform] ?? process.platform) + '-' + process.arch")
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

echo "test-lowest-node: Node.js $version from the npm package $binary_package@$version" >&2
npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "$binary_package@$version"
export PATH="$prefix/node_modules/$binary_package/bin:$PATH"
[ "$(node --version)" = "v$version" ] || { echo "test-lowest-node: node --version says $(node --version), not v$version" >&2; exit 1; }
npm test -- "$@"
