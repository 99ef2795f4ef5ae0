package mqtt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// devicePublishLeaves are the topics under its own prefix a device may
// publish to. It reads only its receipt, desired-state and relay answer
// topics. Any device may publish on its relay topic: whether it is a
// gateway, and whom it may relay for, is the RelayHandler's to say.
var devicePublishLeaves = [...]string{"pay", "status", "relay"}

// mayAccess reports whether device may publish to (write) or subscribe to
// and receive from topic. Topics must match exactly, so no wildcard filter
// or shared subscription can reach beyond the device's own topics.
func mayAccess(device, topic string, write bool) bool {
	if !iotpay.ValidID(iotpay.PrefixDevice, device) {
		return false
	}
	if !write {
		return topic == wire.ReceiptTopic(device) || topic == wire.DesiredTopic(device) || topic == wire.RelayAnswerTopic(device)
	}
	leaf, ok := strings.CutPrefix(topic, wire.TopicPrefix+device+"/")
	return ok && slices.Contains(devicePublishLeaves[:], leaf)
}

// mayAccessEnrolling is mayAccess for a connection admitted for
// enrollment only: it publishes its CSRs on its enroll topic, once, and
// reads its answer.
func mayAccessEnrolling(c *conn, topic string, write bool) bool {
	if !write {
		return topic == wire.EnrollAnswerTopic(string(c.dev))
	}
	return topic == wire.EnrollTopic(string(c.dev)) && !c.enrolled.Load()
}

// validStatus reports whether s is a status a device may report on its
// status topic or in its will: at most registry.PresenceStatusBytesMax
// bytes of UTF-8 text without control characters ("online", "offline",
// a small JSON object…).
func validStatus(s []byte) bool {
	if len(s) == 0 || len(s) > registry.PresenceStatusBytesMax || !utf8.Valid(s) {
		return false
	}
	return !strings.ContainsFunc(string(s), unicode.IsControl)
}

// hook enforces the broker's rules inside mochi.
type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "iotpay" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnSessionEstablish, mochi.OnSessionEstablished, mochi.OnACLCheck,
		mochi.OnPublish, mochi.OnPacketRead, mochi.OnPacketEncode, mochi.OnWillSent, mochi.OnDisconnect:
		return true
	}
	return false
}

// refusal is why a CONNECT is refused: the reason code the client sees and
// the precise reason the log keeps.
type refusal struct {
	code  packets.Code
	why   string
	err   error
	level slog.Level
}

func refuse(code packets.Code, why string) *refusal {
	return &refusal{code: code, why: why, level: slog.LevelWarn}
}

// connackV3 maps the MQTT 5 reason codes the broker refuses a CONNECT
// with to the MQTT 5 code mochi turns into the right 3.1.1 return code
// (it maps only some, and would send others as they are).
func connackV3(c packets.Code) packets.Code {
	switch c.Code {
	case packets.ErrClientIdentifierNotValid.Code:
		return packets.ErrClientIdentifierNotValid // 0x02 identifier rejected
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code:
		return packets.ErrServerUnavailable // 0x03 server unavailable
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrMalformedUsername // 0x04 bad user name or password
	}
	return packets.ErrBadUsernameOrPassword // 0x05 not authorized
}

// OnConnect authenticates the client and answers a refusal with its own
// CONNACK reason code (mochi sends no CONNACK when OnConnect fails, and
// only "bad username or password" when OnConnectAuthenticate does). It
// also bounds the keepalive, which is what bounds a silent connection.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if cl.State.Keepalive == 0 || cl.State.Keepalive > keepaliveMax {
		cl.State.Keepalive = keepaliveMax
		cl.State.ServerKeepalive = true // announced to MQTT 5 clients
	}
	b := h.b
	c, r := b.authenticate(cl, pk)
	if r == nil {
		if dc, ok := cl.Net.Conn.(*deviceConn); !ok || b.listener() == nil || !b.listener().admit(dc) {
			r = &refusal{code: packets.ErrServerUnavailable, why: "broker closing", level: slog.LevelInfo}
		}
	}
	if r != nil {
		b.log.Log(context.Background(), r.level, "device refused", "reason", r.why, "err", r.err, "code", r.code.Code,
			"client", cl.ID, "device", c.dev, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion)
		code := r.code
		if cl.Properties.ProtocolVersion < 5 {
			code = connackV3(code)
		}
		// The connection is closed whatever the write's outcome.
		_ = b.server.SendConnack(cl, code, false, nil)
		return r.code
	}
	b.conns.Store(cl.Net.Conn, c)
	return nil
}

