package sim

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// WriteReport writes res as a self-contained HTML page: the run's
// parameters and summary, its errors by reason, and two charts drawn in
// inline SVG — throughput (events and payments a second) and latency
// (p50, p99) over time. No script, no external file.
func WriteReport(w io.Writer, res *Result) error {
	sec := make([]float64, len(res.Series))
	events, payments, errs := make([]float64, len(res.Series)), make([]float64, len(res.Series)), make([]float64, len(res.Series))
	p50, p99 := make([]float64, len(res.Series)), make([]float64, len(res.Series))
	for i, p := range res.Series {
		sec[i] = float64(p.T)
		events[i], payments[i], errs[i] = float64(p.Events), float64(p.Payments), float64(p.Errors)
		p50[i], p99[i] = p.P50Ms, p.P99Ms
	}
	reasons := make([]string, 0, len(res.Errors))
	for r := range res.Errors {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(res.Errors[b], res.Errors[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	type count struct {
		Reason string
		N      int64
	}
	var counts []count
	for _, r := range reasons {
		counts = append(counts, count{r, res.Errors[r]})
	}
	where := "in-process iotpayd"
	if res.Remote {
		where = "remote iotpayd"
	}
	rate := "as fast as possible"
	if res.Rate > 0 {
		rate = fmt.Sprintf("%g events/s", res.Rate)
	}
	return reportPage.Execute(w, map[string]any{
		"R": res, "Where": where, "Rate": rate, "Errors": counts,
		"Throughput": chart("throughput", "events / s", sec, []series{{"events/s", "#1f77b4", events},
			{"payments/s", "#2ca02c", payments}, {"errors/s", "#d62728", errs}}),
		"Latency": chart("latency", "ms", sec, []series{{"p50", "#1f77b4", p50}, {"p99", "#d62728", p99}}),
	})
}

// WriteSummary writes res for a person, in a few lines.
func WriteSummary(w io.Writer, res *Result) error {
	where := "an in-process platform"
	if res.Remote {
		where = "a remote platform"
	}
	rate := "as fast as possible"
	if res.Rate > 0 {
		rate = fmt.Sprintf("at %g events/s", res.Rate)
	}
	ledger := "balanced"
	if !res.LedgerBalanced {
		ledger = "NOT BALANCED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d devices (%s), %s, %s on %s, %s, %d in flight at most, %d connections at most\n",
		res.Devices, res.Mix, res.Suite, res.Transport, where, rate, res.Concurrency, res.Connections)
	fmt.Fprintf(&b, "setup      %.1f s (enrollment %.1f s, first connections %.1f s)\n", res.SetupS, res.EnrollS, res.ConnectS)
	fmt.Fprintf(&b, "events     %s in %.1f s: %.0f/s; payments %s: %.0f/s\n", group(res.Events), res.DurationS, res.EventsPerSec,
		group(res.Payments), res.PaymentsPerSec)
	fmt.Fprintf(&b, "latency    p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n", res.P50Ms, res.P95Ms, res.P99Ms, res.MaxMs)
	var outcomes []string
	for _, k := range slices.Sorted(maps.Keys(res.Outcomes)) {
		outcomes = append(outcomes, fmt.Sprintf("%s %s", k, group(res.Outcomes[k])))
	}
	fmt.Fprintf(&b, "outcomes   %s\n", strings.Join(outcomes, ", "))
	for _, r := range slices.Sorted(maps.Keys(res.Errors)) {
		fmt.Fprintf(&b, "           %8s  %s\n", group(res.Errors[r]), r)
	}
	if res.Connects > 0 {
		fmt.Fprintf(&b, "connects   %s during the run (p50 %.1f ms, p99 %.1f ms), %s to make room, %s after a failure\n",
			group(res.Connects), res.ConnectP50Ms, res.ConnectP99Ms, group(res.Evictions), group(res.Drops))
	}
	if res.Behind > 0 {
		fmt.Fprintf(&b, "behind     %s events due at the rate were not sent: every device or slot was busy\n", group(res.Behind))
	}
	fmt.Fprintf(&b, "ledger     %s\n", ledger)
	if res.Interrupted {
		b.WriteString("(interrupted before the end)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// series is one line of a chart.
type series struct {
	name, color string
	y           []float64
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH             = 820, 280
	padL, padR, padT, padB     = 64, 16, 28, 40
	plotW, plotH               = chartW - padL - padR, chartH - padT - padB
	chartTicks                 = 5
	chartLegendX, chartLegendW = padL + 8, 110
)

// chart draws the lines of ss against x as an SVG element.
func chart(title, unit string, x []float64, ss []series) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fff" stroke="#ccc"/>`, padL, padT, plotW, plotH)
	xMax, yMax := 1.0, 0.0
	for _, v := range x {
		xMax = max(xMax, v)
	}
	for _, s := range ss {
		for _, v := range s.y {
			yMax = max(yMax, v)
		}
	}
	yMax = niceCeil(yMax)
	px := func(v float64) float64 { return padL + v/xMax*plotW }
	py := func(v float64) float64 { return padT + plotH - v/yMax*plotH }
	for i := 0; i <= chartTicks; i++ {
		v := yMax * float64(i) / chartTicks
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-6, y, tick(v))
	}
	step := niceCeil(xMax / chartTicks)
	for xv := 0.0; xv <= xMax; xv += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(xv), padT+plotH+16, tick(xv))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="middle">seconds</text>`, padL+plotW/2, chartH-6)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`, padL, padT-10, template.HTMLEscapeString(title+" ("+unit+")"))
	for k, s := range ss {
		var pts []string
		for i, v := range s.y {
			if i < len(x) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x[i]), py(v)))
			}
		}
		if len(pts) == 1 { // one second: a dot's worth of line
			pts = append(pts, pts[0])
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`, s.color, strings.Join(pts, " "))
		lx := chartLegendX + k*chartLegendW
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="3" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			lx, padT+10, s.color, lx+18, padT+14, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 at least).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	if v == math.Trunc(v) {
		return group(int64(v))
	}
	return fmt.Sprintf("%.2g", v)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{"group": group}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>iotpay sim: {{.R.Devices}} devices, {{.R.Transport}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
.bad{color:#b00;font-weight:bold}.good{color:#070;font-weight:bold}
</style></head><body>
<h1>iotpay sim: {{group (.R.Events)}} events from {{.R.Devices}} devices</h1>
<h2>Parameters</h2>
<table>
<tr><th>platform</th><td>{{.Where}}</td></tr>
<tr><th>devices</th><td>{{.R.Devices}} ({{.R.Mix}})</td></tr>
<tr><th>suite</th><td>{{.R.Suite}}</td></tr>
<tr><th>transport</th><td>{{.R.Transport}}, at most {{.R.Connections}} connections open</td></tr>
<tr><th>rate</th><td>{{.Rate}}, ramp-up {{.R.RampUpS}} s, at most {{.R.Concurrency}} events in flight</td></tr>
<tr><th>duration</th><td>{{printf "%.1f" .R.DurationS}} s{{if .R.Interrupted}} (interrupted){{end}}</td></tr>
<tr><th>setup</th><td>{{printf "%.1f" .R.SetupS}} s: enrollment {{printf "%.1f" .R.EnrollS}} s, first connections {{printf "%.1f" .R.ConnectS}} s</td></tr>
</table>
<h2>Summary</h2>
<table>
<tr><th>events</th><td class="n">{{group .R.Events}}</td><th>events/s</th><td class="n">{{.R.EventsPerSec}}</td></tr>
<tr><th>payments</th><td class="n">{{group .R.Payments}}</td><th>payments/s</th><td class="n">{{.R.PaymentsPerSec}}</td></tr>
<tr><th>p50</th><td class="n">{{.R.P50Ms}} ms</td><th>p95</th><td class="n">{{.R.P95Ms}} ms</td></tr>
<tr><th>p99</th><td class="n">{{.R.P99Ms}} ms</td><th>max</th><td class="n">{{.R.MaxMs}} ms</td></tr>
<tr><th>connects during the run</th><td class="n">{{group .R.Connects}}</td><th>connect p50 / p99</th><td class="n">{{.R.ConnectP50Ms}} / {{.R.ConnectP99Ms}} ms</td></tr>
<tr><th>behind the rate</th><td class="n">{{group .R.Behind}}</td><th>ledger</th><td>{{if .R.LedgerBalanced}}<span class="good">balanced</span>{{else}}<span class="bad">NOT balanced</span>{{end}}</td></tr>
</table>
<h2>Outcomes</h2>
<table>{{range $k, $v := .R.Outcomes}}<tr><th>{{$k}}</th><td class="n">{{group $v}}</td></tr>{{end}}</table>
{{if .Errors}}<h2>Not approved, by reason</h2>
<table>{{range .Errors}}<tr><td>{{.Reason}}</td><td class="n">{{group .N}}</td></tr>{{end}}</table>{{end}}
<h2>Over time</h2>
{{.Throughput}}
{{.Latency}}
<p>Latency is from signing a request to its signed receipt verified by the device, on an open transport; a sleepy device's connection is measured apart.</p>
</body></html>
`))
