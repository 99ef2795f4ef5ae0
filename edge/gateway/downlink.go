package gateway

import (
	"sync"

	"github.com/iotpay/iotpay"
)

// downlink holds the platform's answers until their device takes them: a
// bounded FIFO per device, in memory (a restart loses it: the device,
// having no answer, sends its request again and the platform answers it
// again from its idempotency record), and the POSTs waiting for the
// answer to their own message.
type downlink struct {
	max int // per device

	mu      sync.Mutex
	fifo    map[iotpay.DeviceID][]answer
	total   int
	waiters map[uint64]*waiter // by queue seq
	closed  bool
}

// answer is one answer of the platform: to the message of queue seq.
type answer struct {
	seq  uint64
	body []byte
}

// waiter is a POST waiting for the answer to its message.
type waiter struct {
	device iotpay.DeviceID
	ch     chan []byte // buffered 1; an empty body: taken, no answer
}

func newDownlink(max int) *downlink {
	return &downlink{max: max, fifo: make(map[iotpay.DeviceID][]answer), waiters: make(map[uint64]*waiter)}
}

// deliver hands the answer to the POST waiting for it, or keeps it for the
// device's next poll. It reports what it did with it.
func (d *downlink) deliver(device iotpay.DeviceID, seq uint64, body []byte) (handed, kept bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.waiters[seq]; w != nil && w.device == device {
		delete(d.waiters, seq)
		w.ch <- body
		return true, false
	}
	if len(body) == 0 || d.closed || d.total >= DownlinkTotalMax {
		return false, false // nothing to keep, or no room at all
	}
	q := d.fifo[device]
	if len(q) >= d.max {
		q = q[1:] // the oldest goes; its device can ask again
		d.total--
	}
	d.fifo[device] = append(q, answer{seq: seq, body: body})
	d.total++
	return false, true
}

// wait registers a POST waiting for the answer to seq. If the answer came
// first and is kept, it is taken at once.
func (d *downlink) wait(device iotpay.DeviceID, seq uint64) *waiter {
	w := &waiter{device: device, ch: make(chan []byte, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.fifo[device]
	for i, a := range q {
		if a.seq == seq {
			d.fifo[device] = append(q[:i:i], q[i+1:]...)
			d.total--
			d.gc(device)
			w.ch <- a.body
			return w
		}
	}
	if !d.closed {
		d.waiters[seq] = w
	}
	return w
}

// cancel forgets a waiter that stopped waiting; an answer it missed is
// kept for the device's next poll.
func (d *downlink) cancel(seq uint64, w *waiter) {
	d.mu.Lock()
	if d.waiters[seq] == w {
		delete(d.waiters, seq)
	}
	d.mu.Unlock()
	select {
	case body := <-w.ch:
		if len(body) > 0 {
			d.deliver(w.device, seq, body)
		}
	default:
	}
}

// poll takes device's oldest answer and says how many more wait.
func (d *downlink) poll(device iotpay.DeviceID) (body []byte, more int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.fifo[device]
	if len(q) == 0 {
		return nil, 0, false
	}
	a := q[0]
	d.fifo[device] = q[1:]
	d.total--
	d.gc(device)
	return a.body, len(q) - 1, true
}

// pending says how many answers wait for device.
func (d *downlink) pending(device iotpay.DeviceID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.fifo[device])
}

// gc drops device's empty FIFO; mu is held.
func (d *downlink) gc(device iotpay.DeviceID) {
	if len(d.fifo[device]) == 0 {
		delete(d.fifo, device)
	}
}

// close stops keeping answers.
func (d *downlink) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}
