package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/registry"
)

// Idempotency keys.
const (
	// IdempotencyKeyLenMax bounds an Idempotency-Key header.
	IdempotencyKeyLenMax = 255
	// IdempotencyTTL is how long a key's result is kept for repeats.
	IdempotencyTTL = 24 * time.Hour
)

// write runs an operator's POST as one operation of the single writer:
// the body is decoded strictly into in (nil: the body must be empty or
// {}), then committed (see commit).
func (s *Server) write(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID, in any,
	fn func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error)) error {
	raw, err := readBody(r, in)
	if err != nil {
		return err
	}
	return s.commit(w, r, tenant, raw, fn)
}

// commit runs fn, the work of a POST whose body is raw, as one operation
// of the single writer, with a context whose writes join the operation.
// With an Idempotency-Key header the result is kept with the key, scoped
// to scope (the tenant), in the same transaction. A repeat with the same
// key and the same request gets the kept result (header
// Idempotent-Replayed: true); the same key with another request is
// refused. A request that fails changes nothing, so its key keeps
// nothing: a repeat runs again.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, scope iotpay.TenantID, raw []byte,
	fn func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error)) error {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > IdempotencyKeyLenMax || !printable(key) {
		return iotpay.Errorf(iotpay.EINVALID, "Idempotency-Key must be at most %d printable characters", IdempotencyKeyLenMax)
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(raw)
	hash := h.Sum(nil)
	var status int
	var body []byte
	var replayed bool
	err := s.Payments.Do(r.Context(), func(b *ledger.Batch[platform.Tx]) error {
		ctx := platform.WithBatch(b.Context(), b)
		if key != "" {
			rec, err := b.Tx.Idempotency(ctx, scope, key)
			switch {
			case err == nil && live(rec, b.Now):
				if !bytes.Equal(rec.RequestHash, hash) {
					return iotpay.Errorf(iotpay.EINVALID, "Idempotency-Key already used for another request")
				}
				status, body, replayed = rec.Status, rec.Body, true
				return nil
			case err != nil && iotpay.ErrorCode(err) != iotpay.ENOTFOUND:
				return err
			}
		}
		st, v, err := fn(ctx, b)
		if err != nil {
			return err
		}
		if body, err = json.Marshal(v); err != nil {
			return err
		}
		status = st
		if key == "" {
			return nil
		}
		return b.Tx.PutIdempotency(ctx, &payment.IdempotencyRecord{Tenant: scope, Key: key, RequestHash: hash,
			Status: status, Body: body, Created: b.Now})
	})
	if err != nil {
		return err
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
	return nil
}

// kept reports whether an answer is kept for the request's
// Idempotency-Key (a repeat, answered from it by commit).
func (s *Server) kept(r *http.Request, tenant iotpay.TenantID) bool {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return false
	}
	err := s.Payments.Store.View(r.Context(), func(tx platform.Tx) error {
		rec, err := tx.Idempotency(r.Context(), tenant, key)
		if err == nil && !live(rec, time.Now()) {
			return iotpay.Errorf(iotpay.ENOTFOUND, "expired")
		}
		return err
	})
	return err == nil
}

// live reports whether a kept answer still answers its key at now.
func live(rec *payment.IdempotencyRecord, now time.Time) bool {
	return rec.Created.After(now.Add(-IdempotencyTTL))
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// page is one page of a listing: Data, and the cursor of the next page
// when HasMore.
type page[T any] struct {
	Data       []T    `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// paginate makes a page from up to limit+1 items fetched.
func paginate[T any](items []T, limit int, cursor func(T) string) page[T] {
	p := page[T]{Data: items}
	if len(items) > limit {
		p.Data, p.HasMore = items[:limit], true
		p.NextCursor = cursor(p.Data[limit-1])
	}
	if p.Data == nil {
		p.Data = []T{}
	}
	return p
}

// accountView is an account as the API shows it.
type accountView struct {
	ID        iotpay.AccountID `json:"id"`
	Name      string           `json:"name"`
	Kind      string           `json:"kind"`
	Currency  iotpay.Currency  `json:"currency"`
	Normal    string           `json:"normal_balance"`
	Overdraft bool             `json:"overdraft_allowed"`
	// Balance is posted, on the normal side; Available less the holds.
	Balance   int64          `json:"balance"`
	Available int64          `json:"available"`
	Totals    ledger.Balance `json:"totals"`
	Created   time.Time      `json:"created"`
	// Sources are the payment systems the account is an instrument at
	// (its creation's answer only).
	Sources []string `json:"sources,omitempty"`
}

func viewAccount(a *ledger.Account) accountView {
	return accountView{ID: a.ID, Name: a.Name, Kind: a.Kind, Currency: a.Currency, Normal: a.Normal.String(),
		Overdraft: a.Flags&ledger.Overdraft != 0, Balance: a.Posted(a.Normal), Available: a.Available(a.Normal),
		Totals: a.Balance, Created: a.Created}
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Name     string          `json:"name"`
		Kind     string          `json:"kind"`
		Currency iotpay.Currency `json:"currency"`
		// Sources makes a payer account an instrument at external payment
		// systems: its reference at each, by connector name.
		Sources map[string]string `json:"sources"`
	}
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		var a *ledger.Account
		var err error
		if in.Sources != nil {
			if in.Kind != payment.KindPayer {
				return 0, nil, iotpay.Errorf(iotpay.EINVALID, "only a payer account has sources")
			}
			a, err = payment.CreateExternalAccount(b, tenant, in.Name, in.Currency, in.Sources, s.knownConnector)
		} else {
			a, err = payment.CreateAccount(b, tenant, in.Name, in.Kind, in.Currency)
		}
		if err != nil {
			return 0, nil, err
		}
		v := viewAccount(a)
		for c := range in.Sources {
			v.Sources = append(v.Sources, c)
		}
		slices.Sort(v.Sources)
		return http.StatusCreated, v, nil
	})
}

// knownConnector reports whether an external connector of that name is
// configured.
func (s *Server) knownConnector(name string) bool {
	return name == payment.WalletConnector || s.Payments.Router != nil && s.Payments.Router.Known(name)
}

// accountKinds are the kinds ?kind may name.
var accountKinds = []string{payment.KindPayer, payment.KindMerchant, payment.KindFunding,
	payment.KindOperator, payment.KindPlatform}

// queryEnum reads an optional query parameter that must be one of allowed.
func queryEnum[T ~string](r *http.Request, name string, allowed ...T) (T, error) {
	v := T(r.URL.Query().Get(name))
	if v != "" && !slices.Contains(allowed, v) {
		return "", iotpay.Errorf(iotpay.EINVALID, "%s must be one of %v", name, allowed)
	}
	return v, nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	f := ledger.AccountFilter{Limit: limit + 1}
	if f.Kind, err = queryEnum(r, "kind", accountKinds...); err != nil {
		return err
	}
	if f.After, err = queryID[iotpay.AccountID](r, "starting_after", iotpay.PrefixAccount); err != nil {
		return err
	}
	as, err := s.Payments.Accounts(r.Context(), tenant, f)
	if err != nil {
		return err
	}
	vs := make([]accountView, len(as))
	for i, a := range as {
		vs[i] = viewAccount(a)
	}
	writeJSON(w, http.StatusOK, paginate(vs, limit, func(a accountView) string { return string(a.ID) }))
	return nil
}

// accountByID returns one of the tenant's accounts as the API shows it.
func (s *Server) accountByID(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (accountView, error) {
	a, err := s.Payments.Account(ctx, tenant, id)
	if err != nil {
		return accountView{}, err
	}
	return viewAccount(a), nil
}

// account loads the account the path names.
func (s *Server) account(r *http.Request, tenant iotpay.TenantID) (*ledger.Account, error) {
	id, err := pathID[iotpay.AccountID](r, iotpay.PrefixAccount)
	if err != nil {
		return nil, err
	}
	return s.Payments.Account(r.Context(), tenant, id)
}

// getBalance is an account's balance now, or as of a transfer
// (?as_of_seq=) or an instant (?as_of=, RFC 3339).
func (s *Server) getBalance(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	a, err := s.account(r, tenant)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	out := map[string]any{"account": a.ID, "currency": a.Currency}
	var asOf ledger.AsOf
	if v := q.Get("as_of_seq"); v != "" {
		if asOf.Seq, err = strconv.ParseInt(v, 10, 64); err != nil || asOf.Seq <= 0 {
			return iotpay.Errorf(iotpay.EINVALID, "as_of_seq must be a positive transfer sequence number")
		}
		out["as_of_seq"] = asOf.Seq
	}
	if v := q.Get("as_of"); v != "" {
		if asOf.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return iotpay.Errorf(iotpay.EINVALID, "as_of must be an RFC 3339 time")
		}
		out["as_of"] = asOf.Time
	}
	bal := a.Balance
	if asOf != (ledger.AsOf{}) {
		if bal, err = s.Payments.BalanceAt(r.Context(), tenant, a.ID, asOf); err != nil {
			return err
		}
	}
	out["balance"], out["available"], out["totals"] = bal.Posted(a.Normal), bal.Available(a.Normal), bal
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) fundAccount(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Amount int64 `json:"amount"`
	}
	id, err := pathID[iotpay.AccountID](r, iotpay.PrefixAccount)
	if err != nil {
		return err
	}
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		t, err := payment.Fund(b, tenant, id, in.Amount)
		return http.StatusCreated, t, err
	})
}

// listTransfers lists the transfers f selects, oldest first; the cursor
// is a transfer's seq.
func (s *Server) listTransfers(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID, f ledger.TransferFilter) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	if v := r.URL.Query().Get("starting_after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterSeq < 0 {
			return iotpay.Errorf(iotpay.EINVALID, "starting_after must be a transfer sequence number")
		}
	}
	f.Limit = limit + 1
	ts, err := s.Payments.Transfers(r.Context(), tenant, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(ts, limit, func(t *ledger.Transfer) string { return strconv.FormatInt(t.Seq, 10) }))
	return nil
}

func (s *Server) listAccountTransfers(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	a, err := s.account(r, tenant)
	if err != nil {
		return err
	}
	ref := r.URL.Query().Get("ref")
	if len(ref) > ledger.RefLenMax {
		return iotpay.Errorf(iotpay.EINVALID, "ref must be at most %d bytes", ledger.RefLenMax)
	}
	return s.listTransfers(w, r, tenant, ledger.TransferFilter{Account: a.ID, Ref: ref})
}

func (s *Server) listPaymentTransfers(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	p, err := s.payment(r, tenant)
	if err != nil {
		return err
	}
	return s.listTransfers(w, r, tenant, ledger.TransferFilter{Ref: string(p.ID)})
}

// mandateIn is what creating a mandate takes.
type mandateIn struct {
	Device     iotpay.DeviceID    `json:"device"`
	Payer      iotpay.AccountID   `json:"payer"`
	Currency   iotpay.Currency    `json:"currency"`
	PerPayment int64              `json:"per_payment_limit"`
	PerDay     int64              `json:"daily_limit"`
	PerMonth   int64              `json:"monthly_limit"`
	Products   []iotpay.ProductID `json:"products"`
	Categories []string           `json:"categories"`
	ValidFrom  time.Time          `json:"valid_from"`
	ValidTo    time.Time          `json:"valid_to"`
}

func (s *Server) createMandate(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in mandateIn
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		if err := bodyID(in.Device, iotpay.PrefixDevice, "device"); err != nil {
			return 0, nil, err
		}
		if _, err := s.Registry.Device(ctx, tenant, in.Device); err != nil {
			return 0, nil, err
		}
		m := &payment.Mandate{Tenant: tenant, Device: in.Device, Payer: in.Payer, Currency: in.Currency,
			PerPayment: in.PerPayment, PerDay: in.PerDay, PerMonth: in.PerMonth, Products: in.Products,
			Categories: in.Categories, ValidFrom: in.ValidFrom, ValidTo: in.ValidTo}
		return http.StatusCreated, m, payment.CreateMandate(b, m)
	})
}

var mandateStatuses = []payment.MandateStatus{payment.MandateActive, payment.MandateSuspended, payment.MandateRevoked}

func (s *Server) listMandates(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	f := payment.MandateFilter{Limit: limit + 1}
	if f.Device, err = queryID[iotpay.DeviceID](r, "device", iotpay.PrefixDevice); err != nil {
		return err
	}
	if f.Status, err = queryEnum(r, "status", mandateStatuses...); err != nil {
		return err
	}
	if f.After, err = queryID[iotpay.MandateID](r, "starting_after", iotpay.PrefixMandate); err != nil {
		return err
	}
	ms, err := s.Payments.Mandates(r.Context(), tenant, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(ms, limit, func(m *payment.Mandate) string { return string(m.ID) }))
	return nil
}

func (s *Server) mandateStatus(to payment.MandateStatus) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
		id, err := pathID[iotpay.MandateID](r, iotpay.PrefixMandate)
		if err != nil {
			return err
		}
		return s.write(w, r, tenant, nil, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
			m, err := payment.SetMandateStatus(b, tenant, id, to)
			return http.StatusOK, m, err
		})
	}
}

// holdSecondsMax bounds hold_seconds.
const holdSecondsMax = int64(payment.HoldTimeoutMax / time.Second)

// createPayment authorizes a payment for a device, under its mandate, at
// the operator's request (an EV session opened from the operator's
// backend): the device's product names the merchant. A declined payment
// is created too, with its decline_code. A revoked device pays no more.
func (s *Server) createPayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Device      iotpay.DeviceID `json:"device"`
		Amount      int64           `json:"amount"`
		Currency    iotpay.Currency `json:"currency"`
		Capture     bool            `json:"capture"`
		HoldSeconds int64           `json:"hold_seconds"`
	}
	raw, err := readBody(r, &in)
	if err != nil {
		return err
	}
	if err := bodyID(in.Device, iotpay.PrefixDevice, "device"); err != nil {
		return err
	}
	if in.HoldSeconds < 0 || in.HoldSeconds > holdSecondsMax {
		return iotpay.Errorf(iotpay.EINVALID, "hold_seconds must be between 1 and %d (0: the default)", holdSecondsMax)
	}
	d, err := s.Registry.Device(r.Context(), tenant, in.Device)
	if err != nil {
		return err
	}
	if d.Status == registry.DeviceRevoked {
		return iotpay.Errorf(iotpay.ECONFLICT, "device %s is revoked", d.ID)
	}
	prod, err := s.Registry.Product(r.Context(), tenant, d.Product)
	if err != nil {
		return err
	}
	req := &payment.AuthRequest{ID: iotpay.PaymentID(iotpay.NewID(iotpay.PrefixPayment, time.Now(), nil)), Tenant: tenant, Device: d.ID,
		Product: prod.ID, Category: prod.Category, Merchant: prod.Merchant, Amount: iotpay.Money{Amount: in.Amount, Currency: in.Currency},
		Capture: in.Capture, HoldTimeout: time.Duration(in.HoldSeconds) * time.Second}
	// At an external payment system first, outside the writer; then booked.
	// Its key there is the payment id's: a repeat of the request with the
	// same Idempotency-Key is answered from what was kept (and not sent
	// there again), and a retry after every system failed is a new
	// payment, while what the first may have left there is released by
	// its own key.
	if !s.kept(r, tenant) {
		if req.External, err = s.Payments.Route(r.Context(), req); err != nil {
			return err
		}
	}
	var made *payment.Payment
	err = s.commit(w, r, tenant, raw, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		p, err := s.Payments.Authorize(b, req)
		made = p
		return http.StatusCreated, p, err
	})
	if x := req.External; x != nil && x.Result.Status != connector.Declined && (made == nil || made.Status == payment.StatusDeclined) {
		// Authorized outside but not booked (the mandate changed in
		// between, the store failed, or a concurrent repeat of the
		// request was kept first): released there too.
		if verr := s.Payments.ReleaseUnbooked(r.Context(), tenant, req.ID, x); verr != nil {
			s.log().Error("an authorization not booked was not voided at its payment system", "payment", req.ID,
				"connector", x.Connector, "ref", x.Result.Ref, "err", verr)
		}
	}
	return err
}

var paymentStatuses = []payment.Status{payment.StatusDeclined, payment.StatusAuthorized, payment.StatusPartiallyCaptured,
	payment.StatusCaptured, payment.StatusRefunded, payment.StatusVoided, payment.StatusExpired}

// listPayments lists payments newest first; starting_after is the last
// payment of the page before.
func (s *Server) listPayments(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	f := payment.Filter{Limit: limit + 1}
	if f.Device, err = queryID[iotpay.DeviceID](r, "device", iotpay.PrefixDevice); err != nil {
		return err
	}
	if f.Mandate, err = queryID[iotpay.MandateID](r, "mandate", iotpay.PrefixMandate); err != nil {
		return err
	}
	if f.Before, err = queryID[iotpay.PaymentID](r, "starting_after", iotpay.PrefixPayment); err != nil {
		return err
	}
	if f.Status, err = queryEnum(r, "status", paymentStatuses...); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		t    *time.Time
	}{{"created_gte", &f.Since}, {"created_lt", &f.Until}} {
		if v := r.URL.Query().Get(c.name); v != "" {
			if *c.t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return iotpay.Errorf(iotpay.EINVALID, "%s must be an RFC 3339 time", c.name)
			}
		}
	}
	ps, err := s.Payments.Payments(r.Context(), tenant, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(ps, limit, func(p *payment.Payment) string { return string(p.ID) }))
	return nil
}

// payment loads the payment the path names.
func (s *Server) payment(r *http.Request, tenant iotpay.TenantID) (*payment.Payment, error) {
	id, err := pathID[iotpay.PaymentID](r, iotpay.PrefixPayment)
	if err != nil {
		return nil, err
	}
	return s.Payments.Payment(r.Context(), tenant, id)
}

// paymentOp runs an operation on the payment the path names, with the
// body decoded into in (nil: no body).
func (s *Server) paymentOp(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID, in any, op string,
	forward func(id iotpay.PaymentID) (amount int64, final bool),
	fn func(b *ledger.Batch[platform.Tx], id iotpay.PaymentID) (*payment.Payment, error)) error {
	id, err := pathID[iotpay.PaymentID](r, iotpay.PrefixPayment)
	if err != nil {
		return err
	}
	raw, err := readBody(r, in)
	if err != nil {
		return err
	}
	// A payment an external payment system holds changes there first.
	amount, final := forward(id)
	if err := s.Payments.Forward(r.Context(), tenant, id, op, amount, final, r.Header.Get("Idempotency-Key")); err != nil {
		return err
	}
	return s.commit(w, r, tenant, raw, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		p, err := fn(b, id)
		return http.StatusOK, p, err
	})
}

func (s *Server) capturePayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Amount int64 `json:"amount"`
		Final  *bool `json:"final"`
	}
	final := func() bool { return in.Final == nil || *in.Final }
	return s.paymentOp(w, r, tenant, &in, payment.OpCapture, func(iotpay.PaymentID) (int64, bool) { return in.Amount, final() },
		func(b *ledger.Batch[platform.Tx], id iotpay.PaymentID) (*payment.Payment, error) {
			return s.Payments.Capture(b, tenant, id, in.Amount, final())
		})
}

func (s *Server) incrementPayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Amount int64 `json:"amount"`
	}
	return s.paymentOp(w, r, tenant, &in, payment.OpIncrement, func(iotpay.PaymentID) (int64, bool) { return in.Amount, false },
		func(b *ledger.Batch[platform.Tx], id iotpay.PaymentID) (*payment.Payment, error) {
			return s.Payments.Increment(b, tenant, id, in.Amount)
		})
}

func (s *Server) voidPayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	return s.paymentOp(w, r, tenant, nil, payment.OpVoid, func(iotpay.PaymentID) (int64, bool) { return 0, true },
		func(b *ledger.Batch[platform.Tx], id iotpay.PaymentID) (*payment.Payment, error) {
			return s.Payments.Void(b, tenant, id)
		})
}

func (s *Server) refundPayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Amount int64 `json:"amount"`
	}
	return s.paymentOp(w, r, tenant, &in, payment.OpRefund, func(iotpay.PaymentID) (int64, bool) { return in.Amount, false },
		func(b *ledger.Batch[platform.Tx], id iotpay.PaymentID) (*payment.Payment, error) {
			return s.Payments.Refund(b, tenant, id, in.Amount)
		})
}

func (s *Server) ledgerCheck(w http.ResponseWriter, r *http.Request, _ iotpay.TenantID) error {
	rep, err := s.Payments.Check(r.Context())
	if err != nil {
		return err
	}
	// The check spans every tenant: a tenant sees only whether it holds.
	writeJSON(w, http.StatusOK, map[string]bool{"balanced": rep.Balanced})
	return nil
}
