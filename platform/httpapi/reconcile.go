package httpapi

import (
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/reconcile"
	"github.com/iotpay/iotpay/platform"
)

// Bounds of a reconciliation.
const (
	// ReportBytesMax bounds a settlement report's upload.
	ReportBytesMax = 64 << 20
	// ReconcilePaymentsMax bounds the payments one reconciliation reads.
	ReconcilePaymentsMax = 1_000_000
	// ReconcileWindowDefault is how far before the report's first date
	// and after its last the ledger's payments are taken, by default.
	ReconcileWindowDefault = 7 * 24 * time.Hour
)

// reconcileView is a reconciliation's answer: the report and whether it
// is clean.
type reconcileView struct {
	OK bool `json:"ok"`
	*reconcile.Report
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
}

// reconcileReport matches a connector's settlement report (the body: CSV,
// or ISO 20022 camt.053 XML) against the ledger's payments at that
// connector, and answers matched, missing, unexpected and mismatched
// items. It writes nothing.
func (s *Server) reconcileReport(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	name := r.PathValue("connector")
	if !s.knownConnector(name) || name == "wallet" {
		return iotpay.Errorf(iotpay.EINVALID, "unknown connector %q", name)
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch ct {
		case "text/csv":
			format = "csv"
		case "application/xml", "text/xml":
			format = "camt053"
		}
	}
	tolerance := time.Duration(0)
	if v := q.Get("tolerance"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 31*24*time.Hour {
			return iotpay.Errorf(iotpay.EINVALID, "tolerance must be a duration up to 744h, such as 72h")
		}
		tolerance = d
	}
	body := io.LimitReader(r.Body, ReportBytesMax+1)
	var items []reconcile.Item
	var err error
	switch format {
	case "csv":
		items, err = reconcile.ParseCSV(body)
	case "camt053":
		items, err = reconcile.ParseCamt053(body)
	default:
		return iotpay.Errorf(iotpay.EINVALID, "format must be csv or camt053 (or Content-Type text/csv or application/xml)")
	}
	if err != nil {
		return err
	}
	from, until, err := window(q, items)
	if err != nil {
		return err
	}
	var exp []reconcile.Expected
	err = s.Processor.Store.View(r.Context(), func(tx platform.Tx) error {
		ps, err := tx.ConnectorPayments(r.Context(), tenant, name, from, until, ReconcilePaymentsMax)
		for _, p := range ps {
			if p.Captured > 0 {
				exp = append(exp, reconcile.Expected{Ref: p.ConnectorRef, Payment: string(p.ID), Kind: reconcile.KindCapture,
					Amount: iotpay.Money{Amount: p.Captured, Currency: p.Currency}, Date: p.Created})
			}
			if p.Refunded > 0 {
				exp = append(exp, reconcile.Expected{Ref: p.ConnectorRef, Payment: string(p.ID), Kind: reconcile.KindRefund,
					Amount: iotpay.Money{Amount: p.Refunded, Currency: p.Currency}, Date: p.Updated})
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	rep := reconcile.Match(items, exp, reconcile.Options{DateTolerance: tolerance})
	writeJSON(w, http.StatusOK, reconcileView{OK: rep.OK(), Report: rep, From: from, Until: until})
	return nil
}

// window is the span of the ledger a report is matched against: ?from
// and ?until, or the report's dates widened by ReconcileWindowDefault.
func window(q map[string][]string, items []reconcile.Item) (from, until time.Time, err error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, it := range items {
		if from.IsZero() || it.Date.Before(from) {
			from = it.Date
		}
		if it.Date.After(until) {
			until = it.Date
		}
	}
	if from.IsZero() {
		from, until = time.Now().Add(-ReconcileWindowDefault), time.Now()
	}
	from, until = from.Add(-ReconcileWindowDefault), until.Add(ReconcileWindowDefault)
	for k, t := range map[string]*time.Time{"from": &from, "until": &until} {
		if v := get(k); v != "" {
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				return from, until, iotpay.Errorf(iotpay.EINVALID, "%s must be an RFC 3339 time", k)
			}
		}
	}
	if !until.After(from) {
		return from, until, iotpay.Errorf(iotpay.EINVALID, "until must be after from")
	}
	return from, until, nil
}
