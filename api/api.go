// Package api holds the description of the platform's HTTP API,
// openapi.yaml (OpenAPI 3.0), embedded so that the server serves it and
// its tests check the server against it.
package api

import _ "embed"

// OpenAPI is openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
