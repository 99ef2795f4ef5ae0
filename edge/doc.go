// Package edge is the network layer for constrained devices: a gateway
// (iotpay-edge) that serves devices over CoAP/UDP and DTLS on low-power
// links (NB-IoT, LTE-M, LoRa), forwards their end-to-end protected
// envelopes to the platform over MQTT/TLS, and stores them while the uplink
// is down. Devices sign their requests themselves (package wire), so the
// gateway can carry payments but never read or alter them.
//
// The gateway is built in its own issue; today devices reach the platform
// directly over MQTT/TLS.
package edge
