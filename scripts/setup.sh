#!/usr/bin/env bash
# Installs what the test suite needs and is missing, quickly when all is
# present. Debian packages only; run as root (or with sudo available).
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)

if ((${#need[@]})); then
	echo "setup: installing ${need[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
