#!/bin/sh
# What the data-plane benchmarks measure against (not needed by the tests):
# nginx serving a fixed body, and wrk for closed-loop load. From Debian's archive.
set -eu
missing=""
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v wrk >/dev/null || missing="$missing wrk"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
else
    echo "install Debian's$missing (as root: apt-get install$missing)" >&2
    exit 1
fi
