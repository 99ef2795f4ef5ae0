// Package httpapi is the platform's JSON HTTP API: operator calls
// authenticated by API key (tenant-scoped), and device enrollment
// authenticated by a one-time token. api/openapi.yaml describes every
// route, and is served at GET /openapi.yaml.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/api"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/registry"
)

// Bounds.
const (
	// RequestBytesMax bounds a request body.
	RequestBytesMax = 64 << 10
	// PageLimitDefault is a listing's page size when ?limit is not given;
	// PageLimitMax the most ?limit may ask for. Both stay below the
	// stores' own bound, so the extra item that tells has_more always fits.
	PageLimitDefault = 50
	PageLimitMax     = 200
)

// Server serves the API.
type Server struct {
	Registry *registry.Service
	Payments *payment.Engine[platform.Tx]
	// OnRevoke is told of every revoked device, to drop its live sessions.
	OnRevoke func(iotpay.DeviceID)
	// PSK derives a device's CoAP/DTLS pre-shared key; nil when CoAP is
	// off. PSKHint is the identity hint the DTLS server sends.
	PSK     func(iotpay.DeviceID) ([]byte, error)
	PSKHint string
	// Processor serves products' profiles, dry runs, reviews, device
	// events and supply orders.
	Processor *platform.Processor
	// OnDesired is told of every committed desired-state change, to send
	// the device its new desired state.
	OnDesired func(*registry.State)
	// SupplySecret gives a tenant's supply webhook key; nil when orders
	// are not sent.
	SupplySecret func(iotpay.TenantID) (string, error)
	// OnWebhook, when set, is told a delivery was queued again, so the
	// sender need not wait for its next round.
	OnWebhook func()
	Logger    *slog.Logger
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

// handlerFunc serves one route; tenant is the caller's for operator
// routes and empty otherwise. A returned error is answered as JSON.
type handlerFunc func(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error

// Route is one route of the API: a method and a path pattern in
// net/http's ServeMux syntax, which is also OpenAPI's path syntax.
type Route struct {
	Method string
	Path   string
	// Operator routes need an operator API key (Authorization: Bearer).
	Operator bool
	serve    handlerFunc
}

// Routes is the API's route table: Handler serves exactly these.
func (s *Server) Routes() []Route {
	open := func(method, path string, h handlerFunc) Route { return Route{method, path, false, h} }
	op := func(method, path string, h handlerFunc) Route { return Route{method, path, true, h} }
	return []Route{
		open("GET", "/healthz", s.healthz),
		open("GET", "/openapi.yaml", s.openAPI),
		open("POST", "/v1/enroll", s.enroll),
		op("POST", "/v1/products", s.createProduct),
		op("GET", "/v1/products/{id}", getByID(iotpay.PrefixProduct, s.Registry.Product)),
		op("POST", "/v1/devices", s.createDevice),
		op("GET", "/v1/devices", s.listDevices),
		op("GET", "/v1/devices/{id}", s.getDevice),
		op("POST", "/v1/devices/{id}/revoke", s.revokeDevice),
		op("POST", "/v1/devices/{id}/psk", s.devicePSK),
		op("GET", "/v1/devices/{id}/state", s.getState),
		op("PATCH", "/v1/devices/{id}/state", s.changeState),
		op("PUT", "/v1/products/{id}/profile", s.putProfile),
		op("GET", "/v1/products/{id}/profile", s.getProfile),
		op("POST", "/v1/products/{id}/dry-run", s.dryRun),
		op("PUT", "/v1/tariffs/{name}", s.putTariff),
		op("GET", "/v1/tariffs", s.listTariffs),
		op("GET", "/v1/reviews", s.listReviews),
		op("GET", "/v1/reviews/{id}", getByID(iotpay.PrefixPayment, s.review)),
		op("POST", "/v1/reviews/{id}/approve", s.decideReview(true)),
		op("POST", "/v1/reviews/{id}/decline", s.decideReview(false)),
		op("GET", "/v1/events", listByDevice(s.Processor.Events)),
		op("GET", "/v1/orders", listByDevice(s.Processor.Orders)),
		op("GET", "/v1/supply/secret", s.supplySecret),
		op("POST", "/v1/webhooks", s.createWebhook),
		op("GET", "/v1/webhooks", s.listWebhooks),
		op("DELETE", "/v1/webhooks/{id}", s.deleteWebhook),
		op("GET", "/v1/webhooks/{id}/deliveries", s.listDeliveries),
		op("POST", "/v1/webhook-deliveries/{id}/redeliver", s.redeliver),
		op("PUT", "/v1/routing", s.putRouting),
		op("GET", "/v1/routing", s.getRouting),
		op("GET", "/v1/connectors", s.connectorHealth),
		op("GET", "/v1/follow-ups", s.listFollowUps),
		op("POST", "/v1/follow-ups/{id}/retry", s.retryFollowUp),
		op("POST", "/v1/reconciliations/{connector}", s.reconcileReport),
		op("POST", "/v1/accounts", s.createAccount),
		op("GET", "/v1/accounts", s.listAccounts),
		op("GET", "/v1/accounts/{id}", getByID(iotpay.PrefixAccount, s.accountByID)),
		op("GET", "/v1/accounts/{id}/balance", s.getBalance),
		op("POST", "/v1/accounts/{id}/fund", s.fundAccount),
		op("GET", "/v1/accounts/{id}/transfers", s.listAccountTransfers),
		op("POST", "/v1/mandates", s.createMandate),
		op("GET", "/v1/mandates", s.listMandates),
		op("GET", "/v1/mandates/{id}", getByID(iotpay.PrefixMandate, s.Payments.Mandate)),
		op("POST", "/v1/mandates/{id}/suspend", s.mandateStatus(payment.MandateSuspended)),
		op("POST", "/v1/mandates/{id}/resume", s.mandateStatus(payment.MandateActive)),
		op("POST", "/v1/mandates/{id}/revoke", s.mandateStatus(payment.MandateRevoked)),
		op("POST", "/v1/payments", s.createPayment),
		op("GET", "/v1/payments", s.listPayments),
		op("GET", "/v1/payments/{id}", getByID(iotpay.PrefixPayment, s.Payments.Payment)),
		op("GET", "/v1/payments/{id}/transfers", s.listPaymentTransfers),
		op("POST", "/v1/payments/{id}/capture", s.capturePayment),
		op("POST", "/v1/payments/{id}/increment", s.incrementPayment),
		op("POST", "/v1/payments/{id}/void", s.voidPayment),
		op("POST", "/v1/payments/{id}/refund", s.refundPayment),
		op("GET", "/v1/ledger/check", s.ledgerCheck),
	}
}

// Handler returns the API. A request no route takes is answered as JSON
// too: 405 with Allow when another method would do, 404 otherwise.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	var methods []string
	for _, rt := range s.Routes() {
		mux.Handle(rt.Method+" "+rt.Path, s.route(rt))
		if !slices.Contains(methods, rt.Method) {
			methods = append(methods, rt.Method)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range methods {
			other := r.WithContext(r.Context())
			other.Method = m
			if _, pattern := mux.Handler(other); pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			s.writeError(w, r, iotpay.Errorf(iotpay.ENOTFOUND, "no such route"))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Code: iotpay.EINVALID,
			Message: "method not allowed: use " + strings.Join(allow, " or ")})
	})
}

