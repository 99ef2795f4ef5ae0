#!/usr/bin/env bash
# Runs issue 8's measurements in one go on this machine and prints one
# JSON object per measurement (one per line) on stdout; the figures and
# how to read them are in BENCHMARKS.md. Nothing else should run on the
# machine meanwhile: the platform, the simulator and the brokers share it.
#
#   bash bench/run.sh            # everything, about 5 minutes
#   DURATION=10s bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
CONNS=${CONNS:-18500}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/iotpay
go build -o "$bin" ./cmd/iotpay
go build -o "$tmp/mqttload" ./bench/mqttload/cmd/mqttload
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), open-file limit $(ulimit -n)" >&2
for suite in intl gm; do
	echo "# bench e2e --suite $suite: crypto-only ceiling, end-to-end payments/s, their ratio, p99 at half the rate" >&2
	"$bin" bench e2e --suite "$suite" --duration "$DURATION" --json
done
echo "# mqttload: QoS 1 publishes/s through the embedded broker and Mosquitto (TLS both; plain 1883 for reference), same generator, brokers in their own processes" >&2
"$tmp/mqttload" -process -clients 64 -window 64 -size 64 -duration 10s -runs 3 -json
echo "# bench conns: $CONNS mutual-TLS MQTT connections held, platform RSS per connection" >&2
"$bin" bench conns --devices "$CONNS" --json
