// Package blockit holds the block layer's end-to-end tests and benchmarks:
// real localstores on disk, each behind a real gRPC BlockService on a
// loopback port, replicated by package replica. It has no non-test code
// beyond this comment.
package blockit
