package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iotpay/iotpay/wire"
)

// opFlags are the flags every operator command has.
type opFlags struct {
	*flag.FlagSet
	api, idempotencyKey *string
}

func operatorFlags(name string, stderr io.Writer) opFlags {
	fs := flag.NewFlagSet("iotpay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("IOTPAY_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	return opFlags{FlagSet: fs,
		api: fs.String("api", def, "platform HTTP API URL (env IOTPAY_URL)"),
		idempotencyKey: fs.String("idempotency-key", "",
			"Idempotency-Key of the POST this command makes, to repeat it safely (default: random)")}
}

// client returns the operator API client the flags name.
func (f opFlags) client() (*apiClient, error) {
	key := os.Getenv("IOTPAY_API_KEY")
	if key == "" {
		return nil, fmt.Errorf("set IOTPAY_API_KEY to the operator API key iotpayd printed on its first start")
	}
	return newAPIClient(*f.api, key, *f.idempotencyKey), nil
}

// parse parses args and checks that the flags named in required are set.
func (f opFlags) parse(args []string, required ...string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", f.Name(), f.Args())
	}
	for _, name := range required {
		if f.Lookup(name).Value.String() == "" {
			return fmt.Errorf("%s needs --%s", f.Name(), name)
		}
	}
	return nil
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
func (f opFlags) call(ctx context.Context, method, path string, in any, stdout io.Writer) error {
	c, err := f.client()
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
	fs := operatorFlags("product create", stderr)
	name := fs.String("name", "", "product name (required)")
	merchant := fs.String("merchant", "", "merchant account credited by its payments (required)")
	mode := fs.String("mode", "fixed", "pricing: fixed (price per event), metered (price per per-units of unit), amount (device states it)")
	event := fs.String("event", "", "the event type that is priced (any when empty)")
	price := fs.Int64("price", 0, "price in minor units")
	currency := fs.String("currency", "EUR", "ISO 4217 currency")
	unit := fs.String("unit", "", "metered: the event quantity priced, e.g. wh")
	per := fs.Int64("per-units", 0, "metered: how many units the price is for, e.g. 1000 (per kWh of wh)")
	category := fs.String("category", "", "merchant category (ISO 18245, 4 digits), which mandates may restrict")
	kind := fs.String("kind", "device", "device (its devices pay) or gateway (its devices are iotpay-edge gateways relaying for others)")
	offAmount := fs.Int64("offline-max-amount", 0, "let devices pay offline (through a gateway's store) up to this much in all, minor units")
	offCount := fs.Int("offline-max-count", 0, "… and up to this many payments, since they were last online")
	if err := fs.parse(args, "name", "merchant"); err != nil {
		return err
	}
	body := map[string]any{"name": *name, "merchant_account": *merchant, "category": *category, "kind": *kind,
		"pricing": map[string]any{"mode": *mode, "event": *event, "price_minor": *price, "currency": *currency, "unit": *unit, "per_units": *per}}
	if *offAmount != 0 || *offCount != 0 {
		body["offline"] = map[string]any{"max_amount": *offAmount, "max_count": *offCount}
	}
	return fs.call(ctx, "POST", "/v1/products", body, stdout)
}

func accountCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("account create", stderr)
	name := fs.String("name", "", "account name (required)")
	kind := fs.String("kind", "payer", "payer (a wallet devices pay from) or merchant")
	currency := fs.String("currency", "EUR", "ISO 4217 currency")
	sources := fs.String("sources", "", "a payer that is an instrument at external payment systems: connector=reference,… (e.g. acquirer=4111111111111111,stripe=pm_card_visa)")
	if err := fs.parse(args, "name"); err != nil {
		return err
	}
	body := map[string]any{"name": *name, "kind": *kind, "currency": *currency}
	if *sources != "" {
		src := map[string]string{}
		for _, kv := range list(*sources) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("--sources: %q is not connector=reference", kv)
			}
			src[k] = v
		}
		body["sources"] = src
	}
	return fs.call(ctx, "POST", "/v1/accounts", body, stdout)
}

