#!/usr/bin/env bash
# Runs the whole suite against NestJS 11 (CommonJS) instead of 12 (ES modules),
# in a copy of the work tree, so the peer range ^11 || ^12 stays true.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work")
cd "$work"
# The package test lists the files to pack with git: make the copy a repository of its own.
git init -q && git add -A
npm install --no-audit --no-fund
npm install --no-audit --no-fund --no-save \
  @nestjs/common@^11 @nestjs/core@^11 @nestjs/platform-express@^11 @nestjs/platform-fastify@^11 @nestjs/testing@^11 \
  @nestjs/websockets@^11 @nestjs/platform-socket.io@^11 @nestjs/platform-ws@^11 \
  @nestjs/graphql@^13 @nestjs/apollo@^13 @nestjs/mercurius@^13
node -e "console.log('NestJS', require('@nestjs/core/package.json').version)"
npm test
