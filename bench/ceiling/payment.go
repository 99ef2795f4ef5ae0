package ceiling

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"io"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// platform is the platform's side of a suite: the CA that certifies its
// devices and the receipt key they trust, as platform/daemon sets them up.
// It is shared by all workers, as the real receipt key is.
type platform struct {
	suite  wire.Suite
	ca     *pki.CA
	signer crypto.Signer // receipts
	kid    []byte
}

func newPlatform(suite wire.Suite) (*platform, error) {
	ca, err := pki.NewSuiteCA(suite.Name(), "iotpay ceiling CA", time.Now(), nil)
	if err != nil {
		return nil, err
	}
	signer, err := pki.GenerateKey(suite.Name(), nil)
	if err != nil {
		return nil, err
	}
	kid, err := pki.KeyID(signer.Public())
	if err != nil {
		return nil, err
	}
	return &platform{suite: suite, ca: ca, signer: signer, kid: kid}, nil
}

// worker is one enrolled device and the platform's record of it: each
// worker pays with its own key, so workers share nothing the real code
// would not.
type worker struct {
	plat *platform
	dev  *device.Device
	reg  *registry.Device // what the processor reads from the store
	pay0 device.Payment
	// What the payment engine would have booked; the same ids every time,
	// as making them is not cryptography.
	paymentID string
	transfers []string
}

// newWorker enrolls device n: a key of the suite, a certificate from the
// CA, and the registry record enrollment leaves (the certified public key
// and the first challenge).
func (p *platform) newWorker(n int) (*worker, error) {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	key, err := pki.GenerateKey(p.suite.Name(), nil)
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, string(id))
	if err != nil {
		return nil, err
	}
	cert, err := p.ca.SignDeviceCSR(csr, id, "ten_ceiling")
	if err != nil {
		return nil, err
	}
	pub, err := pki.MarshalPublicKey(cert.PublicKey)
	if err != nil {
		return nil, err
	}
	challenge := make([]byte, wire.ChallengeBytes)
	if _, err := io.ReadFull(rand.Reader, challenge); err != nil {
		return nil, err
	}
	st := &device.MemState{}
	if err := st.Save(device.State{Challenge: challenge}); err != nil {
		return nil, err
	}
	dev, err := device.New(device.Identity{ID: id, Suite: p.suite, Signer: key, Cert: cert, CA: p.ca.Cert,
		PlatformKey: p.signer.Public()}, st)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &worker{
		plat: p,
		dev:  dev,
		reg: &registry.Device{ID: id, Status: registry.DeviceActive, Suite: p.suite.Name(), PublicKey: pub,
			Challenge: challenge},
		pay0:      device.Payment{Event: &wire.Event{Type: "dispense", Str: map[string]string{"sku": "A" + strconv.Itoa(n%10)}}},
		paymentID: iotpay.NewID(iotpay.PrefixPayment, now, nil),
		transfers: []string{iotpay.NewID(iotpay.PrefixTransfer, now, nil), iotpay.NewID(iotpay.PrefixTransfer, now, nil)},
	}, nil
}

// pay is one payment's four crypto steps through the project's code.
func (w *worker) pay() error {
	s, err := w.dev.Sign(w.pay0)
	if err != nil {
		return err
	}
	answer, err := w.admit(s.Raw)
	if err != nil {
		return err
	}
	_, err = w.dev.Open(s, answer)
	return err
}

// admit is the platform's side, as platform.Processor.Process and
// evidence do it without the store: parse, verify under the device's
// suite with its certified key, then sign an approved receipt carrying the
// next challenge. The counter and challenge checks (the processor's, in
// decide) are kept because they cost nothing and prove that each receipt
// reached the device's next request.
func (w *worker) admit(raw []byte) ([]byte, error) {
	env, req, err := wire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	if iotpay.DeviceID(req.Device) != w.reg.ID {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "request names another device than its channel")
	}
	suite, err := wire.SuiteByName(w.reg.Suite)
	if err != nil {
		return nil, err
	}
	rh := suite.Hash(raw)
	key, err := w.reg.Key()
	if err == nil {
		err = env.Verify(suite, key)
	}
	if err != nil {
		return nil, err
	}
	if req.Counter <= w.reg.Counter || !bytes.Equal(req.Challenge, w.reg.Challenge) {
		return nil, iotpay.Errorf(iotpay.EREPLAY, "counter %d or challenge out of step", req.Counter)
	}
	w.reg.Counter = req.Counter
	w.reg.Challenge = make([]byte, wire.ChallengeBytes)
	if _, err := io.ReadFull(rand.Reader, w.reg.Challenge); err != nil {
		return nil, err
	}
	idx := req.Counter
	rc := &wire.Receipt{
		Device: req.Device, RequestID: req.RequestID, RequestHash: rh, Outcome: wire.Approved, PaymentID: w.paymentID,
		AmountMinor: 150, Currency: "EUR", Transfers: w.transfers, LogIndex: &idx, Challenge: w.reg.Challenge, Action: "charge",
	}
	// As Processor.sign, which is unexported: version and time, then the
	// suite's receipt key.
	rc.V = wire.Version
	rc.TimeMs = time.Now().UnixMilli()
	return wire.SignReceipt(suite, w.plat.signer, rand.Reader, w.plat.kid, rc)
}
