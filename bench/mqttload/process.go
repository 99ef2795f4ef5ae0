package mqttload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proc is a broker process started for a comparison.
type proc struct {
	cmd     *exec.Cmd
	out     *lockedBuffer // its stderr, and stdout unless taken
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startProc starts cmd, its output collected unless cmd.Stdout is set.
func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.out
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop interrupts the process and waits for it to exit, killing it if it
// takes too long.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(processStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// EmbeddedProcess is the embedded broker in a process of its own, which
// runs ServeEmbedded.
type EmbeddedProcess struct {
	Addr string
	dir  string
	proc *proc
}

// embeddedReady is the line a process serving the embedded broker prints
// on its standard output once it listens, followed by the address.
const embeddedReady = "mqttload: embedded broker listening on "

// ReadyLine is what a process serving the embedded broker prints on its
// standard output once it listens at addr.
func ReadyLine(addr string) string { return embeddedReady + addr + "\n" }

// StartEmbeddedProcess runs argv with one more argument, a directory of
// the fixture's server files, and waits for the process to print
// ReadyLine. The process must serve until interrupted.
func (f *Fixture) StartEmbeddedProcess(ctx context.Context, argv []string) (*EmbeddedProcess, error) {
	if len(argv) == 0 {
		return nil, errors.New("mqttload: no command for the embedded broker")
	}
	dir, err := os.MkdirTemp("", "mqttload-embedded-")
	if err != nil {
		return nil, err
	}
	e := &EmbeddedProcess{dir: dir}
	if err := e.start(ctx, f, argv); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

func (e *EmbeddedProcess) start(ctx context.Context, f *Fixture, argv []string) error {
	if err := f.WriteServerFiles(e.dir); err != nil {
		return err
	}
	cmd := exec.Command(argv[0], append(argv[1:len(argv):len(argv)], e.dir)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if e.proc, err = startProc(cmd); err != nil {
		return fmt.Errorf("mqttload: starting the embedded broker: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- l
		_, _ = r.WriteTo(e.proc.out) // keep the pipe drained
	}()
	ctx, cancel := context.WithTimeout(ctx, processStartTimeout)
	defer cancel()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(l), strings.TrimSpace(embeddedReady))
		if ok {
			e.Addr = strings.TrimSpace(addr)
			return nil
		}
		e.proc.stop()
		return fmt.Errorf("mqttload: embedded broker process printed %q: %s", l, e.proc.out.String())
	case <-ctx.Done():
		e.proc.stop()
		return fmt.Errorf("mqttload: embedded broker process not ready: %w: %s", ctx.Err(), e.proc.out.String())
	}
}

// Pid is the process's id.
func (e *EmbeddedProcess) Pid() int { return e.proc.cmd.Process.Pid }

// Close stops the process and removes its files.
func (e *EmbeddedProcess) Close() error {
	e.proc.stop()
	return os.RemoveAll(e.dir)
}

// userHZ is Linux's clock tick for process times in /proc (USER_HZ, 100
// on every architecture Go supports).
const userHZ = 100

// processCPU returns the CPU time (user and system) process pid has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("mqttload: /proc/%d/stat unreadable", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("mqttload: /proc/%d/stat unreadable", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// listenerPid returns the id of the process listening on the IPv4 TCP
// address addr, found through /proc; 0 if none is found (another
// system, or no permission to look).
func listenerPid(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return 0
	}
	inode := listenerInode(ap)
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				return pid
			}
		}
	}
	return 0
}

// listenerInode returns the socket inode listening on ap, from
// /proc/net/tcp ("0100007F:075B" is 127.0.0.1:1883; state 0A is LISTEN).
func listenerInode(ap netip.AddrPort) string {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return ""
	}
	a := ap.Addr().As4()
	local := strings.ToUpper(hex.EncodeToString([]byte{a[3], a[2], a[1], a[0]})) + fmt.Sprintf(":%04X", ap.Port())
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == local && f[3] == "0A" {
			return f[9]
		}
	}
	return ""
}

// lockedBuffer is a buffer a process's output may be written to while it
// is read. It keeps the first MiB.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const lockedBufferBytesMax = 1 << 20

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := lockedBufferBytesMax - l.b.Len(); room < len(p) {
		l.b.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
