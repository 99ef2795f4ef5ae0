package wire

// SessionSecrets exposes a session's key schedule to the golden vectors.
func SessionSecrets(s *Session) map[string][]byte {
	k := s.keys
	return map[string][]byte{"th": k.TH, "prk": k.PRK, "req_key": k.ReqKey, "req_iv": k.ReqIV, "resp_key": k.RespKey, "resp_iv": k.RespIV}
}

// SignTyped signs payload with a content type, for fuzzing the handshake's
// payload decoders behind a valid signature.
var SignTyped = signTyped