func accountFund(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("account fund", stderr)
	id := fs.String("account", "", "payer account id (required)")
	amount := fs.Int64("amount", 0, "amount in minor units")
	if err := fs.parse(args, "account"); err != nil {
		return err
	}
	return fs.call(ctx, "POST", "/v1/accounts/"+url.PathEscape(*id)+"/fund", map[string]any{"amount": *amount}, stdout)
}

func accountBalance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("account balance", stderr)
	id := fs.String("account", "", "account id (required)")
	seq := fs.Int64("as-of-seq", 0, "the balance just after the transfer with this sequence number")
	asOf := fs.String("as-of", "", "the balance at this instant (RFC 3339)")
	if err := fs.parse(args, "account"); err != nil {
		return err
	}
	q := url.Values{}
	if *seq != 0 {
		q.Set("as_of_seq", strconv.FormatInt(*seq, 10))
	}
	if *asOf != "" {
		q.Set("as_of", *asOf)
	}
	return fs.call(ctx, "GET", "/v1/accounts/"+url.PathEscape(*id)+"/balance"+query(q), nil, stdout)
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func deviceCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("device create", stderr)
	product := fs.String("product", "", "product id (required)")
	name := fs.String("name", "", "device name (required)")
	suite := fs.String("suite", wire.SuiteIntl, "crypto suite, fixed for the device's life: intl (P-256) or gm (SM2/SM3)")
	if err := fs.parse(args, "product", "name"); err != nil {
		return err
	}
	return fs.call(ctx, "POST", "/v1/devices", map[string]any{"product": *product, "name": *name, "suite": *suite}, stdout)
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func mandateCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("mandate create", stderr)
	dev := fs.String("device", "", "device id (required)")
	payer := fs.String("payer", "", "payer account id the device pays from (required)")
	per := fs.Int64("per-payment", 0, "per-payment limit in minor units (required)")
	daily := fs.Int64("daily", 0, "daily limit (UTC day) in minor units (required)")
	monthly := fs.Int64("monthly", 0, "monthly limit in minor units (default: 31 × daily)")
	currency := fs.String("currency", "", "currency (default: the payer account's)")
	products := fs.String("products", "", "comma-separated product ids: the only products the device may pay for")
	categories := fs.String("categories", "", "comma-separated merchant categories (ISO 18245): the only ones the device may pay for")
	from := fs.String("valid-from", "", "start of validity, RFC 3339 (default: now)")
	to := fs.String("valid-to", "", "end of validity, RFC 3339 (default: none)")
	if err := fs.parse(args, "device", "payer"); err != nil {
		return err
	}
	if *monthly == 0 {
		*monthly = 31 * *daily
	}
	in := map[string]any{"device": *dev, "payer": *payer, "per_payment_limit": *per, "daily_limit": *daily, "monthly_limit": *monthly}
	for name, v := range map[string]string{"currency": *currency, "valid_from": *from, "valid_to": *to} {
		if v != "" {
			in[name] = v
		}
	}
	for name, v := range map[string][]string{"products": list(*products), "categories": list(*categories)} {
		if len(v) > 0 {
			in[name] = v
		}
	}
	return fs.call(ctx, "POST", "/v1/mandates", in, stdout)
}

// mandateSet suspends, resumes or revokes a mandate (action).
func mandateSet(action string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := operatorFlags("mandate "+action, stderr)
		id := fs.String("mandate", "", "mandate id (required)")
		if err := fs.parse(args, "mandate"); err != nil {
			return err
		}
		return fs.call(ctx, "POST", "/v1/mandates/"+url.PathEscape(*id)+"/"+action, nil, stdout)
	}
}

func paymentAuthorize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("payment authorize", stderr)
	dev := fs.String("device", "", "device id (required): its mandate and product decide")
	amount := fs.Int64("amount", 0, "amount to hold, in minor units")
	currency := fs.String("currency", "EUR", "ISO 4217 currency")
	capture := fs.Bool("capture", false, "capture the whole amount at once (a sale)")
	hold := fs.Duration("hold", 0, "how long the hold lasts (default 7 days)")
	if err := fs.parse(args, "device"); err != nil {
		return err
	}
	return fs.call(ctx, "POST", "/v1/payments", map[string]any{"device": *dev, "amount": *amount, "currency": *currency,
		"capture": *capture, "hold_seconds": int64(*hold / time.Second)}, stdout)
}

