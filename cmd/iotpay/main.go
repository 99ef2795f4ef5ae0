// Command iotpay is the operator and device command line: it runs the
// demo, creates products, accounts, devices and mandates through the API,
// authorizes, captures, voids and refunds payments, enrolls a device and
// makes it pay over MQTT/TLS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // tariffs and risk hours name time zones; a host without zone data still prices right

	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
)

const usage = `Usage: iotpay <command> [flags]

Commands:
  demo                 run the platform in-process and a scenario of devices paying over MQTT/TLS
  bench ledger         measure the ledger: transfers/s, with one hot account, and payments/s
  sim                  simulate a fleet (up to 100,000 devices) paying over MQTT/CoAP at a rate: throughput, latency, ledger check
  product create       create a product (device type and its pricing)
  account create       open a payer or merchant account
  account fund         fund a payer account
  account get          show an account and its balance
  account balance      an account's balance, now or --as-of-seq N / --as-of T
  device create        register a device; prints its one-time enrollment token
  device enroll        generate the device key in a keystore, enroll it (API, or --mqtt with the token), save the identity
  device show          a device and its presence: online/offline over MQTT, since when, why
  device pay           sign a payment request, send it over MQTT/TLS (or --https, --coap [--psk]; --secure), verify the receipt
  device psk           get a device's CoAP/DTLS pre-shared key (--dir: save it for 'device pay --psk-file')
  device rotate        renew the device certificate over EST before it expires (HTTPS, mutual TLS)
  device revoke        revoke a device for good: its next message is refused, its live MQTT and CoAP sessions end
  device state         a device's state: shadow (reported, desired), firmware and attestation, tamper, battery, location
  device desire        change a device's desired state (--set k=v,… --unset k; --if-version N) or --clear-tamper
  product profile      show a product's profile, or --file: set a new version (CEL rules, risk policy, firmware, inactivity)
  product dry-run      evaluate a product's rules and risk policy on a sample event, moving no money
  tariff set           set a tariff (time-of-day bands) that rules price with price(name, quantity)
  tariffs              list the tariffs
  reviews              list payments held for review by risk control (--status pending|approved|declined|all)
  review approve       approve a held payment (a charge is captured)
  review decline       decline a held payment (its hold is released)
  events               device events: inactive, tamper, firmware not attested, held for review, supply order
  orders               refill orders sent to suppliers, and their delivery
  webhook create       register an endpoint for signed events (--url, --events payment.*,device.*); prints its secret
  webhooks             list the webhook endpoints
  webhook delete       delete an endpoint
  webhook deliveries   an endpoint's delivery log (--status pending|delivered|failed)
  webhook redeliver    send a delivery again now
  mandate create       let a device pay from a payer account within limits
  mandate suspend      decline the device's payments until resumed
  mandate resume       resume a suspended mandate
  mandate revoke       end a mandate for good
  payment authorize    hold an amount for a device under its mandate (--capture: a sale)
  payment capture      capture a payment, in full or in part (--final=false keeps the rest held)
  payment increment    raise an open payment's authorization
  payment void         release an open payment's hold
  payment refund       refund a payment, in full or in part
  payment get          show a payment (--transfers: its ledger transfers)
  payments             list payments (--device, --mandate, --status, --created-gte/lt; pages, --all)
  audit verify         verify the audit log from its URL and key: checkpoint, consistency, co-signatures, anchor, --leaf, --full
  audit anchor-deploy  deploy the CheckpointAnchor contract on an Ethereum chain (for iotpayd --eth-contract)
  witness              run a transparency-log witness (C2SP tlog-witness) for the logs given
  connectors           the external payment systems and their health (circuit breaker, errors)
  follow-ups           what payment systems still owe the ledger: pending (retried with back-off) or --status failed
  follow-up retry      try a failed follow-up again, now (after mending what made the payment system refuse it)
  routing              show the routing table, or --file: set it (rules over currency, amount, product, account → connectors)
  reconcile            match a connector's settlement report (CSV or camt.053) against the ledger: matched, missing, mismatched
  acquirer-sim         run a card acquirer host simulator speaking ISO 8583 (approve, decline, time out, drop, by rule)

Operator commands read the API URL from --api or IOTPAY_URL (default http://127.0.0.1:8080)
and the API key from IOTPAY_API_KEY. Every POST carries an Idempotency-Key: random, or
--idempotency-key to repeat a command safely. Run 'iotpay <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "iotpay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (cmd == "product" || cmd == "account" || cmd == "device" || cmd == "mandate" || cmd == "payment" || cmd == "audit" || cmd == "tariff" || cmd == "review" || cmd == "webhook" || cmd == "follow-up") {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	if c, ok := commands[cmd]; ok {
		return c(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// commands are the commands by name.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"demo":                runDemo,
	"bench":               runBench,
	"sim":                 runSim,
	"product create":      productCreate,
	"account create":      accountCreate,
	"account fund":        accountFund,
	"account get":         byID("account get", "account", "GET", "/v1/accounts/%s"),
	"account balance":     accountBalance,
	"device create":       deviceCreate,
	"device enroll":       deviceEnroll,
	"device pay":          devicePay,
	"device psk":          devicePSK,
	"device show":         byID("device show", "device", "GET", "/v1/devices/%s"),
	"device rotate":       deviceRotate,
	"device revoke":       byID("device revoke", "device", "POST", "/v1/devices/%s/revoke"),
	"device state":        byID("device state", "device", "GET", "/v1/devices/%s/state"),
	"device desire":       deviceDesire,
	"product profile":     productProfile,
	"product dry-run":     productDryRun,
	"tariff set":          tariffSet,
	"tariffs":             tariffList,
	"reviews":             reviewList,
	"review approve":      reviewDecide("approve"),
	"review decline":      reviewDecide("decline"),
	"events":              listBy("events", "/v1/events"),
	"orders":              listBy("orders", "/v1/orders"),
	"webhook create":      webhookCreate,
	"webhooks":            webhookList,
	"webhook delete":      byID("webhook delete", "webhook", "DELETE", "/v1/webhooks/%s"),
	"webhook deliveries":  webhookDeliveries,
	"webhook redeliver":   byID("webhook redeliver", "delivery", "POST", "/v1/webhook-deliveries/%s/redeliver"),
	"mandate create":      mandateCreate,
	"mandate suspend":     mandateSet("suspend"),
	"mandate resume":      mandateSet("resume"),
	"mandate revoke":      mandateSet("revoke"),
	"payment authorize":   paymentAuthorize,
	"payment capture":     paymentCapture,
	"payment increment":   paymentIncrement,
	"payment void":        paymentVoid,
	"payment refund":      paymentRefund,
	"payment get":         paymentGet,
	"payments":            paymentsList,
	"audit verify":        auditVerify,
	"audit anchor-deploy": auditAnchorDeploy,
	"witness":             runWitness,
	"acquirer-sim":        acquirersim.Main,
	"reconcile":           reconcileCmd,
	"connectors":          listBy("connectors", "/v1/connectors"),
	"routing":             routingCmd,
	"follow-ups":          followUpList,
	"follow-up retry":     byID("follow-up retry", "id", "POST", "/v1/follow-ups/%s/retry"),
}
