package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The NFQUEUE delayer is Slow's fallback for kernels without sch_netem. An
// iptables rule in the host's namespace queues every packet leaving eth0 to
// queue 0 of that namespace; this process holds each one for the delay and
// then accepts it. The rule has --queue-bypass and the queue is fail-open,
// so if this process dies or falls behind, packets pass undelayed instead
// of being lost.
//
// The netlink messages are built by hand (see linux/netfilter/
// nfnetlink_queue.h); only packet IDs are read, never payloads.

const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfqaCfgFFailOpen   = 1
	nfAccept           = 1
	nlaTypeMask        = 0x3fff

	delayQueueNum = 0
	delayQueueLen = 16384
)

// iptablesQueueRule is the rule that sends a host's outgoing packets to the
// delayer, without the -A/-D verb.
var iptablesQueueRule = []string{"POSTROUTING", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"}

// delayer holds queued packets for delay±jitter, then accepts them.
type delayer struct {
	f   *os.File
	log *slog.Logger

	mu            sync.Mutex
	delay, jitter time.Duration
	pending       map[uint32]*time.Timer
	stopped       bool
	seq           uint32
	done          chan struct{}
}

// startDelayer binds queue 0 of the namespace at nsPath.
func startDelayer(nsPath string, log *slog.Logger) (*delayer, error) {
	f, err := netlinkSocketIn(nsPath)
	if err != nil {
		return nil, err
	}
	d := &delayer{f: f, log: log, pending: map[uint32]*time.Timer{}, done: make(chan struct{})}
	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, pad, pf (be16; unused since Linux 3.8)
	params := []byte{0, 0, 0, 0, nfqnlCopyMeta}
	cfg := append(nlAttr(nfqaCfgParams, params), nlAttr(nfqaCfgQueueMaxlen, be32(delayQueueLen))...)
	cfg = append(cfg, nlAttr(nfqaCfgMask, be32(nfqaCfgFFailOpen))...)
	cfg = append(cfg, nlAttr(nfqaCfgFlags, be32(nfqaCfgFFailOpen))...)
	for _, attrs := range [][]byte{nlAttr(nfqaCfgCmd, cmd), cfg} {
		if err := d.configure(attrs); err != nil {
			f.Close()
			return nil, err
		}
	}
	go d.loop()
	return d, nil
}

// netlinkSocketIn opens a non-blocking NETLINK_NETFILTER socket in the
// network namespace at nsPath. A socket stays in the namespace it was
// created in, so only its creation needs the thread switched over.
func netlinkSocketIn(nsPath string) (*os.File, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// If the thread cannot be switched back it stays locked, and the
		// runtime discards it when this goroutine ends.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			if err == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("setns back: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	res := <-ch
	if res.err != nil {
		return nil, fmt.Errorf("%w: nfqueue socket: %w", ErrUnsupported, res.err)
	}
	_ = unix.SetsockoptInt(res.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	_ = unix.SetsockoptInt(res.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	if err := unix.Bind(res.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(res.fd)
		return nil, fmt.Errorf("%w: nfqueue bind: %w", ErrUnsupported, err)
	}
	return os.NewFile(uintptr(res.fd), "nfqueue"), nil // pollable: Close wakes a blocked Read
}

// configure sends one config message and waits for its acknowledgement.
func (d *delayer) configure(attrs []byte) error {
	d.seq++
	if _, err := d.f.Write(nfqMessage(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, d.seq, attrs)); err != nil {
		return fmt.Errorf("%w: nfqueue config: %w", ErrUnsupported, err)
	}
	if err := d.f.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("%w: nfqueue: %w", ErrUnsupported, err)
	}
	defer func() { _ = d.f.SetReadDeadline(time.Time{}) }() // cannot fail once the first call worked
	buf := make([]byte, 8192)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			return fmt.Errorf("%w: nfqueue config ack: %w", ErrUnsupported, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("%w: nfqueue config ack: %w", ErrUnsupported, err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq != d.seq || len(m.Data) < 4 {
				continue
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return fmt.Errorf("%w: nfqueue config: %w", ErrUnsupported, syscall.Errno(-errno))
			}
			return nil
		}
	}
}

// set changes the delay of packets queued from now on.
func (d *delayer) set(delay, jitter time.Duration) {
	d.mu.Lock()
	d.delay, d.jitter = delay, jitter
	d.mu.Unlock()
}

func (d *delayer) loop() {
	defer close(d.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := d.f.Read(buf)
		if errors.Is(err, unix.ENOBUFS) {
			continue // the kernel let the packets it could not queue pass
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				d.log.Warn("nfqueue delayer stopped; packets pass undelayed", "err", err)
				d.f.Close() // unbinds the queue: --queue-bypass lets packets through
			}
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			if id, ok := packetID(m.Data[4:]); ok {
				d.hold(id)
			}
		}
	}
}

func (d *delayer) hold(id uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		d.accept(id)
		return
	}
	wait := d.delay
	if d.jitter > 0 {
		wait += rand.N(2*d.jitter+1) - d.jitter
	}
	// release takes d.mu, so it cannot run before the timer is recorded.
	d.pending[id] = time.AfterFunc(max(wait, 0), func() { d.release(id) })
}

func (d *delayer) release(id uint32) {
	d.mu.Lock()
	_, ok := d.pending[id]
	delete(d.pending, id)
	d.mu.Unlock()
	if ok {
		d.accept(id)
	}
}

func (d *delayer) accept(id uint32) {
	hdr := append(be32(nfAccept), be32(id)...)
	_, _ = d.f.Write(nfqMessage(nfqnlMsgVerdict, unix.NLM_F_REQUEST, 0, nlAttr(nfqaVerdictHdr, hdr))) // fails only once closed: the kernel then drops the packet, as a lossy link would
}

// stop accepts every held packet at once, closes the queue and waits for
// the reader to end. Idempotent.
func (d *delayer) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		<-d.done
		return
	}
	d.stopped = true
	held := d.pending
	d.pending = map[uint32]*time.Timer{}
	d.mu.Unlock()
	for id, t := range held {
		t.Stop()
		d.accept(id)
	}
	d.f.Close()
	<-d.done
}

// packetID finds NFQA_PACKET_HDR's packet_id in a packet message's
// attributes.
func packetID(b []byte) (uint32, bool) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return 0, false
		}
		if t == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(b[4:8]), true
		}
		b = b[min(align4(l), len(b)):]
	}
	return 0, false
}

// nfqMessage builds a netlink message of the nfqueue subsystem for queue
// delayQueueNum.
func nfqMessage(typ uint16, flags uint16, seq uint32, attrs []byte) []byte {
	b := make([]byte, 20, 20+len(attrs))
	binary.NativeEndian.PutUint32(b[0:4], uint32(20+len(attrs)))
	binary.NativeEndian.PutUint16(b[4:6], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	// b[12:16] port ID 0: the kernel fills it in. nfgenmsg: family
	// AF_UNSPEC, version 0, then the queue number, big-endian.
	binary.BigEndian.PutUint16(b[18:20], delayQueueNum)
	return append(b, attrs...)
}

// nlAttr encodes one netlink attribute, padded to 4 bytes.
func nlAttr(typ uint16, data []byte) []byte {
	b := make([]byte, align4(4+len(data)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], data)
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func align4(n int) int { return (n + 3) &^ 3 }
