// Command coffer-jepsen runs Coffer's fault-injection scenarios against
// real cofferd processes and checks what they recorded (package jepsen).
//
//	coffer-jepsen [-suite ci|full] [-scenario NAME,...] [-seed N] [-nodes 3|5]
//	              [-net auto|netns|loopback] [-out DIR] [-binary PATH]
//	              [-runs N] [-duration D] [-timeout D] [-v]
//
// Each run makes a folder in -out with history.json, timeline.json,
// register.html (porcupine's visualisation), report.json, summary.txt and
// every node's log. The exit status is 0 when every check of every run
// passed, 1 when one failed or a run could not be carried out, 2 on bad
// usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-dev/coffer/jepsen"
	"github.com/coffer-dev/coffer/jepsen/proc"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coffer-jepsen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", "ci", "scenario suite: "+strings.Join(suiteNames(), ", "))
	only := fs.String("scenario", "", "run only these scenarios of the suite (comma-separated)")
	seed := fs.Int64("seed", 0, "seed of the first run (0: from the clock; run k uses seed+k)")
	nodes := fs.Int("nodes", 3, "cluster size: 3 or 5")
	netMode := fs.String("net", jepsen.NetAuto, "auto, netns or loopback")
	out := fs.String("out", "jepsen-results", "results folder")
	binary := fs.String("binary", "", "cofferd binary (default: build it)")
	runs := fs.Int("runs", 1, "how many times to run the suite (soak)")
	duration := fs.Duration("duration", 0, "keep running the suite until this much time has passed (soak; 0: -runs only)")
	verbose := fs.Bool("v", false, "log every step")
	limit := fs.Duration("timeout", 0, "fail if the runs (not the build) take longer than this (0: no limit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	scenarios, ok := jepsen.Suites[*suite]
	if !ok || fs.NArg() > 0 || *runs < 1 {
		fmt.Fprintf(stderr, "coffer-jepsen: bad usage: suite %q (known: %s), runs %d, args %v\n", *suite, strings.Join(suiteNames(), ", "), *runs, fs.Args())
		return 2
	}
	if *only != "" {
		want := strings.Split(*only, ",")
		scenarios = slices.DeleteFunc(slices.Clone(scenarios), func(s jepsen.Scenario) bool { return !slices.Contains(want, s.Name) })
		if len(scenarios) != len(want) {
			fmt.Fprintf(stderr, "coffer-jepsen: unknown scenario in %q\n", *only)
			return 2
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "coffer-jepsen:", err)
		return 1
	}
	if *binary == "" {
		fmt.Fprintln(stderr, "building cofferd ...")
		b, err := proc.Build(ctx, *out)
		if err != nil {
			fmt.Fprintln(stderr, "coffer-jepsen:", err)
			return 1
		}
		*binary = b
	}
	abs, err := filepath.Abs(*binary)
	if err == nil {
		*binary = abs
	}
	if *limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *limit)
		defer cancel()
	}
	s := *seed
	if s == 0 {
		s = time.Now().UnixNano() % 1_000_000_000
	}
	started := time.Now()
	failed, total := 0, 0
	for k := 0; ; k++ {
		if k >= *runs && (*duration == 0 || time.Since(started) >= *duration) {
			break
		}
		for _, sc := range scenarios {
			if ctx.Err() != nil {
				break
			}
			total++
			rep, err := jepsen.Run(ctx, jepsen.Config{Binary: *binary, Out: *out, Nodes: *nodes, Seed: s, Scenario: sc, Net: *netMode, Logger: log})
			s++
			if err != nil {
				failed++
				fmt.Fprintf(stdout, "%s seed %d: could not run: %v\n", sc.Name, s-1, err)
				continue
			}
			if !rep.Valid {
				failed++
			}
			fmt.Fprintf(stdout, "%s seed %d (%s): %s  [%s]\n", sc.Name, rep.Seed, rep.Net, rep.Summary, rep.Dir)
			for _, r := range rep.Results {
				if !r.Valid {
					fmt.Fprintf(stdout, "    FAILED %s\n", r.String())
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "coffer-jepsen: %d runs, %d failed, %v\n", total, failed, time.Since(started).Round(time.Second))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(stdout, "coffer-jepsen: FAILED: the runs took longer than -timeout %v\n", *limit)
		return 1
	}
	if failed > 0 || total == 0 {
		return 1
	}
	return 0
}

func suiteNames() []string {
	var n []string
	for k := range jepsen.Suites {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}
