package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
)

func operatorFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("iotpay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("IOTPAY_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	api := fs.String("api", def, "platform HTTP API URL (env IOTPAY_URL)")
	return fs, api
}

func operator(api string) (*apiClient, error) {
	key := os.Getenv("IOTPAY_API_KEY")
	if key == "" {
		return nil, fmt.Errorf("set IOTPAY_API_KEY to the operator API key iotpayd printed on its first start")
	}
	return newAPIClient(api, key), nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// call runs one operator API call and prints its answer.
func call(ctx context.Context, api, method, path string, in any, stdout io.Writer) error {
	c, err := operator(api)
	if err != nil {
		return err
	}
	var out any
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return err
	}
	return printJSON(stdout, out)
}

func productCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("product create", stderr)
	name := fs.String("name", "", "product name (required)")
	merchant := fs.String("merchant", "", "merchant account credited by its payments (required)")
	mode := fs.String("mode", "fixed", "pricing: fixed (price per event), metered (price per per-units of unit), amount (device states it)")
	event := fs.String("event", "", "the event type that is priced (any when empty)")
	price := fs.Int64("price", 0, "price in minor units")
	currency := fs.String("currency", "EUR", "ISO 4217 currency")
	unit := fs.String("unit", "", "metered: the event quantity priced, e.g. wh")
	per := fs.Int64("per-units", 0, "metered: how many units the price is for, e.g. 1000 (per kWh of wh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "POST", "/v1/products", map[string]any{"name": *name, "merchant_account": *merchant,
		"pricing": map[string]any{"mode": *mode, "event": *event, "price_minor": *price, "currency": *currency, "unit": *unit, "per_units": *per}}, stdout)
}

func accountCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("account create", stderr)
	name := fs.String("name", "", "account name (required)")
	kind := fs.String("kind", "payer", "payer (a wallet devices pay from) or merchant")
	currency := fs.String("currency", "EUR", "ISO 4217 currency")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "POST", "/v1/accounts", map[string]any{"name": *name, "kind": *kind, "currency": *currency}, stdout)
}

func accountFund(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("account fund", stderr)
	id := fs.String("account", "", "payer account id (required)")
	amount := fs.Int64("amount", 0, "amount in minor units")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "POST", "/v1/accounts/"+*id+"/fund", map[string]any{"amount": *amount}, stdout)
}

func accountGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("account get", stderr)
	id := fs.String("account", "", "account id (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "GET", "/v1/accounts/"+*id, nil, stdout)
}

func deviceCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("device create", stderr)
	product := fs.String("product", "", "product id (required)")
	name := fs.String("name", "", "device name (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "POST", "/v1/devices", map[string]any{"product": *product, "name": *name}, stdout)
}

func bindingCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("binding create", stderr)
	dev := fs.String("device", "", "device id (required)")
	account := fs.String("account", "", "payer account id (required)")
	per := fs.Int64("per-payment", 0, "per-payment limit in minor units")
	daily := fs.Int64("daily", 0, "daily limit in minor units")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "POST", "/v1/bindings", map[string]any{"device": *dev, "account": *account,
		"per_payment_limit": *per, "daily_limit": *daily}, stdout)
}

func paymentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := operatorFlags("payments", stderr)
	dev := fs.String("device", "", "only this device's payments")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return call(ctx, *api, "GET", "/v1/payments?device="+*dev, nil, stdout)
}
