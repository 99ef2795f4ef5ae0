package mqtt

import (
	"context"
	"crypto/tls"
	"log/slog"
	"slices"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// devicePublishLeaves are the topics under its own prefix a device may
// publish to. It reads only its receipt topic.
var devicePublishLeaves = [...]string{"pay"}

// mayAccess reports whether device may publish to (write) or subscribe to
// and receive from topic. Topics must match exactly, so no wildcard filter
// or shared subscription can reach beyond the device's own topics.
func mayAccess(device, topic string, write bool) bool {
	if !iotpay.ValidID(iotpay.PrefixDevice, device) {
		return false
	}
	if !write {
		return topic == wire.ReceiptTopic(device)
	}
	leaf, ok := strings.CutPrefix(topic, wire.TopicPrefix+device+"/")
	return ok && slices.Contains(devicePublishLeaves[:], leaf)
}

// hook enforces the broker's rules inside mochi.
type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "iotpay" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck,
		mochi.OnPublish, mochi.OnPacketEncode, mochi.OnDisconnect:
		return true
	}
	return false
}

// OnConnect runs before authentication. It bounds the keepalive, which is
// what bounds a silent connection once connected.
func (h *hook) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	if cl.State.Keepalive == 0 || cl.State.Keepalive > keepaliveMax {
		cl.State.Keepalive = keepaliveMax
		cl.State.ServerKeepalive = true // announced to MQTT 5 clients
	}
	return nil
}

// OnConnectAuthenticate admits a client whose verified certificate names
// the device its client id claims, and which the DeviceChecker accepts.
// mochi answers a refusal with CONNACK "bad username or password" (MQTT 5)
// or "not authorized" (3.1.1): vague on the wire, precise in the log.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	b := h.b
	refuse := func(level slog.Level, dev iotpay.DeviceID, why string, err error) bool {
		b.log.Log(context.Background(), level, "device refused", "reason", why, "err", err,
			"client", cl.ID, "device", dev, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion)
		return false
	}

	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return refuse(slog.LevelWarn, "", "not a TLS connection", nil)
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return refuse(slog.LevelWarn, "", "no verified client certificate", nil)
	}
	dev, err := pki.DeviceID(st.VerifiedChains[0][0])
	if err != nil {
		return refuse(slog.LevelWarn, "", "certificate names no device", err)
	}
	if cl.ID != string(dev) {
		return refuse(slog.LevelWarn, dev, "client id is not the certificate's device id", nil)
	}
	if pk.Connect.WillFlag {
		// A will is published by the broker on the device's behalf without
		// an ACL check; devices have no use for one.
		return refuse(slog.LevelWarn, dev, "will message not allowed", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if err := b.checker.CheckDevice(ctx, dev); err != nil {
		level := slog.LevelInfo // a revoked or unknown device is routine
		if c := iotpay.ErrorCode(err); c == iotpay.EINTERNAL || c == iotpay.EUNAVAILABLE {
			level = slog.LevelWarn
		}
		return refuse(level, dev, "device checker refused", err)
	}
	if ln := b.listener(); ln == nil || !ln.admit(tc) {
		return refuse(slog.LevelInfo, dev, "broker closing", nil)
	}
	b.log.Info("device connected", "device", dev, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion)
	return true
}

// OnACLCheck confines a device to its own topics. mochi answers a denied
// QoS 1 publish with PUBACK "not authorized" (MQTT 5) or a disconnect
// (3.1.1), and a denied subscription with a failure code in the SUBACK.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if mayAccess(cl.ID, topic, write) {
		return true
	}
	h.b.log.Warn("device denied topic", "device", cl.ID, "topic", topic, "publish", write, "remote", cl.Net.Remote)
	return false
}

// OnPublish runs after the ACL check and before the PUBACK. It refuses
// retained messages (mochi would otherwise deliver them as ordinary ones)
// and payloads over PayloadBytesMax (a whole packet over the bound is
// already refused by mochi while reading it).
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	switch {
	case pk.FixedHeader.Retain:
		return pk, h.refusePublish(cl, pk, packets.ErrRetainNotSupported)
	case len(pk.Payload) > PayloadBytesMax:
		return pk, h.refusePublish(cl, pk, packets.ErrPacketTooLarge)
	}
	return pk, nil
}

// refusePublish drops the message and disconnects the client, as MQTT 5
// prescribes for both refusals; dropping a QoS 1 message without an answer
// would leave the client resending it forever.
func (h *hook) refusePublish(cl *mochi.Client, pk packets.Packet, code packets.Code) error {
	h.b.log.Warn("device publish refused, disconnecting", "device", cl.ID, "topic", pk.TopicName,
		"reason", code.Reason, "bytes", len(pk.Payload), "retain", pk.FixedHeader.Retain, "remote", cl.Net.Remote)
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

// OnDisconnect logs the end of an admitted device's connection.
func (h *hook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	h.b.log.Info("device disconnected", "device", cl.ID, "remote", cl.Net.Remote, "err", err)
}
