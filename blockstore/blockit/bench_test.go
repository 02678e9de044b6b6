package blockit

import (
	"fmt"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/internal/diskref"
)

// BenchmarkReplicatedPut writes distinct blocks through a gateway
// replicator to R=3 block nodes on this one machine (three localstores on
// the same disk, each behind its own gRPC server on loopback). The timer
// runs until every block has all R copies durable, so for W=2 it includes
// the background fills: the figure is the sustained rate of fully
// replicated storage. The raw disk references run in the same benchmark
// run: compare Put with RawWrite*/3.
func BenchmarkReplicatedPut(b *testing.B) {
	// The first disk benchmark of a process measures slow on the shared
	// VM this was tuned on; a discarded warm-up takes that hit.
	b.Run("Warmup", func(b *testing.B) { diskref.WriteStream(b, 1<<20) })
	for _, size := range []int{1 << 20, 4 << 20} {
		name := fmt.Sprintf("%dMiB", size>>20)
		b.Run("RawWriteFsyncEach/"+name, func(b *testing.B) { diskref.WriteFsyncEach(b, size) })
		b.Run("RawWriteStream/"+name, func(b *testing.B) { diskref.WriteStream(b, size) })
		for _, w := range []int{2, 3} {
			b.Run(fmt.Sprintf("PutR3W%d/%s", w, name), func(b *testing.B) {
				c := newCluster(b, options{nodes: 3, R: 3, W: w})
				blocktest.PutParallel(b, size, 3, func(ref blockstore.Ref, data []byte) error { return c.gw.Put(ctx, ref, data) })
				// Until all R copies are durable.
				want := int64(b.N) * 3
				waitFor(b, "all copies", func() bool {
					var puts int64
					for _, n := range c.nodes {
						st, err := n.store.Stats(ctx)
						if err != nil {
							b.Fatal(err)
						}
						puts += st.Puts
					}
					return puts >= want
				})
				b.StopTimer()
				var written, stored int64
				for _, n := range c.nodes {
					st, _ := n.store.Stats(ctx)
					written += st.BytesWritten
					stored += st.BytesPut
				}
				b.ReportMetric(float64(written)/float64(stored), "wamp")
			})
		}
	}
}
