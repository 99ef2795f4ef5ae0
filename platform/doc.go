// Package platform receives device messages and turns them into payments:
// admission (identity, signature, clock, counter, challenge), the decision
// (what the device's product charges for its event), the payment against
// the device's binding, the audit leaf, and the signed receipt — all state
// changes in one store transaction.
//
// Transports (platform/mqtt, the HTTP API) hand raw messages to a
// Processor; it never trusts the transport beyond the device identity the
// transport authenticated.
package platform
