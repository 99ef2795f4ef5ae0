package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay/payment/reconcile"
)

// The commands of the platform's intelligence: device state, product
// profiles (rules, risk, firmware), tariffs, dry runs, reviews, events and
// supply orders.

func deviceDesire(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("device desire", stderr)
	id := fs.String("device", "", "device id (required)")
	set := fs.String("set", "", "desired fields, k=v,… (an integer, true/false, or text)")
	unset := fs.String("unset", "", "desired fields to remove, comma-separated")
	ifVersion := fs.Uint64("if-version", 0, "refuse the change unless the state is at this version")
	clearTamper := fs.Bool("clear-tamper", false, "clear the tamper flag (the device was inspected)")
	if err := fs.parse(args, "device"); err != nil {
		return err
	}
	desired := map[string]any{}
	for _, kv := range list(*set) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set: %q is not k=v", kv)
		}
		desired[k] = scalar(v)
	}
	for _, k := range list(*unset) {
		desired[k] = nil
	}
	body := map[string]any{"if_version": *ifVersion, "clear_tamper": *clearTamper}
	if len(desired) > 0 {
		body["desired"] = desired
	}
	return fs.call(ctx, "PATCH", "/v1/devices/"+url.PathEscape(*id)+"/state", body, stdout)
}

// scalar reads a flag value as an integer, a boolean or text.
func scalar(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

// readJSONFile reads a JSON document from path ("-": standard input).
func readJSONFile(path string) (json.RawMessage, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s is not JSON", path)
	}
	return b, nil
}

func productProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("product profile", stderr)
	id := fs.String("product", "", "product id (required)")
	file := fs.String("file", "", "set a new version from this JSON file (rules, risk, firmware, inactivity_timeout_s; - for stdin)")
	version := fs.Int("version", 0, "show this version (default: the current one)")
	if err := fs.parse(args, "product"); err != nil {
		return err
	}
	path := "/v1/products/" + url.PathEscape(*id) + "/profile"
	if *file == "" {
		if *version > 0 {
			path += "?version=" + strconv.Itoa(*version)
		}
		return fs.call(ctx, "GET", path, nil, stdout)
	}
	body, err := readJSONFile(*file)
	if err != nil {
		return err
	}
	return fs.call(ctx, "PUT", path, body, stdout)
}

func productDryRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("product dry-run", stderr)
	id := fs.String("product", "", "product id (required)")
	event := fs.String("event", "", "event type (required)")
	num := fs.String("num", "", "numeric event fields, k=v,…")
	str := fs.String("str", "", "text event fields, k=v,…")
	dev := fs.String("device", "", "lend this device's state (firmware, tamper, battery, reported, meter reading)")
	at := fs.String("time", "", "evaluate at this time, RFC 3339 (default: now)")
	if err := fs.parse(args, "product", "event"); err != nil {
		return err
	}
	ev := map[string]any{"type": *event}
	nums := map[string]int64{}
	for _, kv := range list(*num) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("--num: %q is not k=<integer>", kv)
		}
		nums[k] = n
	}
	strs := map[string]string{}
	for _, kv := range list(*str) {
		k, v, _ := strings.Cut(kv, "=")
		strs[k] = v
	}
	ev["num"], ev["str"] = nums, strs
	body := map[string]any{"event": ev}
	if *dev != "" {
		body["device"] = *dev
	}
	if *at != "" {
		body["time"] = *at
	}
	return fs.call(ctx, "POST", "/v1/products/"+url.PathEscape(*id)+"/dry-run", body, stdout)
}

func tariffSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("tariff set", stderr)
	name := fs.String("name", "", "tariff name (required)")
	file := fs.String("file", "", "the tariff as JSON: currency, per_units, zone, bands (required; - for stdin)")
	if err := fs.parse(args, "name", "file"); err != nil {
		return err
	}
	body, err := readJSONFile(*file)
	if err != nil {
		return err
	}
	return fs.call(ctx, "PUT", "/v1/tariffs/"+url.PathEscape(*name), body, stdout)
}

func tariffList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("tariffs", stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	return fs.call(ctx, "GET", "/v1/tariffs", nil, stdout)
}

func reviewList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("reviews", stderr)
	status := fs.String("status", "pending", "pending, approved, declined, or all")
	if err := fs.parse(args); err != nil {
		return err
	}
	q := url.Values{}
	if *status != "all" {
		q.Set("status", *status)
	}
	return fs.call(ctx, "GET", "/v1/reviews?"+q.Encode(), nil, stdout)
}

