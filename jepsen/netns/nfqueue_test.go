package netns

import (
	"encoding/binary"
	"syscall"
	"testing"
)

func TestNetlinkEncoding(t *testing.T) {
	a := nlAttr(nfqaCfgParams, []byte{0, 0, 0, 0, nfqnlCopyMeta})
	if len(a) != 12 || binary.NativeEndian.Uint16(a[0:2]) != 9 || binary.NativeEndian.Uint16(a[2:4]) != nfqaCfgParams {
		t.Errorf("attribute % x", a)
	}
	msg := nfqMessage(nfqnlMsgVerdict, 1, 42, nlAttr(nfqaVerdictHdr, append(be32(nfAccept), be32(7)...)))
	msgs, err := syscall.ParseNetlinkMessage(msg)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%v %v", msgs, err)
	}
	h := msgs[0].Header
	if h.Type != nfnlSubsysQueue<<8|nfqnlMsgVerdict || h.Seq != 42 || int(h.Len) != len(msg) {
		t.Errorf("header %+v", h)
	}

	// A packet message: some other attribute, then NFQA_PACKET_HDR with a
	// net-byte-order flag in its type.
	attrs := append(nlAttr(9, []byte{1, 2, 3}), nlAttr(nfqaPacketHdr|0x4000, []byte{0, 0, 1, 2, 8, 0, 3})...)
	if id, ok := packetID(attrs); !ok || id != 0x102 {
		t.Errorf("packetID = %#x, %v", id, ok)
	}
	if _, ok := packetID(attrs[:6]); ok {
		t.Error("packetID of a truncated message")
	}
	if _, ok := packetID([]byte{2, 0, 1, 0}); ok {
		t.Error("packetID of a malformed attribute")
	}
}