// authenticate decides a CONNECT. A client with a verified certificate is
// the device its URI SAN names; one without is admitted only to enroll,
// with its one-time token. It returns the connection (its device set as
// far as known) and nil, or a refusal.
func (b *Broker) authenticate(cl *mochi.Client, pk packets.Packet) (*conn, *refusal) {
	c := &conn{remote: cl.Net.Remote}
	dc, ok := cl.Net.Conn.(*deviceConn)
	if !ok {
		return c, refuse(packets.ErrNotAuthorized, "not a TLS connection")
	}
	tc := dc.Conn
	if pk.Properties.AuthenticationMethod != "" {
		return c, refuse(packets.ErrBadAuthenticationMethod, "enhanced authentication is not supported")
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return b.authenticateEnrollment(cl, pk, c)
	}
	dev, err := pki.DeviceID(st.VerifiedChains[0][0])
	if err != nil {
		return c, &refusal{code: packets.ErrNotAuthorized, why: "certificate names no device", err: err, level: slog.LevelWarn}
	}
	c.dev = dev
	if cl.ID != string(dev) {
		return c, refuse(packets.ErrClientIdentifierNotValid, "client id is not the certificate's device id")
	}
	if r := checkWill(cl, dev); r != nil {
		return c, r
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if err := b.checker.CheckDevice(ctx, dev); err != nil {
		return c, checkRefusal(err, packets.ErrNotAuthorized, "device checker refused")
	}
	c.gen = b.nextGeneration()
	return c, nil
}

// authenticateEnrollment admits a client without a certificate if it
// enrolls: client id = user name = a pending device's id, password = its
// one-time token, checked without consuming it.
func (b *Broker) authenticateEnrollment(cl *mochi.Client, pk packets.Packet, c *conn) (*conn, *refusal) {
	if b.enroller == nil {
		return c, refuse(packets.ErrNotAuthorized, "no verified client certificate")
	}
	if !pk.Connect.UsernameFlag && !pk.Connect.PasswordFlag {
		return c, refuse(packets.ErrNotAuthorized, "no client certificate and no enrollment credentials")
	}
	if !iotpay.ValidID(iotpay.PrefixDevice, cl.ID) {
		return c, refuse(packets.ErrClientIdentifierNotValid, "enrollment: client id is not a device id")
	}
	c.dev = iotpay.DeviceID(cl.ID)
	if string(pk.Connect.Username) != cl.ID || len(pk.Connect.Password) == 0 {
		return c, refuse(packets.ErrBadUsernameOrPassword, "enrollment: user name is not the client id, or no token")
	}
	if pk.Connect.WillFlag {
		return c, refuse(packets.ErrNotAuthorized, "enrollment: will message not allowed")
	}
	token := string(pk.Connect.Password)
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if err := b.enroller.CheckEnrollment(ctx, c.dev, token); err != nil {
		return c, checkRefusal(err, packets.ErrBadUsernameOrPassword, "enrollment token refused")
	}
	c.token = token
	return c, nil
}

// checkWill allows a device's will only on its own status topic, with a
// valid status, at QoS ≤ 1, not retained (mochi checks these two first)
// and published at once: mochi publishes a will without an ACL check.
func checkWill(cl *mochi.Client, dev iotpay.DeviceID) *refusal {
	w := &cl.Properties.Will
	if w.Flag == 0 {
		return nil
	}
	switch {
	case w.TopicName != wire.StatusTopic(string(dev)):
		return refuse(packets.ErrNotAuthorized, "will message on another topic than the device's status topic: "+w.TopicName)
	case len(w.Payload) > registry.PresenceStatusBytesMax:
		return refuse(packets.ErrPacketTooLarge, "will message over the status bound")
	case !validStatus(w.Payload):
		return refuse(packets.ErrPayloadFormatInvalid, "will message is not a status text")
	}
	// A delayed will would be published after the connection, and its
	// generation, are gone; a device's will is its status at once.
	w.WillDelayInterval = 0
	return nil
}

// checkRefusal turns a checker's error into a refusal: the store failing
// is "server unavailable", anything else refused.
func checkRefusal(err error, refused packets.Code, why string) *refusal {
	if c := iotpay.ErrorCode(err); c == iotpay.EINTERNAL || c == iotpay.EUNAVAILABLE {
		return &refusal{code: packets.ErrServerUnavailable, why: why, err: err, level: slog.LevelWarn}
	}
	// A revoked or unknown device, or a used token, is routine.
	return &refusal{code: refused, why: why, err: err, level: slog.LevelInfo}
}

// OnConnectAuthenticate admits what OnConnect admitted.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, _ packets.Packet) bool {
	return h.b.conn(cl) != nil
}

