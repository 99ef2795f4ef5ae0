// Command iotpay is the operator and device command line: it runs the
// demo, creates products, accounts, devices and bindings through the API,
// enrolls a device and makes it pay over MQTT/TLS.
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
)

const usage = `Usage: iotpay <command> [flags]

Commands:
  demo                 run the platform in-process and a scenario of devices paying over MQTT/TLS
  bench ledger         measure the ledger: transfers/s, with one hot account, and payments/s
  product create       create a product (device type and its pricing)
  account create       open a payer or merchant account
  account fund         fund a payer account
  account get          show an account and its balance
  device create        register a device; prints its one-time enrollment token
  device enroll        generate the device key in a keystore, enroll it, save the identity
  device pay           sign a payment request, send it over MQTT/TLS, verify the receipt
  binding create       bind a device to a payer account with limits
  payments             list payments

Operator commands read the API URL from --api or IOTPAY_URL (default http://127.0.0.1:8080)
and the API key from IOTPAY_API_KEY. Run 'iotpay <command> -h' for a command's flags.
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
	if len(rest) > 0 && (cmd == "product" || cmd == "account" || cmd == "device" || cmd == "binding") {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "product create":
		return productCreate(ctx, rest, stdout, stderr)
	case "account create":
		return accountCreate(ctx, rest, stdout, stderr)
	case "account fund":
		return accountFund(ctx, rest, stdout, stderr)
	case "account get":
		return accountGet(ctx, rest, stdout, stderr)
	case "device create":
		return deviceCreate(ctx, rest, stdout, stderr)
	case "device enroll":
		return deviceEnroll(ctx, rest, stdout, stderr)
	case "device pay":
		return devicePay(ctx, rest, stdout, stderr)
	case "binding create":
		return bindingCreate(ctx, rest, stdout, stderr)
	case "payments":
		return paymentsList(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
