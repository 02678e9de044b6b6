// Package cdc cuts a byte stream into content-defined chunks (FastCDC-style),
// so that an edit in a large file changes only the chunks around it.
//
// # Algorithm
//
// A chunk boundary is chosen by a gear hash over a sliding window of the
// last 64 bytes: after byte i,
//
//	G(i) = Σ_{j=0..63} gear[data[i-j]] << j   (mod 2^64)
//
// which is computed incrementally as fp = fp<<1 + gear[data[i]] (after 64
// steps every older byte has been shifted out, so G depends on those 64
// bytes only, never on where hashing started). A chunk that starts at s
// ends after the first byte i (chunk length L = i-s+1) with:
//
//   - L >= Min (min-size skip: the bytes before s+Min-64 are not hashed;
//     this is why Min must be at least 64);
//   - for Min <= L < Avg: G(i) & maskS == 0, where maskS has the top
//     log2(Avg)+2 bits set (a cut is 4x less likely than 1/Avg);
//   - for Avg <= L < Max: G(i) & maskL == 0, where maskL has the top
//     log2(Avg)-2 bits set (4x more likely than 1/Avg);
//   - L == Max: cut regardless.
//
// The last chunk of a stream may be shorter than Min. This is FastCDC's
// normalized chunking at level 2: chunk sizes cluster around Avg instead of
// following the long-tailed distribution of a single mask. The mask bits
// are the hash's top bits because in a shift-left gear hash bit k depends
// on the last k+1 bytes only: the top bits see the whole window.
//
// Because G(i) is a function of the 64 bytes ending at i alone, boundaries
// depend only on the content (and the Config), never on how the reader
// splits its reads.
//
// # Frozen parameters
//
// The following are part of the chunk format: changing any of them moves
// every chunk boundary, and with it every block reference a client has
// computed, so deduplication against existing data is lost. They are
// frozen; a test pins the table and a sample of boundaries.
//
//   - the gear table: 256 uint64 values, the outputs 1..256 of splitmix64
//     seeded with GearSeed;
//   - the 64-byte window and the update fp = fp<<1 + gear[b];
//   - normalization level 2 (maskS and maskL as above, top bits);
//   - the default sizes: Min 256 KiB, Avg 1 MiB, Max 4 MiB.
//
// # Use
//
// Chunker cuts sequentially and hands out views of its buffer. Split reads a
// stream to its end and cuts and hashes (SHA-256) it with several
// goroutines, calling back in stream order with chunks the callee owns.
package cdc