// OnSessionEstablish runs just before mochi takes over the session of an
// earlier connection with the same client id, if any: that one ends for
// this reason.
func (h *hook) OnSessionEstablish(cl *mochi.Client, _ packets.Packet) {
	if old, ok := h.b.server.Clients.Get(cl.ID); ok && old != cl {
		h.b.conn(old).end(ReasonTakenOver)
	}
}

// OnSessionEstablished runs once the CONNACK is sent: the device is online.
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	b := h.b
	c := b.conn(cl)
	if c == nil {
		return
	}
	if c.token != "" {
		b.log.Info("device connected to enroll", "device", c.dev, "remote", c.remote, "protocol", cl.Properties.ProtocolVersion)
		return
	}
	if dc, ok := cl.Net.Conn.(*deviceConn); ok && cl.Properties.ProtocolVersion == 5 {
		dc.v5.Store(true)
	}
	now := b.now()
	c.active.Store(now.UnixNano())
	c.online.Store(true)
	b.log.Info("device connected", "device", c.dev, "remote", c.remote, "protocol", cl.Properties.ProtocolVersion, "generation", c.gen)
	b.emit(registry.PresenceEvent{Kind: registry.PresenceConnected, Device: c.dev, Generation: c.gen, At: now,
		Transport: Transport, Remote: c.remote})
}

// OnPacketRead refuses a publish whose topic name has a wildcard, and
// notes that the device was heard from, at most once an activityInterval,
// so that presence costs no write a message.
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && !cl.Net.Inline && strings.ContainsAny(pk.TopicName, "+#") {
		// mochi would drop it without an answer, and a QoS 1 sender would
		// resend it forever: MQTT 5 says DISCONNECT "topic name invalid".
		h.b.log.Warn("device publish refused: wildcard in topic name", "device", cl.ID, "topic", pk.TopicName, "remote", cl.Net.Remote)
		h.b.conn(cl).end(packets.ErrTopicNameInvalid.Reason)
		if cl.Properties.ProtocolVersion == 5 {
			_ = h.b.server.DisconnectClient(cl, packets.ErrTopicNameInvalid) // the error repeats the code
		}
		return pk, packets.ErrTopicNameInvalid
	}
	if c := h.b.conn(cl); c != nil && c.online.Load() {
		now := h.b.now()
		last := c.active.Load()
		if now.UnixNano()-last >= int64(activityInterval) && c.active.CompareAndSwap(last, now.UnixNano()) {
			h.b.emit(registry.PresenceEvent{Kind: registry.PresenceActivity, Device: c.dev, Generation: c.gen, At: now})
		}
	}
	return pk, nil
}

// OnACLCheck confines a device to its own topics, and an enrolling client
// to its enrollment topics. mochi answers a denied QoS 1 publish with
// PUBACK "not authorized" (MQTT 5) or a disconnect (3.1.1), and a denied
// subscription with a failure code in the SUBACK.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	c := h.b.conn(cl)
	if c != nil && c.token != "" && mayAccessEnrolling(c, topic, write) {
		return true
	}
	if c != nil && c.token == "" && mayAccess(string(c.dev), topic, write) {
		return true
	}
	h.b.log.Warn("device denied topic", "device", cl.ID, "topic", topic, "publish", write, "enrolling", c != nil && c.token != "",
		"remote", cl.Net.Remote)
	return false
}

// OnPublish runs after the ACL check and before the PUBACK. It refuses
// retained messages (mochi would otherwise deliver them as ordinary ones),
// payloads over PayloadBytesMax (RelayBytesMax on a relay topic, which
// carries a device's message of up to PayloadBytesMax; a whole packet
// over the bound is already refused by mochi while reading it), and status
// messages that are not a status; it records the status of those that are.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	switch {
	case pk.FixedHeader.Retain:
		return pk, h.refusePublish(cl, pk, packets.ErrRetainNotSupported)
	case len(pk.Payload) > PayloadBytesMax && !(len(pk.Payload) <= RelayBytesMax && strings.HasSuffix(pk.TopicName, "/relay")):
		return pk, h.refusePublish(cl, pk, packets.ErrPacketTooLarge)
	}
	c := h.b.conn(cl)
	if c == nil || c.token != "" || pk.TopicName != wire.StatusTopic(string(c.dev)) {
		return pk, nil
	}
	if !validStatus(pk.Payload) {
		h.b.log.Warn("device status refused: not a status text", "device", c.dev, "bytes", len(pk.Payload), "remote", c.remote)
		switch {
		case pk.FixedHeader.Qos == 0:
			return pk, packets.ErrRejectPacket // dropped: nothing to answer
		case cl.Properties.ProtocolVersion == 5:
			return pk, packets.ErrPayloadFormatInvalid // PUBACK 0x99
		}
		// MQTT 3.1.1 has no negative PUBACK: unanswered, the message would
		// be resent forever.
		return pk, h.refusePublish(cl, pk, packets.ErrPayloadFormatInvalid)
	}
	h.b.emit(registry.PresenceEvent{Kind: registry.PresenceStatus, Device: c.dev, Generation: c.gen, At: h.b.now(),
		Status: string(pk.Payload)})
	// No one subscribes to status topics: the message ends here, with its
	// PUBACK.
	return pk, nil
}

