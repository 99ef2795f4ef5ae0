// Package iso8583 speaks ISO 8583:1987 to a card acquirer: a codec driven
// by a Spec of the data elements, TCP framing with a length header, and a
// Client that implements connector.Connector over one persistent
// connection.
//
// # Codec
//
// A Spec says, for each data element (field 2 to 128), how long it is
// (fixed, LLVAR or LLLVAR), what it may hold (n, an, ans, b) and how its
// content and length prefix are encoded (ASCII or packed BCD). Spec87ASCII
// and Spec87BCD follow the published 1987 layout. Pack and Unpack are
// strict and bounded (MessageBytesMax): a wrong length, a non-digit in a
// numeric field, trailing bytes, a field the spec does not know or a
// secondary bitmap that announces nothing are each an *iotpay.Error with
// code EINVALID that names the field, never a panic. A message that
// unpacks packs back to the same bytes.
//
// # Framing
//
// On TCP each message is preceded by its length in bytes: by default a
// 2-byte big-endian binary header (FrameBinary2, the common host-to-host
// framing), or optionally 4 ASCII decimal digits (FrameASCII4). The header
// does not count itself.
//
// # Client
//
// The Client multiplexes requests over one connection by STAN (field 11),
// so answers may come back in any order, and derives the RRN (field 37)
// from the operation's idempotency key, so a retry carries the same RRN
// and the acquirer answers it idempotently. An authorization (0100) or
// sale (0200) that gets no answer in time is reversed (0400, repeated as
// 0401) before a retryable EUNAVAILABLE error is returned: nothing is left
// authorized behind an error the caller may retry.
//
// Given a connector.StateStore, the Client saves what it must know of
// each approval to capture, void and refund it later (field 90's original
// data, the RRN, approval code, card, amounts captured and refunded) as
// versioned JSON, so a restarted client can act on what an earlier one
// authorized.
package iso8583