// paymentOp runs an operation (capture, void, refund, increment) on a
// payment; body adds its flags and returns its request body.
func paymentOp(op string, body func(fs opFlags) func() any) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := operatorFlags("payment "+op, stderr)
		id := fs.String("payment", "", "payment id (required)")
		in := body(fs)
		if err := fs.parse(args, "payment"); err != nil {
			return err
		}
		return fs.call(ctx, "POST", "/v1/payments/"+url.PathEscape(*id)+"/"+op, in(), stdout)
	}
}

var (
	paymentCapture = paymentOp("capture", func(fs opFlags) func() any {
		amount := fs.Int64("amount", 0, "amount to capture in minor units (default: all that is held)")
		final := fs.Bool("final", true, "release what is not captured; --final=false keeps it held for later captures")
		return func() any { return map[string]any{"amount": *amount, "final": *final} }
	})
	paymentIncrement = paymentOp("increment", func(fs opFlags) func() any {
		amount := fs.Int64("amount", 0, "amount to add to the authorization, in minor units")
		return func() any { return map[string]any{"amount": *amount} }
	})
	paymentRefund = paymentOp("refund", func(fs opFlags) func() any {
		amount := fs.Int64("amount", 0, "amount to refund in minor units (default: all that is left)")
		return func() any { return map[string]any{"amount": *amount} }
	})
	paymentVoid = paymentOp("void", func(opFlags) func() any { return func() any { return nil } })
)

func paymentGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("payment get", stderr)
	id := fs.String("payment", "", "payment id (required)")
	transfers := fs.Bool("transfers", false, "show the payment's ledger transfers instead")
	if err := fs.parse(args, "payment"); err != nil {
		return err
	}
	path := "/v1/payments/" + url.PathEscape(*id)
	if *transfers {
		path += "/transfers?limit=200"
	}
	return fs.call(ctx, "GET", path, nil, stdout)
}

// paymentsList lists payments, newest first: one page, or with --all
// every page.
func paymentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("payments", stderr)
	filters := map[string]*string{}
	for _, f := range []struct{ name, param, usage string }{
		{"device", "device", "only this device's payments"},
		{"mandate", "mandate", "only the payments under this mandate"},
		{"status", "status", "only payments in this status (declined, authorized, partially_captured, captured, refunded, voided, expired)"},
		{"created-gte", "created_gte", "only payments created at or after this instant (RFC 3339)"},
		{"created-lt", "created_lt", "only payments created before this instant (RFC 3339)"},
		{"starting-after", "starting_after", "the page after this payment (the next_cursor of the page before)"},
	} {
		filters[f.param] = fs.String(f.name, "", f.usage)
	}
	limit := fs.Int("limit", 0, "payments a page (the API's default when 0)")
	all := fs.Bool("all", false, "follow next_cursor through every page and print all the payments")
	if err := fs.parse(args); err != nil {
		return err
	}
	c, err := fs.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for name, v := range filters {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	var data []json.RawMessage
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			HasMore    bool              `json:"has_more"`
			NextCursor string            `json:"next_cursor,omitempty"`
		}
		if err := c.do(ctx, "GET", "/v1/payments"+query(q), nil, &page); err != nil {
			return err
		}
		if !*all {
			return printJSON(stdout, page)
		}
		data = append(data, page.Data...)
		if !page.HasMore {
			break
		}
		q.Set("starting_after", page.NextCursor)
	}
	if data == nil {
		data = []json.RawMessage{}
	}
	return printJSON(stdout, map[string]any{"data": data, "has_more": false})
}

// byID is a command that takes one id, --flag, and calls method on
// path with the escaped id in place of its %s.
func byID(name, flag, method, path string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := operatorFlags(name, stderr)
		id := fs.String(flag, "", flag+" id (required)")
		if err := fs.parse(args, flag); err != nil {
			return err
		}
		return fs.call(ctx, method, fmt.Sprintf(path, url.PathEscape(*id)), nil, stdout)
	}
}
