// Package history records what the fault harness did: every client
// operation's invocation and completion, and the timeline of injected
// faults, in a JSON form that can be saved and checked again offline.
//
// # Operations
//
// A worker calls [Recorder.Invoke] just before it sends a request and one of
// [Pending.Ok], [Pending.Fail] or [Pending.Unknown] when it knows how the
// request ended:
//
//   - Ok: the operation took effect and Output says what it returned.
//   - Fail: the operation definitely did not take effect (a failed
//     precondition, a refused request).
//   - Unknown: the client cannot know whether it took effect (a timeout, a
//     connection reset after the request was sent, a 5xx after the request
//     may have applied). Never record such an outcome as Fail: a checker
//     would then wrongly assume the operation had no effect.
//
// An operation that was invoked but never completed is reported by
// [Recorder.Ops] (and saved) as Unknown.
//
// Times are durations since the recorder's start (monotonic clock), so a
// [Recorder] and a [Timeline] built with the same start share one time axis.
//
// Inputs and outputs are stored as JSON. The payload types in this package
// ([RegisterInput], [RegisterOutput], [UploadInput]) are the ones the
// checkers in jepsen/check decode; use them for the kinds they name.
package history
