// Package httpapi is the platform's JSON HTTP API: operator calls
// authenticated by API key (tenant-scoped), and device enrollment
// authenticated by a one-time token.
package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/registry"
)

// RequestBytesMax bounds a request body.
const RequestBytesMax = 64 << 10

// Server serves the API.
type Server struct {
	Registry *registry.Service
	Payments *payment.Service
	// OnRevoke is told of every revoked device, to drop its live sessions.
	OnRevoke func(iotpay.DeviceID)
	Logger   *slog.Logger
}

// statusOf is the one mapping from error codes to HTTP statuses.
var statusOf = map[iotpay.Code]int{
	iotpay.EINVALID:      http.StatusBadRequest,
	iotpay.ENOTFOUND:     http.StatusNotFound,
	iotpay.ECONFLICT:     http.StatusConflict,
	iotpay.EUNAUTHORIZED: http.StatusUnauthorized,
	iotpay.EREPLAY:       http.StatusConflict,
	iotpay.EDECLINED:     http.StatusPaymentRequired,
	iotpay.EUNAVAILABLE:  http.StatusServiceUnavailable,
	iotpay.EINTERNAL:     http.StatusInternalServerError,
}

type tenantKey struct{}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /v1/enroll", s.enroll)
	op := func(pattern string, h func(http.ResponseWriter, *http.Request, iotpay.TenantID) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			tenant, err := s.authenticate(r)
			if err == nil {
				err = h(w, r, tenant)
			}
			if err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	op("POST /v1/products", s.createProduct)
	op("GET /v1/products/{id}", s.getProduct)
	op("POST /v1/devices", s.createDevice)
	op("GET /v1/devices", s.listDevices)
	op("GET /v1/devices/{id}", s.getDevice)
	op("POST /v1/devices/{id}/revoke", s.revokeDevice)
	op("POST /v1/accounts", s.createAccount)
	op("GET /v1/accounts", s.listAccounts)
	op("GET /v1/accounts/{id}", s.getAccount)
	op("POST /v1/accounts/{id}/fund", s.fundAccount)
	op("GET /v1/accounts/{id}/transfers", s.listTransfers)
	op("POST /v1/bindings", s.createBinding)
	op("GET /v1/payments", s.listPayments)
	op("GET /v1/payments/{id}", s.getPayment)
	op("GET /v1/ledger/check", s.ledgerCheck)
	return mux
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) authenticate(r *http.Request) (iotpay.TenantID, error) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", iotpay.Errorf(iotpay.EUNAUTHORIZED, "missing API key (Authorization: Bearer …)")
	}
	return s.Registry.Authenticate(r.Context(), strings.TrimSpace(key))
}

// decode reads one JSON object into v: bounded, no unknown fields, nothing after it.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, RequestBytesMax+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body: trailing data")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := iotpay.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == iotpay.EINTERNAL || code == iotpay.EUNAVAILABLE {
		s.log().Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]any{"code": code, "message": iotpay.ErrorMessage(err)})
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Device iotpay.DeviceID `json:"device"`
		Token  string          `json:"token"`
		CSR    string          `json:"csr"`
	}
	err := decode(r, &in)
	var en *registry.Enrollment
	if err == nil {
		en, err = s.Registry.Enroll(r.Context(), in.Device, in.Token, []byte(in.CSR))
	}
	if err != nil {
		s.log().Info("enrollment refused", "device", in.Device, "err", err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, en)
}

func (s *Server) createProduct(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var p registry.Product
	if err := decode(r, &p); err != nil {
		return err
	}
	p.Tenant = tenant
	// The merchant account must be the tenant's own.
	if _, err := s.Payments.Account(r.Context(), tenant, p.Merchant); err != nil {
		return err
	}
	if err := s.Registry.CreateProduct(r.Context(), &p); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Server) getProduct(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	p, err := s.Registry.Product(r.Context(), tenant, iotpay.ProductID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Product iotpay.ProductID `json:"product"`
		Name    string           `json:"name"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	d, token, err := s.Registry.CreateDevice(r.Context(), tenant, in.Product, in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"device": d, "enrollment_token": token})
	return nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	ds, err := s.Registry.Devices(r.Context(), tenant, iotpay.DeviceID(r.URL.Query().Get("after")), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": nonNil(ds)})
	return nil
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	d, err := s.Registry.Device(r.Context(), tenant, iotpay.DeviceID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	d, err := s.Registry.Revoke(r.Context(), tenant, iotpay.DeviceID(r.PathValue("id")))
	if err != nil {
		return err
	}
	if s.OnRevoke != nil {
		s.OnRevoke(d.ID)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Name     string              `json:"name"`
		Kind     payment.AccountKind `json:"kind"`
		Currency iotpay.Currency     `json:"currency"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Kind == payment.Funding {
		return iotpay.Errorf(iotpay.EINVALID, "funding accounts are opened by the platform")
	}
	a, err := s.Payments.CreateAccount(r.Context(), tenant, in.Name, in.Kind, in.Currency)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a)
	return nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	as, err := s.Payments.Accounts(r.Context(), tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": nonNil(as)})
	return nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	a, err := s.Payments.Account(r.Context(), tenant, iotpay.AccountID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) fundAccount(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Amount int64 `json:"amount"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	t, err := s.Payments.Fund(r.Context(), tenant, iotpay.AccountID(r.PathValue("id")), in.Amount)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (s *Server) listTransfers(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	ts, err := s.Payments.Transfers(r.Context(), tenant, iotpay.AccountID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"transfers": nonNil(ts)})
	return nil
}

func (s *Server) createBinding(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var b payment.Binding
	if err := decode(r, &b); err != nil {
		return err
	}
	b.Tenant = tenant
	if err := s.Payments.Bind(r.Context(), &b); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (s *Server) listPayments(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	ps, err := s.Payments.Payments(r.Context(), tenant, payment.Filter{
		Device: iotpay.DeviceID(q.Get("device")), After: iotpay.PaymentID(q.Get("after")), Limit: limit,
	})
	if err != nil {
		return err
	}
	out := map[string]any{"payments": nonNil(ps)}
	if len(ps) > 0 {
		out["next_after"] = ps[len(ps)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	p, err := s.Payments.Payment(r.Context(), tenant, iotpay.PaymentID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) ledgerCheck(w http.ResponseWriter, r *http.Request, _ iotpay.TenantID) error {
	rep, err := s.Payments.LedgerCheck(r.Context())
	if err != nil {
		return err
	}
	// The check spans every tenant: a tenant sees only whether it holds.
	writeJSON(w, http.StatusOK, map[string]bool{"balanced": rep.Balanced})
	return nil
}

func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, iotpay.Errorf(iotpay.EINVALID, "limit must be a positive integer")
	}
	return n, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
