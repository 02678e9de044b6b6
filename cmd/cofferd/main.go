// Command cofferd is the Coffer server: one node of a cluster
// (`cofferd --name … --join …`), or with `cofferd dev` a complete local
// 3-node cluster in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/coffer-dev/coffer/cluster"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "dev" {
		return runDevCommand(ctx, args[1:])
	}
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		usage(os.Stdout)
		return 0
	}
	cfg, opts, err := loadConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(os.Stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cofferd: bad configuration:\n%v\n\n", err)
		usage(os.Stderr)
		return 2
	}
	log, err := newLogger(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		return 2
	}
	cfg.Logger = log
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		if errors.Is(err, cluster.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	<-ctx.Done()
	stop() // a second signal now kills the process at once
	log.Info("signal received: draining and stopping")
	if err := n.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "cofferd: stop:", err)
		return 1
	}
	return 0
}

func newLogger(o nodeOptions) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %v", o.LogLevel, err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
}

func runDevCommand(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("cofferd dev", flag.ContinueOnError)
	dir := fs.String("dir", "./coffer-data", "data directory (reused on restart)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP address of the first node (the gateway)")
	password := fs.String("admin-password", os.Getenv("COFFER_ADMIN_PASSWORD"), "password of the first admin user (default: generated and printed)")
	exit := fs.Bool("exit", false, "exit once the cluster is ready instead of serving until interrupted")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Raft logs routine events (elections, a new replica catching up) as
	// warnings: dev prints its own summary and shows only errors unless -v.
	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	err := runDev(ctx, devConfig{Dir: *dir, HTTPAddr: *httpAddr, AdminPassword: *password, Exit: *exit, Log: log})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "cofferd dev:", err)
		if errors.Is(err, cluster.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	return 0
}