func reviewDecide(action string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := operatorFlags("review "+action, stderr)
		id := fs.String("payment", "", "the payment held for review (required)")
		note := fs.String("note", "", "why, for the record")
		if err := fs.parse(args, "payment"); err != nil {
			return err
		}
		return fs.call(ctx, "POST", "/v1/reviews/"+url.PathEscape(*id)+"/"+action, map[string]any{"note": *note}, stdout)
	}
}

// listBy lists path's objects, of one device when --device is given.
func listBy(name, path string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := operatorFlags(name, stderr)
		dev := fs.String("device", "", "only this device's")
		limit := fs.Int("limit", 50, "how many, newest first")
		if err := fs.parse(args); err != nil {
			return err
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *dev != "" {
			q.Set("device", *dev)
		}
		return fs.call(ctx, "GET", path+"?"+q.Encode(), nil, stdout)
	}
}

func followUpList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("follow-ups", stderr)
	status := fs.String("status", "pending", "pending (retried with back-off) or failed (refused: someone must act)")
	limit := fs.Int("limit", 50, "how many, newest first")
	if err := fs.parse(args); err != nil {
		return err
	}
	return fs.call(ctx, "GET", "/v1/follow-ups?"+url.Values{"status": {*status}, "limit": {strconv.Itoa(*limit)}}.Encode(), nil, stdout)
}

func webhookCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("webhook create", stderr)
	u := fs.String("url", "", "the endpoint's http(s) URL (required)")
	events := fs.String("events", "", "event types, comma-separated: payment.succeeded, payment.*, device.*, … (default: all)")
	if err := fs.parse(args, "url"); err != nil {
		return err
	}
	return fs.call(ctx, "POST", "/v1/webhooks", map[string]any{"url": *u, "events": list(*events)}, stdout)
}

func webhookList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("webhooks", stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	return fs.call(ctx, "GET", "/v1/webhooks", nil, stdout)
}

func webhookDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("webhook deliveries", stderr)
	id := fs.String("webhook", "", "endpoint id (required)")
	status := fs.String("status", "", "pending, delivered or failed (default: all)")
	if err := fs.parse(args, "webhook"); err != nil {
		return err
	}
	q := url.Values{}
	if *status != "" {
		q.Set("status", *status)
	}
	return fs.call(ctx, "GET", "/v1/webhooks/"+url.PathEscape(*id)+"/deliveries?"+q.Encode(), nil, stdout)
}

// reconcileCmd uploads a connector's settlement report and prints what
// matched the ledger and what did not; it fails when anything did not.
func reconcileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("reconcile", stderr)
	name := fs.String("connector", "", "the connector whose settlement report it is (required)")
	file := fs.String("file", "", "the report: CSV, or ISO 20022 camt.053 XML (required; - for stdin)")
	format := fs.String("format", "", "csv or camt053 (default: from the file's extension)")
	from := fs.String("from", "", "the ledger's payments from this time, RFC 3339 (default: the report's dates less 7 days)")
	until := fs.String("until", "", "… until this time (default: the report's dates plus 7 days)")
	tolerance := fs.Duration("tolerance", 0, "how far apart the report's and the ledger's dates may be (default 72h)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.parse(args, "connector", "file"); err != nil {
		return err
	}
	var body io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		body = f
	}
	if *format == "" {
		*format = "csv"
		if strings.HasSuffix(strings.ToLower(*file), ".xml") {
			*format = "camt053"
		}
	}
	contentType := map[string]string{"csv": "text/csv", "camt053": "application/xml"}[*format]
	q := url.Values{"format": {*format}}
	for k, v := range map[string]string{"from": *from, "until": *until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *tolerance > 0 {
		q.Set("tolerance", tolerance.String())
	}
	c, err := fs.client()
	if err != nil {
		return err
	}
	var out struct {
		OK bool `json:"ok"`
		reconcile.Report
	}
	var raw json.RawMessage
	if err := c.send(ctx, "POST", "/v1/reconciliations/"+url.PathEscape(*name)+"?"+q.Encode(), body, contentType, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(stdout, raw); err != nil {
			return err
		}
	} else if err := out.Report.WriteText(stdout); err != nil {
		return err
	}
	if !out.OK {
		return fmt.Errorf("the report and the ledger differ")
	}
	return nil
}

func routingCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("routing", stderr)
	file := fs.String("file", "", "set the table from this JSON file ({\"rules\": [...], \"default\": [...]}; - for stdin)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *file == "" {
		return fs.call(ctx, "GET", "/v1/routing", nil, stdout)
	}
	body, err := readJSONFile(*file)
	if err != nil {
		return err
	}
	return fs.call(ctx, "PUT", "/v1/routing", body, stdout)
}
