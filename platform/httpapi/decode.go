package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/iotpay/iotpay"
)

// readBody reads a request body of at most RequestBytesMax bytes and
// decodes it strictly into in; with in nil the body must be empty or an
// empty object.
func readBody(r *http.Request, in any) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, RequestBytesMax+1))
	if err != nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "cannot read the body")
	}
	if len(raw) > RequestBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "body over %d bytes", RequestBytesMax)
	}
	if in == nil {
		if len(bytes.TrimSpace(raw)) == 0 {
			return raw, nil
		}
		if err := decodeBytes(raw, &struct{}{}); err != nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "this request takes no body, or an empty object")
		}
		return raw, nil
	}
	return raw, decodeBytes(raw, in)
}

// decodeBytes reads one JSON object into v, strictly: an object, no
// unknown fields, no key twice (nor two keys Go would take for one field,
// which differ only in case), nothing after it.
func decodeBytes(raw []byte, v any) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return iotpay.Errorf(iotpay.EINVALID, "the body must be a JSON object")
	}
	if err := uniqueKeys(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body: data after the object")
	}
	return nil
}

// bodyError turns a decoding error into a message for the caller, without
// Go's type names.
func bodyError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return iotpay.Errorf(iotpay.EINVALID, "field %s must be %s", te.Field, jsonKind(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body")
	}
	// Unknown fields, and the errors of values' own decoders (times,
	// currencies): their text names the field or the value, not a Go type.
	return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what a value of Go type t looks like in JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// uniqueKeys refuses an object with a key twice at any depth, comparing
// keys without case as encoding/json matches them to fields. Syntax
// errors are left to the decoder.
func uniqueKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var stack []map[string]bool // one per open object; nil for an array
	inObject := func() bool { return len(stack) > 0 && stack[len(stack)-1] != nil }
	keyNext := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if keyNext {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				keyNext = inObject()
				continue
			}
			k, _ := tok.(string)
			k = strings.ToLower(k)
			if stack[len(stack)-1][k] {
				return iotpay.Errorf(iotpay.EINVALID, "malformed JSON body: key %q given twice", k)
			}
			stack[len(stack)-1][k], keyNext = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack, keyNext = append(stack, map[string]bool{}), true
			continue
		case json.Delim('['):
			stack = append(stack, nil)
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		keyNext = inObject() // a value ended: in an object, a key comes next
	}
}