// route serves rt: authentication, the handler, errors as JSON, and a
// panic as an internal error rather than a dropped connection.
func (s *Server) route(rt Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				s.log().Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorBody{Code: iotpay.EINTERNAL, Message: "internal error"})
			}
		}()
		var tenant iotpay.TenantID
		var err error
		if rt.Operator {
			tenant, err = s.authenticate(r)
		}
		if err == nil {
			err = rt.serve(w, r, tenant)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is every error's answer. DeclineCode says why a payment
// operation was declined, for the declines that have a reason.
type errorBody struct {
	Code        iotpay.Code    `json:"code"`
	Message     string         `json:"message"`
	DeclineCode payment.Reason `json:"decline_code,omitempty"`
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
	body := errorBody{Code: code, Message: iotpay.ErrorMessage(err)}
	var d *payment.DeclineError
	if errors.As(err, &d) {
		body.DeclineCode = d.Reason
	}
	writeJSON(w, status, body)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ iotpay.TenantID) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// openAPI serves the API's description.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ iotpay.TenantID) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, err := w.Write(api.OpenAPI)
	return err
}

// enroll certifies a device's key. Its Idempotency-Key is scoped to the
// device, so a device that lost the answer may ask again with the same
// key and token and get the same certificate.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, _ iotpay.TenantID) error {
	var in struct {
		Device       iotpay.DeviceID `json:"device"`
		Token        string          `json:"token"`
		CSR          string          `json:"csr"`
		TransportCSR string          `json:"transport_csr"`
	}
	raw, err := readBody(r, &in)
	if err == nil {
		err = s.commit(w, r, iotpay.TenantID("enroll "+in.Device), raw, func(ctx context.Context, _ *ledger.Batch[platform.Tx]) (int, any, error) {
			en, err := s.Registry.Enroll(ctx, in.Device, in.Token, []byte(in.CSR), []byte(in.TransportCSR))
			return http.StatusOK, en, err
		})
	}
	if err != nil {
		s.log().Info("enrollment refused", "device", in.Device, "err", err)
	}
	return err
}

