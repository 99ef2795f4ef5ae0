package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/route"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/webhook"
)

// endpointView is an endpoint as listings show it: without its secret,
// which only its creation answers.
func endpointView(e *webhook.Endpoint) *webhook.Endpoint {
	v := *e
	v.Secret = ""
	return &v
}

// createWebhook registers an endpoint; the answer carries its signing
// secret.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		es, err := b.Tx.Endpoints(ctx, tenant)
		if err != nil {
			return 0, nil, err
		}
		if len(es) >= webhook.EndpointsMax {
			return 0, nil, iotpay.Errorf(iotpay.ECONFLICT, "at most %d webhook endpoints", webhook.EndpointsMax)
		}
		e, err := webhook.NewEndpoint(tenant, in.URL, in.Events, b.Now)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, e, b.Tx.CreateEndpoint(ctx, e)
	})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var es []*webhook.Endpoint
	err := s.Processor.Store.View(r.Context(), func(tx platform.Tx) (err error) { es, err = tx.Endpoints(r.Context(), tenant); return })
	if err != nil {
		return err
	}
	out := make([]*webhook.Endpoint, len(es))
	for i, e := range es {
		out[i] = endpointView(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[string](r, iotpay.PrefixWebhook)
	if err != nil {
		return err
	}
	return s.write(w, r, tenant, nil, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		return http.StatusOK, map[string]any{"id": id, "deleted": true}, b.Tx.DeleteEndpoint(ctx, tenant, id)
	})
}

// listDeliveries answers an endpoint's deliveries, newest first: the
// delivery log (?status=pending|delivered|failed).
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[string](r, iotpay.PrefixWebhook)
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	status := webhook.DeliveryStatus(r.URL.Query().Get("status"))
	switch status {
	case "", webhook.Pending, webhook.Delivered, webhook.Failed:
	default:
		return iotpay.Errorf(iotpay.EINVALID, "status must be pending, delivered or failed")
	}
	var ds []*webhook.Delivery
	err = s.Processor.Store.View(r.Context(), func(tx platform.Tx) error {
		es, err := tx.Endpoints(r.Context(), tenant)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.ID == id {
				ds, err = tx.Deliveries(r.Context(), tenant, id, status, limit)
				return err
			}
		}
		return iotpay.Errorf(iotpay.ENOTFOUND, "webhook endpoint %s not found", id)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": orEmpty(ds)})
	return nil
}

// redeliver sends a delivery again, now, whatever became of it.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[string](r, iotpay.PrefixDelivery)
	if err != nil {
		return err
	}
	err = s.write(w, r, tenant, nil, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		d, err := b.Tx.Delivery(ctx, tenant, id)
		if err != nil {
			return 0, nil, err
		}
		d.Status, d.Next = webhook.Pending, b.Now
		if d.Attempts >= webhook.AttemptsMax {
			d.Attempts = webhook.AttemptsMax - 1 // one more attempt, then failed again if it fails
		}
		return http.StatusOK, d, b.Tx.UpdateDelivery(ctx, d)
	})
	if err == nil && s.OnWebhook != nil {
		s.OnWebhook()
	}
	return err
}

// putRouting replaces the tenant's routing table, once every connector it
// names is configured.
func (s *Server) putRouting(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var in route.Table
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		if err := in.Validate(s.knownConnector); err != nil {
			return 0, nil, err
		}
		body, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, in, b.Tx.PutRoutingTable(ctx, tenant, body, b.Now)
	})
}

func (s *Server) getRouting(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var body []byte
	err := s.Processor.Store.View(r.Context(), func(tx platform.Tx) (err error) { body, err = tx.RoutingTable(r.Context(), tenant); return })
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(append(body, '\n'))
	return err
}

// connectorHealth answers every configured connector's health: its
// circuit breaker, its counts, its last error.
func (s *Server) connectorHealth(w http.ResponseWriter, _ *http.Request, _ iotpay.TenantID) error {
	hs := []route.Health{}
	if s.Payments.Router != nil {
		hs = s.Payments.Router.Health()
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": hs})
	return nil
}

// listFollowUps answers the tenant's follow-ups owed by payment systems:
// pending (?status=pending, the default: not done yet, retried with
// back-off) or failed (refused by the payment system: someone must act).
func (s *Server) listFollowUps(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	status := payment.FollowUpStatus(r.URL.Query().Get("status"))
	if status == "" {
		status = payment.FollowUpPending
	}
	fs, err := s.Payments.FollowUps(r.Context(), tenant, status, limit)
	if err != nil {
		return err
	}
	if fs == nil {
		fs = []*payment.FollowUp{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": fs})
	return nil
}

// retryFollowUp makes a failed follow-up pending again and tries it now:
// it answers the follow-up as it is after that try (gone from the list
// when done).
func (s *Server) retryFollowUp(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[string](r, iotpay.PrefixFollowUp)
	if err != nil {
		return err
	}
	if _, err := readBody(r, nil); err != nil {
		return err
	}
	f, done, err := s.Payments.RetryFollowUp(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"follow_up": f, "done": done})
	return nil
}
