package iso8583

// ReencodeState decodes b as the client decodes what it loads from its
// state store, and encodes the result again.
func ReencodeState(b []byte) ([]byte, error) {
	o, err := decodeState(b)
	if err != nil {
		return nil, err
	}
	return encodeState(o)
}