// refusePublish drops the message and disconnects the client, as MQTT 5
// prescribes for both refusals; dropping a QoS 1 message without an answer
// would leave the client resending it forever.
func (h *hook) refusePublish(cl *mochi.Client, pk packets.Packet, code packets.Code) error {
	h.b.log.Warn("device publish refused, disconnecting", "device", cl.ID, "topic", pk.TopicName,
		"reason", code.Reason, "bytes", len(pk.Payload), "retain", pk.FixedHeader.Retain, "remote", cl.Net.Remote)
	h.b.conn(cl).end(code.Reason)
	if cl.Properties.ProtocolVersion == 5 {
		// The returned error only repeats code.
		_ = h.b.server.DisconnectClient(cl, code)
	} else {
		cl.Stop(code) // MQTT 3.1.1 servers send no DISCONNECT
	}
	// ErrRejectPacket makes mochi drop the message quietly; any other error
	// would be logged as an error and the message delivered regardless.
	return packets.ErrRejectPacket
}

// OnPacketEncode announces in a successful MQTT 5 CONNACK the limits mochi
// enforces but does not announce itself.
func (h *hook) OnPacketEncode(_ *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != packets.CodeSuccess.Code {
		return pk
	}
	pk.Properties.MaximumPacketSize = packetBytesMax
	pk.Properties.RetainAvailable, pk.Properties.RetainAvailableFlag = 0, true
	pk.Properties.WildcardSubAvailable, pk.Properties.WildcardSubAvailableFlag = 0, true
	pk.Properties.SharedSubAvailable, pk.Properties.SharedSubAvailableFlag = 0, true
	return pk
}

// OnWillSent records the will of a device whose connection was lost as
// its status; mochi calls it before OnDisconnect.
func (h *hook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	c := h.b.conn(cl)
	if c == nil || !c.online.Load() {
		return
	}
	h.b.log.Info("device will published", "device", c.dev, "topic", pk.TopicName, "bytes", len(pk.Payload))
	h.b.emit(registry.PresenceEvent{Kind: registry.PresenceStatus, Device: c.dev, Generation: c.gen, At: h.b.now(),
		Status: string(pk.Payload)})
}

// OnDisconnect marks the device offline, with the reason its connection
// ended.
func (h *hook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	b := h.b
	c := b.conn(cl)
	if c == nil {
		return
	}
	b.conns.Delete(cl.Net.Conn)
	reason := disconnectReason(cl, err)
	if r := c.ending.Load(); r != nil {
		reason = *r
	}
	b.log.Info("device disconnected", "device", c.dev, "remote", c.remote, "reason", reason, "err", err,
		"enrolling", c.token != "")
	if c.online.Load() {
		b.emit(registry.PresenceEvent{Kind: registry.PresenceDisconnected, Device: c.dev, Generation: c.gen, At: b.now(),
			Reason: reason})
	}
}

// Reasons a device's connection ended, as presence records them.
const (
	ReasonDisconnected     = "disconnected" // the device sent DISCONNECT
	ReasonKeepaliveTimeout = "keepalive timeout"
	ReasonConnectionLost   = "connection lost"
	ReasonTakenOver        = "session taken over"
	ReasonAdministrative   = "disconnected by the platform" // Disconnect: a revoked device
	ReasonShutdown         = "platform shutting down"
)

// disconnectReason says why cl's connection ended; err is what ended its
// read loop (nil after a DISCONNECT).
func disconnectReason(cl *mochi.Client, err error) string {
	cause := cl.StopCause()
	var code packets.Code
	switch {
	case cl.IsTakenOver() || cause == packets.ErrSessionTakenOver:
		return ReasonTakenOver
	case cause == packets.ErrAdministrativeAction:
		return ReasonAdministrative
	case cause == packets.ErrServerShuttingDown:
		return ReasonShutdown
	case err == nil && (cause == nil || cause == packets.CodeDisconnect):
		return ReasonDisconnected
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(cause, os.ErrDeadlineExceeded) || isTimeout(err):
		return ReasonKeepaliveTimeout
	case errors.As(cause, &code) && code.Code >= packets.ErrUnspecifiedError.Code:
		return code.Reason
	}
	return ReasonConnectionLost
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// now is the broker's clock.
func (b *Broker) now() time.Time { return time.Now() }
