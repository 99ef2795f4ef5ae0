package httpapi

import (
	"net/http"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
)

// PSK is a device's DTLS pre-shared key for CoAP, as the operator
// provisions it.
type PSK struct {
	// Identity is the PSK identity the device sends: its id.
	Identity iotpay.DeviceID `json:"identity"`
	// Key is the pre-shared key, as text (coap.DerivePSK).
	Key string `json:"key"`
	// Hint is the PSK identity hint the platform's DTLS server sends.
	Hint string `json:"hint"`
}

// devicePSK answers the DTLS pre-shared key of one of the tenant's active
// devices. The key is derived, not stored, so the route writes nothing: it
// takes no Idempotency-Key (its answer is the same every time, and must
// not be kept in the idempotency table), the answer is marked no-store,
// and the key is never logged.
func (s *Server) devicePSK(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.DeviceID](r, iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	if _, err := readBody(r, nil); err != nil {
		return err
	}
	d, err := s.Registry.Device(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	if d.Status != registry.DeviceActive {
		return iotpay.Errorf(iotpay.ECONFLICT, "device %s is %s: a PSK is for an active device", id, d.Status)
	}
	if s.PSK == nil {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "CoAP/DTLS access is not running")
	}
	key, err := s.PSK(id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, PSK{Identity: id, Key: string(key), Hint: s.PSKHint})
	s.log().Info("device PSK handed out", "device", id, "tenant", tenant) // never the key
	return nil
}
