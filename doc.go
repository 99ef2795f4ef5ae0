// Package iotpay is the vocabulary every layer of the IoT payment platform
// speaks: money and currencies, typed identifiers and error codes.
//
// It imports only the standard library, so the device SDK, the edge gateway,
// the platform and the payment layer can all depend on it.
package iotpay
