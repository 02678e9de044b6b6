package workload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// uploadWorkload uploads random content, mostly to new paths.
type uploadWorkload struct {
	base
	mu    sync.Mutex
	paths []string // every path uploaded to, for overwrites
}

// overwriteShare is the share of uploads that overwrite an earlier path.
const overwriteShare = 0.2

func (w *uploadWorkload) Run(ctx context.Context, env *Env) error {
	w.workers(func(proc int) {
		cl, node := env.Client(proc)
		rng := w.rng(env, proc)
		// The content comes from its own seeded stream: fast, and the
		// same for the same seed.
		content := mrand.NewChaCha8(seed32(env.Seed, proc))
		for n := 1; w.pause(ctx, rng); n++ {
			key := w.pick(rng, fmt.Sprintf("%s/p%d-%d", w.folder(), proc, n))
			data := make([]byte, w.size(rng))
			_, _ = content.Read(data) // never fails
			sum := sha256.Sum256(data)
			rk := requestKey(w.name, proc, n)
			in := UploadInput{UploadInput: history.UploadInput{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}, RequestID: rk}
			w.op(ctx, env, proc, node, history.KindUpload, key, in, Write, w.cfg.OpTimeout, func(ctx context.Context) (any, error) {
				res, err := cl.Upload(ctx, bytes.NewReader(data), key, client.UploadOptions{IdempotencyKey: rk})
				if err != nil {
					return nil, err
				}
				return commitOutput(res), nil
			})
		}
	})
	return nil
}

// pick returns an earlier path (sometimes) or fresh (and remembers it).
func (w *uploadWorkload) pick(rng *mrand.Rand, fresh string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.paths) > 0 && rng.Float64() < overwriteShare {
		return w.paths[rng.IntN(len(w.paths))]
	}
	w.paths = append(w.paths, fresh)
	return fresh
}

// size draws an upload size: half small (under 64 KiB, one block), a
// third up to 1 MiB, the rest up to MaxUploadSize (several blocks, with
// the minimum block of 256 KiB); sometimes empty.
func (w *uploadWorkload) size(rng *mrand.Rand) int {
	limit := w.cfg.MaxUploadSize
	switch r := rng.IntN(100); {
	case r < 3:
		return 0
	case r < 50:
		return int(rng.Int64N(min(64<<10, limit) + 1))
	case r < 83:
		return int(rng.Int64N(min(1<<20, limit) + 1))
	default:
		return int(rng.Int64N(limit + 1))
	}
}

func seed32(seed int64, proc int) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(uint64(seed) >> (8 * i))
		s[8+i] = byte(uint64(proc) >> (8 * i))
	}
	s[16] = 'u'
	return s
}

// Check downloads (verified) every path uploaded to and checks that each
// holds the content of an upload that may be the last one.
func (w *uploadWorkload) Check(ctx context.Context, env *Env, ops []history.Op) []check.Result {
	var uploads []history.Op
	var keys []string
	var size int64
	seen := map[string]bool{}
	for _, o := range ops {
		if o.Workload == w.name && o.Kind == history.KindUpload {
			uploads = append(uploads, o)
			var in history.UploadInput
			if o.DecodeInput(&in) == nil {
				size += in.Size
			}
			if !seen[o.Key] {
				seen[o.Key] = true
				keys = append(keys, o.Key)
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout+time.Duration(size/(10<<20))*time.Second)
	defer cancel()
	final := map[string]string{}
	var mu sync.Mutex
	var failed []string
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for key := range work {
				hash, present, err := finalContent(cctx, env.Final, key, w.cfg.OpTimeout)
				mu.Lock()
				switch {
				case err != nil:
					failed = append(failed, fmt.Sprintf("%s: %v", key, err))
				case present:
					final[key] = hash
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	if len(failed) > 0 {
		return []check.Result{invalid("bytes", fmt.Sprintf("could not download %d of %d files at the end", len(failed), len(keys)), failed...)}
	}
	return []check.Result{check.Bytes(uploads, final)}
}

// finalContent downloads key and returns the SHA-256 of the bytes
// received. A download whose bytes do not match the server's hash is a
// finding, not a reason to retry: the bytes' own hash is returned, which
// matches no upload.
func finalContent(ctx context.Context, cl *client.Client, key string, attempt time.Duration) (hash string, present bool, err error) {
	err = settle(ctx, attempt, func(ctx context.Context) error {
		h := sha256.New()
		_, err := cl.Download(ctx, key, 0, h)
		switch {
		case errors.Is(err, client.ErrNotFound):
			hash, present = "", false
			return nil
		case errors.Is(err, client.ErrHashMismatch):
			hash, present = "corrupt:"+hex.EncodeToString(h.Sum(nil)), true
			return nil
		case err != nil:
			return err
		}
		hash, present = hex.EncodeToString(h.Sum(nil)), true
		return nil
	})
	return hash, present, err
}
