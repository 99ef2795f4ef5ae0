#!/usr/bin/env bash
# Installs what the test suite needs and is missing, quickly when all is
# present. Debian packages only; run as root (or with sudo available).
#
# PostgreSQL: the tests of store/postgres and the end-to-end tests on
# PostgreSQL create throw-away databases on IOTPAY_TEST_POSTGRES, by default
# postgres@127.0.0.1:5432 without a password. Unless IOTPAY_TEST_POSTGRES
# names another server, this installs PostgreSQL, starts its cluster and,
# for local test use only, lets postgres in over loopback TCP by trust.
#
# SoftHSM2: device/keystore/pkcs11's tests make a throw-away token each
# (softhsm2-util) and load /usr/lib/softhsm/libsofthsm2.so.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

local_pg=1
[ -z "${IOTPAY_TEST_POSTGRES:-}" ] || local_pg=0

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
# The Mosquitto broker: bench/mqttload compares the embedded broker with it
# (the machine's on 127.0.0.1:1883, and one it starts with TLS).
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# curl and OpenSSL for the HTTPS device endpoint's EST and payment interop tests.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# libcoap's coap-client (OpenSSL build) for the CoAP/DTLS interop tests.
command -v coap-client-openssl >/dev/null 2>&1 || need+=(libcoap3-bin)
if ! command -v softhsm2-util >/dev/null 2>&1 || [ ! -e /usr/lib/softhsm/libsofthsm2.so ]; then
	need+=(softhsm2)
fi
if ((local_pg)); then
	if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
		need+=(postgresql)
	fi
fi

if ((${#need[@]})); then
	echo "setup: installing ${need[*]}"
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The machine's Mosquitto on 127.0.0.1:1883, started if it is not running.
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
	echo "setup: starting Mosquitto on 127.0.0.1:1883"
	$SUDO /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
	for _ in $(seq 1 20); do
		(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
		sleep 0.25
	done
fi

# stripe-mock, the Stripe API peer the Stripe connector's tests start on a
# free loopback port (payment/connector/stripe); pinned.
STRIPE_MOCK_VERSION=v0.203.0
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/stripe-mock" ] || [ "$(cat "$gobin/.stripe-mock-version" 2>/dev/null)" != "$STRIPE_MOCK_VERSION" ]; then
	echo "setup: installing stripe-mock $STRIPE_MOCK_VERSION"
	go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
	echo "$STRIPE_MOCK_VERSION" >"$gobin/.stripe-mock-version"
fi

((local_pg)) || exit 0

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
pg_trusts() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -w -Atqc 'SELECT 1' >/dev/null 2>&1; }

if ! pg_ready; then
	# The newest installed version, and its cluster "main" (made by the
	# package; made here if a cluster was dropped).
	ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
	[ -d "/etc/postgresql/$ver/main" ] || $SUDO pg_createcluster "$ver" main >/dev/null
	echo "setup: starting PostgreSQL $ver"
	$SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
	for _ in $(seq 1 60); do
		pg_ready && break
		sleep 0.5
	done
	pg_ready || {
		echo "setup: PostgreSQL $ver did not become ready on 127.0.0.1:5432" >&2
		exit 1
	}
fi

if ! pg_trusts; then
	ver=$(ls /etc/postgresql | sort -V | tail -n 1)
	hba="/etc/postgresql/$ver/main/pg_hba.conf"
	if ! $SUDO grep -q '^host all postgres 127.0.0.1/32 trust # iotpay tests' "$hba"; then
		echo "setup: letting postgres in over loopback without a password (trust, for local tests) in $hba"
		# First match wins in pg_hba.conf, so these go on top.
		$SUDO sed -i '1i host all postgres 127.0.0.1/32 trust # iotpay tests\nhost all postgres ::1/128 trust # iotpay tests' "$hba"
	fi
	$SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	for _ in $(seq 1 20); do
		pg_trusts && break
		sleep 0.25
	done
	pg_trusts || {
		echo "setup: cannot connect as postgres to 127.0.0.1:5432 without a password; see $hba" >&2
		exit 1
	}
fi
