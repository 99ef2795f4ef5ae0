// Package devcert is how a device certificate names its device: a URI SAN
// urn:iotpay:device:<id>. The platform's CA (platform/pki) writes it; the
// platform's access points, iotpay-edge and the device SDK read it. It
// imports nothing of the platform, so the edge binary and the SDK need not
// link it.
package devcert

import (
	"crypto/x509"
	"net/url"
	"strings"

	"github.com/iotpay/iotpay"
)

// URIPrefix prefixes the device id in a device certificate's URI SAN.
const URIPrefix = "urn:iotpay:device:"

// URI is the URI SAN that names device.
func URI(device iotpay.DeviceID) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: strings.TrimPrefix(URIPrefix, "urn:") + string(device)}
}

// DeviceID returns the device id cert names in its URI SAN.
func DeviceID(cert *x509.Certificate) (iotpay.DeviceID, bool) {
	for _, u := range cert.URIs {
		if id, ok := strings.CutPrefix(u.String(), URIPrefix); ok && iotpay.ValidID(iotpay.PrefixDevice, id) {
			return iotpay.DeviceID(id), true
		}
	}
	return "", false
}
