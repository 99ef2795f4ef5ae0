package coap

import "github.com/iotpay/iotpay"

// SessionCount exposes sessionCount to the external tests.
func (s *Server) SessionCount(id iotpay.DeviceID) int { return s.sessionCount(id) }
