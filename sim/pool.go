package sim

import (
	"container/list"
	"context"
	"io"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
)

// conn is a device's open transport.
type conn interface {
	device.Transport
	io.Closer
}

// pool bounds the transports open at once to max (--connections). A
// device keeps its transport between events while it can; one that has
// none when its event comes connects, first closing the transport of the
// device that has been idle longest if max are open: sleepy devices that
// wake, connect, pay and are disconnected when others need the room. A
// device in flight holds its transport, so with no more events in flight
// than max (Config.withDefaults makes sure) a connecting device always finds
// one to close.
type pool struct {
	max  int
	dial func(ctx context.Context, d *simDevice) (conn, error)

	mu   sync.Mutex
	open int       // transports open, being opened or being closed
	idle list.List // of *simDevice connected and not in flight, least recently used first
	// stats, under mu
	dials, dialErrors, evictions, drops int64
	connect                             Histogram
}

// acquire returns d's transport, connecting it if it has none. d is in
// flight: no one else touches d.conn until release.
func (p *pool) acquire(ctx context.Context, d *simDevice) (conn, error) {
	p.mu.Lock()
	if d.conn != nil {
		p.idle.Remove(d.elem)
		d.elem = nil
		p.mu.Unlock()
		return d.conn, nil
	}
	var old conn
	switch e := p.idle.Front(); {
	case p.open < p.max:
		p.open++
	case e != nil:
		victim := e.Value.(*simDevice)
		p.idle.Remove(e)
		old, victim.conn, victim.elem = victim.conn, nil, nil
		p.evictions++
	default:
		p.mu.Unlock()
		return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "sim: every connection is in flight")
	}
	p.mu.Unlock()
	if old != nil {
		old.Close() // before dialling: the slot's descriptor is freed first
	}
	start := time.Now()
	c, err := p.dial(ctx, d)
	took := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dials++
	if err != nil {
		p.dialErrors++
		p.open--
		return nil, err
	}
	p.connect.Record(took)
	d.conn = c
	return c, nil
}

// release ends d's flight: its transport goes to the back of the idle
// list, or is closed when the exchange on it failed (it may be broken;
// the device connects anew next time).
func (p *pool) release(d *simDevice, failed bool) {
	if d.conn == nil {
		return
	}
	if failed {
		d.conn.Close()
		d.conn = nil
		p.mu.Lock()
		p.open--
		p.drops++
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	d.elem = p.idle.PushBack(d)
	p.mu.Unlock()
}

// closeAll closes every idle transport, workers at a time.
func (p *pool) closeAll(workers int) {
	p.mu.Lock()
	var cs []conn
	for e := p.idle.Front(); e != nil; e = e.Next() {
		d := e.Value.(*simDevice)
		cs = append(cs, d.conn)
		d.conn, d.elem = nil, nil
	}
	p.idle.Init()
	p.open -= len(cs)
	p.mu.Unlock()
	each(len(cs), workers, func(i int) { cs[i].Close() })
}

// each runs f(0) … f(n-1) on up to workers goroutines.
func each(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
