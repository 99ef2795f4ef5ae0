// Package wire defines the messages that cross the network between a device
// and the platform, and how they are protected: a payment request signed by
// the device (COSE_Sign1 over deterministic CBOR, RFC 9052) and a receipt
// signed by the platform that is bound to that request.
//
// Decoders here handle untrusted input: they are strict (no indefinite
// lengths, no duplicate map keys, no unknown fields, no trailing bytes) and
// bounded, and they return *iotpay.Error values with code EINVALID.
package wire