func (s *Server) createProduct(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Name     string                  `json:"name"`
		Pricing  registry.Pricing        `json:"pricing"`
		Merchant iotpay.AccountID        `json:"merchant_account"`
		Category string                  `json:"category"`
		Kind     registry.ProductKind    `json:"kind"`
		Offline  *registry.OfflineLimits `json:"offline"`
	}
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		// The merchant account must be one of the tenant's merchant accounts.
		if a, ok := b.Account(in.Merchant); !ok || a.Tenant != tenant || a.Kind != payment.KindMerchant {
			return 0, nil, iotpay.Errorf(iotpay.EINVALID, "merchant_account must be one of your merchant accounts")
		}
		p := &registry.Product{Tenant: tenant, Name: in.Name, Pricing: in.Pricing, Merchant: in.Merchant, Category: in.Category,
			Kind: in.Kind, Offline: in.Offline}
		return http.StatusCreated, p, s.Registry.CreateProduct(ctx, p)
	})
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		Product iotpay.ProductID `json:"product"`
		Name    string           `json:"name"`
		Suite   string           `json:"suite"`
	}
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		if err := bodyID(in.Product, iotpay.PrefixProduct, "product"); err != nil {
			return 0, nil, err
		}
		d, token, err := s.Registry.CreateDevice(ctx, tenant, in.Product, in.Name, in.Suite)
		return http.StatusCreated, map[string]any{"device": d, "enrollment_token": token}, err
	})
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	after, err := queryID[iotpay.DeviceID](r, "starting_after", iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	ds, err := s.Registry.Devices(r.Context(), tenant, after, limit+1)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(ds, limit, func(d *registry.Device) string { return string(d.ID) }))
	return nil
}

// deviceWithPresence is a device as GET /v1/devices/{id} shows it: with
// its connection's state, once it has connected.
type deviceWithPresence struct {
	*registry.Device
	Presence *registry.Presence `json:"presence,omitempty"`
}

// getDevice answers a device and its presence (online/offline, over which
// transport, since when, why it went offline, its last status).
func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.DeviceID](r, iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	d, err := s.Registry.Device(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	p, err := s.Registry.DevicePresence(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deviceWithPresence{Device: d, Presence: p})
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.DeviceID](r, iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	err = s.write(w, r, tenant, nil, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		d, err := s.Registry.Revoke(ctx, tenant, id)
		return http.StatusOK, d, err
	})
	if err == nil && s.OnRevoke != nil {
		s.OnRevoke(id) // once committed: its live sessions end
	}
	return err
}

// pageLimit reads ?limit: PageLimitDefault when absent, else 1 to
// PageLimitMax.
func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return PageLimitDefault, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > PageLimitMax {
		return 0, iotpay.Errorf(iotpay.EINVALID, "limit must be an integer from 1 to %d", PageLimitMax)
	}
	return n, nil
}

// getByID serves the GET of one object: the path's id, which must have
// prefix, looked up among the tenant's by get.
func getByID[ID ~string, T any](prefix string, get func(context.Context, iotpay.TenantID, ID) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
		id, err := pathID[ID](r, prefix)
		if err != nil {
			return err
		}
		v, err := get(r.Context(), tenant, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

// pathID reads the {id} of the path, which must be an id with prefix.
func pathID[T ~string](r *http.Request, prefix string) (T, error) {
	v := r.PathValue("id")
	if !iotpay.ValidID(prefix, v) {
		return "", iotpay.Errorf(iotpay.EINVALID, "the id in the path must be a %s_ id", prefix)
	}
	return T(v), nil
}

// queryID reads an optional query parameter that must be an id with prefix.
func queryID[T ~string](r *http.Request, name, prefix string) (T, error) {
	v := r.URL.Query().Get(name)
	if v != "" && !iotpay.ValidID(prefix, v) {
		return "", iotpay.Errorf(iotpay.EINVALID, "%s must be a %s_ id", name, prefix)
	}
	return T(v), nil
}

// bodyID checks that a body field holds an id with prefix.
func bodyID[T ~string](v T, prefix, field string) error {
	if !iotpay.ValidID(prefix, string(v)) {
		return iotpay.Errorf(iotpay.EINVALID, "%s must be a %s_ id", field, prefix)
	}
	return nil
}
